"""All of Clerk's settings: the indexer's groups and the bot's own, loaded together once.

`Settings.from_env()` is called at the entry point and the result passed down; each part of the
code reads its own group (`settings.index`, `settings.slack`, ...). Overrides and test values are
given by environment variable name, the one spelling of each setting.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.errors import ConfigError
from indexer.moderngov.settings import SyncSettings
from indexer.settings import IndexSettings, SettingsGroup, setting


class Security(enum.Enum):
    """How a mail connection is protected."""

    TLS = "tls"
    STARTTLS = "starttls"
    NONE = "none"


@dataclass(frozen=True)
class EngineSettings(SettingsGroup):
    """When Clerk answers, and what it accepts as a question."""

    answer_threshold: float | None = setting(
        None,
        "CLERK_ANSWER_THRESHOLD",
        "Chance (0-1) that the best passage answers before Clerk answers from it. Unset: the "
        "threshold `clerk eval --fit` chose by cross-validation on the dev set "
        "(bot/engine/combiner.json). Higher: fewer wrong answers, more questions for officers.",
    )
    max_question_chars: int = setting(
        2000, "CLERK_MAX_QUESTION_CHARS", "Longest question accepted, in characters."
    )
    reader: bool = setting(
        True,
        "CLERK_READER",
        "Weigh the best passages with the learned reader, when one is built in CLERK_READER_DIR "
        "(`clerk reader build`, about 45 minutes once), and decide with the combiner fitted "
        "with its recipe (bot/engine/combiner-cross-encoder.json or combiner-reader.json); "
        "none built: the combiner alone. 0: never.",
    )
    reader_dir: Path | None = setting(
        None, "CLERK_READER_DIR", "Where the built reader is kept; unset: <CLERK_HOME>/reader."
    )
    reader_written: str = setting(
        "eval/train/*.jsonl",
        "CLERK_READER_WRITTEN",
        "Questions people wrote (JSONL files, a glob; never eval/dev or eval/test) that `clerk "
        "reader build` trains the cross-encoder on beside the mined ones: the build the shipped "
        "combiner was fitted with. No file matching, or empty: mined questions only.",
    )


@dataclass(frozen=True)
class RequestSettings(SettingsGroup):
    """Where follow-up requests are kept and when they count as late."""

    database_url: str = setting(
        "",
        "CLERK_DATABASE_URL",
        "Follow-up request store: empty for SQLite in the data directory, or postgresql://...",
        secret=True,
    )
    overdue_working_days: int = setting(
        10, "CLERK_OVERDUE_DAYS", "Working days before an open request counts as overdue."
    )
    auto_close_days: int = setting(
        14,
        "CLERK_AUTO_CLOSE_DAYS",
        "Days after which an answered request closes itself (so it can later be purged); 0 never.",
    )


@dataclass(frozen=True)
class SlackSettings(SettingsGroup):
    """The Slack app: tokens, workspace and who the officers are."""

    bot_token: str = setting("", "SLACK_BOT_TOKEN", "Slack bot token (xoxb-...).", True)
    app_token: str = setting(
        "", "SLACK_APP_TOKEN", "Slack app-level token (xapp-...): enables Socket Mode.", True
    )
    signing_secret: str = setting(
        "", "SLACK_SIGNING_SECRET", "Slack signing secret for HTTP mode.", True
    )
    api_url: str = setting(
        "https://slack.com/api/", "CLERK_SLACK_API_URL", "Slack Web API base URL."
    )
    officers_channel: str = setting(
        "",
        "CLERK_SLACK_OFFICERS_CHANNEL",
        "Channel id where every new follow-up request is posted once, however it was logged "
        "(Slack, email, terminal, promises in the papers); empty: none are posted.",
    )
    officer_ids: tuple[str, ...] = setting(
        (), "CLERK_SLACK_OFFICERS", "Comma-separated Slack user ids allowed to act on requests."
    )
    officer_group: str = setting(
        "", "CLERK_SLACK_OFFICER_GROUP", "Slack user group id whose members are officers."
    )
    team_id: str = setting(
        "", "CLERK_SLACK_TEAM_ID", "The only Slack workspace (team id) Clerk answers."
    )
    workers: int = setting(
        4,
        "CLERK_SLACK_WORKERS",
        "Threads doing acknowledged Slack work (answers, requests, officers' actions) from the "
        "durable queue in the data directory.",
    )


@dataclass(frozen=True)
class EmailSettings(SettingsGroup):
    """The mailbox Clerk reads questions from and the server it replies through."""

    imap_host: str = setting("", "CLERK_IMAP_HOST", "IMAP server host.")
    imap_port: int = setting(993, "CLERK_IMAP_PORT", "IMAP server port.")
    imap_user: str = setting("", "CLERK_IMAP_USER", "IMAP user name.")
    imap_password: str = setting("", "CLERK_IMAP_PASSWORD", "IMAP password.", True)
    imap_folder: str = setting("INBOX", "CLERK_IMAP_FOLDER", "Folder watched for questions.")
    imap_security: Security = setting(
        Security.TLS, "CLERK_IMAP_SECURITY", "IMAP connection security: tls, starttls or none."
    )
    smtp_host: str = setting("", "CLERK_SMTP_HOST", "SMTP server host.")
    smtp_port: int = setting(587, "CLERK_SMTP_PORT", "SMTP server port.")
    smtp_user: str = setting("", "CLERK_SMTP_USER", "SMTP user name (empty: no login).")
    smtp_password: str = setting("", "CLERK_SMTP_PASSWORD", "SMTP password.", True)
    smtp_security: Security = setting(
        Security.STARTTLS, "CLERK_SMTP_SECURITY", "SMTP connection security: starttls, tls or none."
    )
    address: str = setting(
        "", "CLERK_EMAIL_ADDRESS", "Clerk's own address: From of replies, never answered."
    )
    allowed: tuple[str, ...] = setting(
        (),
        "CLERK_EMAIL_ALLOWED",
        "Comma-separated addresses or @domains whose questions are answered.",
    )
    ca_file: str = setting(
        "",
        "CLERK_EMAIL_CA_FILE",
        "PEM file of CA certificates trusted for IMAP and SMTP TLS (empty: the system's).",
    )
    poll_seconds: float = setting(
        60.0,
        "CLERK_EMAIL_POLL_SECONDS",
        "Longest wait between mailbox checks (IDLE wakes Clerk sooner where supported).",
    )
    quarantine_folder: str = setting(
        "Clerk Quarantine",
        "CLERK_EMAIL_QUARANTINE",
        "IMAP folder that messages Clerk cannot read are moved to (created if absent).",
    )
    max_mb: float = setting(
        10.0,
        "CLERK_EMAIL_MAX_MB",
        "Largest message read, in MB (MiB); a larger one is quarantined without being fetched.",
    )
    require_auth: bool = setting(
        True,
        "CLERK_EMAIL_REQUIRE_AUTH",
        "Refuse a sender whose receiving server's Authentication-Results header reports DMARC "
        "failing (or SPF failing or soft-failing where there is no DMARC verdict); messages "
        "without the header are not affected.",
    )


@dataclass(frozen=True)
class WebSettings(SettingsGroup):
    """The officers' desk (`clerk web`): how officers sign in and how pages are served."""

    secret_key: str = setting(
        "",
        "CLERK_WEB_SECRET_KEY",
        "Key that signs the desk's session cookies (empty: one is made and kept in the data "
        "directory, file web-secret-key).",
        True,
    )
    trusted_header: str = setting(
        "",
        "CLERK_WEB_TRUSTED_HEADER",
        "Header in which the council's single-sign-on proxy names the signed-in officer, e.g. "
        "X-Remote-User (empty: sign-in with local officer accounts only).",
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "CLERK_WEB_TRUSTED_PROXIES",
        "Comma-separated addresses or networks of the single-sign-on proxy; the trusted header "
        "is believed only from these.",
    )
    sso_officers: tuple[str, ...] = setting(
        (),
        "CLERK_WEB_SSO_OFFICERS",
        "Comma-separated user names the proxy may sign in as officers (empty: everyone the "
        "proxy vouches for).",
    )
    login_attempts: int = setting(
        5,
        "CLERK_WEB_LOGIN_ATTEMPTS",
        "Failed sign-ins allowed per address and per account within the login window.",
    )
    login_window_minutes: int = setting(
        15, "CLERK_WEB_LOGIN_WINDOW", "Minutes over which failed sign-ins are counted."
    )
    session_hours: int = setting(12, "CLERK_WEB_SESSION_HOURS", "Hours an officer stays signed in.")
    page_size: int = setting(25, "CLERK_WEB_PAGE_SIZE", "Requests per page of the queue.")


@dataclass(frozen=True)
class Settings:
    """Everything Clerk can be configured with, one group per part of the code."""

    index: IndexSettings = field(default_factory=IndexSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    requests: RequestSettings = field(default_factory=RequestSettings)
    slack: SlackSettings = field(default_factory=SlackSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    web: WebSettings = field(default_factory=WebSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
        """Every group from the environment, then `overrides` (by environment variable name)."""
        loaded = cls(
            index=IndexSettings.from_env(environ),
            sync=SyncSettings.from_env(environ),
            engine=EngineSettings.from_env(environ),
            requests=RequestSettings.from_env(environ),
            slack=SlackSettings.from_env(environ),
            email=EmailSettings.from_env(environ),
            web=WebSettings.from_env(environ),
        )
        return loaded.replaced(**overrides) if overrides else loaded

    def replaced(self, **env: Any) -> Settings:
        """A copy with the settings named by these environment variables changed."""
        unknown = set(env) - self.environment_names()
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        changes = {}
        for f in dataclasses.fields(self):
            group = getattr(self, f.name)
            mine = {k: v for k, v in env.items() if k in group.environment_names()}
            if mine:
                changes[f.name] = group.replaced(**mine)
        return dataclasses.replace(self, **changes)

    def describe(self) -> Iterator[tuple[str, str, str]]:
        """(environment variable, value shown, help) for every setting; secrets masked."""
        for group in self._groups():
            yield from group.describe()

    def environment_names(self, secret_only: bool = False) -> set[str]:
        """Every environment variable Clerk reads (only the secrets, if asked)."""
        return {n for g in self._groups() for n in g.environment_names(secret_only)}

    @property
    def home(self) -> Path:
        return self.index.home

    @property
    def reader_folder(self) -> Path:
        """The built reader (`clerk reader build`)."""
        return self.engine.reader_dir or self.index.home / "reader"

    @property
    def requests_db(self) -> Path:
        return self.index.home / "requests.sqlite3"

    def _groups(self) -> list[SettingsGroup]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


def markdown_table(settings: Settings | None = None) -> str:
    """The README's configuration table, made from the settings' own help texts."""
    settings = settings or Settings.from_env({"CLERK_HOME": "~/.local/share/clerk"})
    home = str(Path.home())
    rows = ["| variable | default | what |", "|---|---|---|"]
    for env, shown, text in settings.describe():
        if shown.startswith(home + "/"):
            shown = "~" + shown[len(home) :]
        default = "" if shown in ("", "unset") else f"`{shown}`"
        rows.append(f"| `{env}` | {default} | {text.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


README_START, README_END = "<!-- settings:start -->\n", "<!-- settings:end -->\n"


def readme_with_table(readme: str) -> str:
    """README text with the block between the settings markers regenerated."""
    head, _, rest = readme.partition(README_START)
    _, _, tail = rest.partition(README_END)
    return head + README_START + markdown_table() + README_END + tail


if __name__ == "__main__":  # python -m bot.settings: rewrite the README's configuration table
    readme = Path(__file__).resolve().parent.parent / "README.md"
    readme.write_text(readme_with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
