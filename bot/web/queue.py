"""The desk's queue: which requests an officer asked to see, in which order, one page at a time.

Pure: it takes requests from the store and the query from the page's address, and gives rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bot.promises.log import PROMISE_CHANNEL
from bot.requests.model import (
    PENDING,
    STATES,
    InfoRequest,
    RequestFilter,
    is_overdue,
    working_days_between,
)

WAITING, ALL = "waiting", "all"  # open or assigned; every state
STATE_CHOICES = (WAITING, ALL, *STATES)


@dataclass(frozen=True)
class QueueQuery:
    """The queue's filters, as the page's address carries them."""

    state: str = WAITING
    committee: str = ""
    overdue: bool = False
    mine: bool = False
    promises: bool = False  # only promises found in the papers
    q: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> QueueQuery:
        """Read the query string; anything unexpected falls back to the default."""
        state = args.get("state", WAITING)
        try:
            page = max(1, int(args.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            state=state if state in STATE_CHOICES else WAITING,
            committee=args.get("committee", "").strip()[:200],
            overdue=args.get("overdue") == "1",
            mine=args.get("mine") == "1",
            promises=args.get("promises") == "1",
            q=args.get("q", "").strip()[:200],
            page=page,
        )

    def store_filter(self) -> RequestFilter:
        """The part of the query the store can apply."""
        states = PENDING if self.state == WAITING else () if self.state == ALL else (self.state,)
        return RequestFilter(states=tuple(states), committee=self.committee or None)

    def params(self, **changes) -> dict[str, str]:
        """The query string for a link: this query with some fields changed, defaults left out."""
        query = replace(self, **changes)
        out = {
            "state": query.state if query.state != WAITING else "",
            "committee": query.committee,
            "overdue": "1" if query.overdue else "",
            "mine": "1" if query.mine else "",
            "promises": "1" if query.promises else "",
            "q": query.q,
            "page": str(query.page) if query.page > 1 else "",
        }
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class QueueRow:
    """One request as the queue shows it."""

    request: InfoRequest
    age_days: int  # working days since it was logged (until it was answered, if it was)
    overdue: bool

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted({a.channel for a in self.request.askers}))


@dataclass(frozen=True)
class QueuePage:
    rows: tuple[QueueRow, ...]
    page: int
    pages: int
    total: int


def select(
    requests: Sequence[InfoRequest],
    query: QueueQuery,
    officer: str,
    now: datetime,
    overdue_days: int,
) -> list[QueueRow]:
    """The requests the query asks for, overdue first and oldest first within each group."""
    rows = []
    for request in requests:
        if query.mine and request.assigned_to != officer:
            continue
        if query.promises and not any(a.channel == PROMISE_CHANNEL for a in request.askers):
            continue
        if query.q and not matches(request, query.q):
            continue
        row = QueueRow(
            request, age_in_working_days(request, now), is_overdue(request, now, overdue_days)
        )
        if query.overdue and not row.overdue:
            continue
        rows.append(row)
    return sorted(
        rows,
        key=lambda r: (not r.overdue, r.request.state not in PENDING, r.request.created_at),
    )


def age_in_working_days(request: InfoRequest, now: datetime) -> int:
    start = datetime.fromisoformat(request.created_at)
    end = datetime.fromisoformat(request.answered_at) if request.answered_at else now
    return working_days_between(start, end)


def matches(request: InfoRequest, needle: str) -> bool:
    """Search: a request number (#12), or words in the question, answer, committee or askers."""
    needle = needle.strip()
    if needle.lstrip("#").isdigit():
        return request.request_id == int(needle.lstrip("#"))
    haystack = " ".join(
        [
            request.question,
            request.answer or "",
            request.reason or "",
            request.committee or "",
            request.assigned_to or "",
            *(f"{a.user_id} {a.display_name}" for a in request.askers),
        ]
    ).casefold()
    return all(word in haystack for word in needle.casefold().split())


def paginate(rows: Sequence[QueueRow], page: int, size: int) -> QueuePage:
    pages = max(1, math.ceil(len(rows) / size))
    page = min(max(1, page), pages)
    start = (page - 1) * size
    return QueuePage(tuple(rows[start : start + size]), page, pages, len(rows))
