"""What the email channel keeps about people, and forgetting it when requests are purged."""

from __future__ import annotations

from bot.channels.email.app import STATE_FILE
from bot.channels.email.state import EmailState
from bot.settings import Settings


def forget(settings: Settings, older_than: str, request_ids: list[int]) -> int:
    """Blank senders and subjects in the mail state older than the cut-off; how many."""
    path = settings.home / STATE_FILE
    if not path.exists():
        return 0
    state = EmailState(path)
    try:
        return state.forget_people(older_than)
    finally:
        state.close()
