"""What the Slack channel keeps about people ("Helpful" clicks), and forgetting it."""

from __future__ import annotations

import json

from bot.settings import Settings
from indexer.files import write_atomic

FEEDBACK_FILE = "slack-feedback.jsonl"


def forget(settings: Settings, older_than: str, request_ids: list[int]) -> int:
    """Drop feedback lines (user, channel, question) older than the cut-off; how many."""
    path = settings.home / FEEDBACK_FILE
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            old = json.loads(line).get("at", "") < older_than
        except (ValueError, AttributeError):
            old = True  # unreadable: nothing worth keeping
        if old:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        write_atomic(path, "".join(f"{line}\n" for line in kept))
    return dropped
