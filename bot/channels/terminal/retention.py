"""What the terminal channel keeps about people (inbox files), and forgetting it."""

from __future__ import annotations

import re

from bot.channels.terminal.notify import INBOX_DIR
from bot.settings import Settings
from indexer.files import write_atomic

_BLOCK = re.compile(r"(?=^Your request #\d+ was answered)", re.MULTILINE)
_NUMBER = re.compile(r"^Your request #(\d+) was answered")


def forget(settings: Settings, older_than: str, request_ids: list[int]) -> int:
    """Remove the answers to purged requests from every inbox file; how many."""
    inbox = settings.home / INBOX_DIR
    if not inbox.is_dir() or not request_ids:
        return 0
    purged, removed = set(request_ids), 0
    for path in inbox.glob("*.txt"):
        blocks = [b for b in _BLOCK.split(path.read_text(encoding="utf-8")) if b.strip()]
        keep = []
        for block in blocks:
            number = _NUMBER.match(block)
            if number and int(number.group(1)) in purged:
                removed += 1
            else:
                keep.append(block)
        if len(keep) != len(blocks):
            if keep:
                write_atomic(path, "".join(keep))
            else:
                path.unlink()
    return removed
