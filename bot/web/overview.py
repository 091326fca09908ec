"""The desk's overview: how the queue stands, and how fresh the index is."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bot.engine.status import index_status
from bot.requests.model import (
    PENDING,
    InfoRequest,
    is_overdue,
    working_days_between,
)
from bot.settings import Settings
from indexer.errors import ClerkError
from indexer.store import build_dir_of

# Written by the nightly service (docker/nightly-loop.sh) beside the index.
NIGHTLY_REPORT, NIGHTLY_STATUS = "nightly-last.json", "nightly-status"
NIGHTLY_MEANING = {0: "everything synced and indexed", 1: "some papers failed", 2: "could not run"}
TOP_COMMITTEES = 12


@dataclass(frozen=True)
class QueueFigures:
    """The queue in numbers."""

    waiting: int
    overdue: int
    answered_this_week: int
    median_days_to_answer: float | None
    per_committee: tuple[tuple[str, int], ...]
    per_state: tuple[tuple[str, int], ...]


def queue_figures(
    requests: Sequence[InfoRequest], now: datetime, overdue_days: int
) -> QueueFigures:
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0)
    answered = [r for r in requests if r.answered_at]
    days = [
        working_days_between(
            datetime.fromisoformat(r.created_at), datetime.fromisoformat(r.answered_at or "")
        )
        for r in answered
    ]
    committees = Counter(r.committee or "(none)" for r in requests)
    states = Counter(r.state for r in requests)
    return QueueFigures(
        waiting=sum(r.state in PENDING for r in requests),
        overdue=sum(is_overdue(r, now, overdue_days) for r in requests),
        answered_this_week=sum(
            datetime.fromisoformat(r.answered_at or "") >= monday for r in answered
        ),
        median_days_to_answer=statistics.median(days) if days else None,
        per_committee=tuple(committees.most_common(TOP_COMMITTEES)),
        per_state=tuple(states.most_common()),
    )


@dataclass(frozen=True)
class Freshness:
    """What the index holds and when it last changed; the nightly job's last outcome."""

    indexed: bool
    built_at: str | None = None
    newest_meeting: str | None = None
    documents: int = 0
    failed: int = 0
    nightly_status: int | None = None
    nightly_meaning: str = ""
    nightly_at: str | None = None
    message: str = ""


_cache: dict[Path, dict] = {}


def freshness(settings: Settings) -> Freshness:
    nightly, meaning, at = _nightly(settings.home)
    try:
        status = _index_status(settings)
    except ClerkError as exc:
        return Freshness(False, message=str(exc), nightly_status=nightly, nightly_meaning=meaning)
    return Freshness(
        True,
        built_at=status["built_at"],
        newest_meeting=status["newest_meeting"],
        documents=status["documents"],
        failed=len(status["failed"]),
        nightly_status=nightly,
        nightly_meaning=meaning,
        nightly_at=at,
    )


def _index_status(settings: Settings) -> dict:
    """`clerk status`'s figures, read once per published build (a build never changes)."""
    build = build_dir_of(settings.index.index_dir)
    if build is None or build not in _cache:
        status = index_status(settings)
        if build is not None:
            _cache.clear()
            _cache[build] = status
        return status
    return _cache[build]


def _nightly(home: Path) -> tuple[int | None, str, str | None]:
    try:
        code = int((home / NIGHTLY_STATUS).read_text().strip())
    except (OSError, ValueError):
        return None, "", None
    report = home / NIGHTLY_REPORT
    at = None
    try:
        at = datetime.fromtimestamp(report.stat().st_mtime).isoformat(timespec="minutes")
        json.loads(report.read_text(encoding="utf-8"))  # a half-written report is not trusted
    except (OSError, ValueError):
        pass
    return code, NIGHTLY_MEANING.get(code, f"exit status {code}"), at
