"""Officers' answers for terminal users: appended to <home>/inbox/<user>.txt."""

from __future__ import annotations

import re
from pathlib import Path

from bot.errors import DeliveryError
from bot.requests.model import Asker, InfoRequest
from bot.settings import Settings

INBOX_DIR = "inbox"


class CliNotifier:
    """Delivers to the terminal user's inbox file: <home>/inbox/<user>.txt."""

    channel = "cli"

    def __init__(self, inbox: Path):
        self.inbox = Path(inbox)

    @classmethod
    def from_settings(cls, settings: Settings) -> CliNotifier:
        return cls(settings.home / INBOX_DIR)

    def path_for(self, user_id: str) -> Path:
        return self.inbox / f"{_safe_name(user_id) or 'unknown'}.txt"

    def deliver(self, request: InfoRequest, asker: Asker) -> None:
        try:
            self.inbox.mkdir(parents=True, exist_ok=True)
            with self.path_for(asker.user_id).open("a", encoding="utf-8") as out:
                out.write(format_answer_message(request) + "\n\n")
        except OSError as exc:
            raise DeliveryError(f"cannot write to the inbox {self.inbox}: {exc}") from exc


def format_answer_message(request: InfoRequest) -> str:
    """Plain text telling an asker their request was answered."""
    date = (request.answered_at or "")[:10]
    return (
        f"Your request #{request.request_id} was answered by {request.answered_by} on {date}.\n"
        f"Question: {request.question}\n"
        f"Answer:\n{request.answer}"
    )


def notifier_from_settings(settings: Settings) -> CliNotifier:
    """The terminal inbox is always there."""
    return CliNotifier.from_settings(settings)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name).strip("._")[:100]
