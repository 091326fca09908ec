"""Follow-up requests to officers: the values, the lifecycle, and the store and notifier seams.

A question Clerk cannot answer becomes an InfoRequest. Officers move it through
open -> assigned -> answered -> closed (or declined, or duplicate); every change is an audit event.
The store sits behind `RequestStore` so SQLite (default) and PostgreSQL serve the same calls;
channels (Slack, email, terminal) deliver officers' answers through `Notifier`.

Everything here is pure (values, rules, formatting) so that every store backend enforces the same
lifecycle: `check_transition`, `clean_text`, `overdue_cutoff`, `is_overdue`,
`working_days_between`, `write_csv`; duplicate questions are recognised by
`bot.requests.similar`.
"""

from __future__ import annotations

import builtins
import csv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Protocol

from bot.errors import RequestError
from bot.types import Citation

OPEN, ASSIGNED, ANSWERED, CLOSED, DECLINED, DUPLICATE = (
    "open",
    "assigned",
    "answered",
    "closed",
    "declined",
    "duplicate",
)
STATES = (OPEN, ASSIGNED, ANSWERED, CLOSED, DECLINED, DUPLICATE)
# Which state may follow which; anything else is a RequestError.
TRANSITIONS: dict[str, frozenset[str]] = {
    OPEN: frozenset({ASSIGNED, ANSWERED, DECLINED, DUPLICATE}),
    ASSIGNED: frozenset({ASSIGNED, ANSWERED, DECLINED, DUPLICATE, OPEN}),
    ANSWERED: frozenset({CLOSED}),
    CLOSED: frozenset(),
    DECLINED: frozenset({OPEN}),
    DUPLICATE: frozenset({OPEN}),
}
PENDING = (OPEN, ASSIGNED)  # states in which a new asker links to the request
# The "asker" of a promise found in the papers (bot.promises.log) is the promise itself.
PROMISE_CHANNEL = "promise"


@dataclass(frozen=True)
class Asker:
    """Who asked, and where the answer must go back to."""

    channel: str  # "slack", "email", "cli", or PROMISE_CHANNEL
    user_id: str  # Slack user id, email address, or local user name
    display_name: str = ""
    # Slack: {"channel": "C..", "thread_ts": "..."}; email: {"message_id": "<..>",
    # "references": "<..> <..>", "subject": "..."}; cli: {}
    reply_to: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class InfoRequest:
    """One information request, as officers see it."""

    request_id: int
    question: str
    state: str
    created_at: str  # ISO 8601 UTC
    updated_at: str
    askers: tuple[Asker, ...]
    nearest: tuple[Citation, ...] = ()
    committee: str | None = None
    assigned_to: str | None = None
    answer: str | None = None
    answered_by: str | None = None
    answered_at: str | None = None
    duplicate_of: int | None = None
    reason: str | None = None  # why declined
    announced_at: str | None = None  # when it was posted to the officers' Slack channel

    @property
    def is_promise(self) -> bool:
        """Logged from a sentence in the papers that promised information, not asked by anyone."""
        return any(a.channel == PROMISE_CHANNEL for a in self.askers)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["askers"] = [asker_to_dict(a) for a in self.askers]
        data["nearest"] = [c.to_dict() for c in self.nearest]
        return data


def asker_to_dict(asker: Asker) -> dict:
    return {
        "channel": asker.channel,
        "user_id": asker.user_id,
        "display_name": asker.display_name,
        "reply_to": dict(asker.reply_to),
    }


@dataclass(frozen=True)
class AuditEvent:
    """One change to a request: who did what, when."""

    request_id: int
    at: str
    actor: str
    action: str
    detail: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Logged:
    """The result of logging a question: the request, and whether it is new or linked."""

    request: InfoRequest
    created: bool


# Delivery states: an officer's answer waiting for, reaching, or failing to reach one asker.
DELIVERY_PENDING, DELIVERY_SENT, DELIVERY_FAILED = "pending", "sent", "failed"
# Retention purge may remove only requests that are finished with.
PURGEABLE = (CLOSED, DECLINED, DUPLICATE)
# Audit events about the store as a whole (a purge) carry this request id.
STORE_EVENT = 0


@dataclass(frozen=True)
class Delivery:
    """One officer's answer on its way to one asker."""

    delivery_id: int
    request_id: int
    asker: Asker
    state: str  # DELIVERY_PENDING, DELIVERY_SENT or DELIVERY_FAILED
    attempts: int
    last_error: str | None = None
    next_attempt_at: str | None = None
    sent_at: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["asker"] = asker_to_dict(self.asker)
        return data


@dataclass(frozen=True)
class RequestFilter:
    """Which requests to list; every field left empty matches everything."""

    states: tuple[str, ...] = ()
    created_before: str | None = None  # ISO 8601 UTC, exclusive
    committee: str | None = None  # case-insensitive substring
    asker: str | None = None  # case-insensitive substring of any asker's id or name
    asker_id: str | None = None  # exactly one asker's user id (a Slack user's own requests)

    def admits(self, request: InfoRequest) -> bool:
        if self.asker_id and not any(a.user_id == self.asker_id for a in request.askers):
            return False
        if self.states and request.state not in self.states:
            return False
        if self.created_before and request.created_at >= self.created_before:
            return False
        if self.committee and self.committee.casefold() not in (request.committee or "").casefold():
            return False
        return not (self.asker and not any(_asker_matches(a, self.asker) for a in request.askers))


def _asker_matches(asker: Asker, needle: str) -> bool:
    needle = needle.casefold()
    return needle in asker.user_id.casefold() or needle in asker.display_name.casefold()


class RequestStore(Protocol):
    """Where follow-up requests live. Every write is one transaction and leaves an audit event.

    Writes raise RequestError for unknown ids and illegal state changes, and change nothing then.
    """

    def log(
        self,
        question: str,
        asker: Asker,
        nearest: Sequence[Citation] = (),
        committee: str | None = None,
    ) -> Logged:
        """Log a question; an equivalent pending request gains the asker instead (created=False)."""

    def get(self, request_id: int) -> InfoRequest: ...

    def list(self, where: RequestFilter | None = None) -> builtins.list[InfoRequest]:
        """Requests that pass the filter, oldest first."""

    def overdue(self, working_days: int, now: datetime | None = None) -> builtins.list[InfoRequest]:
        """Open or assigned requests logged more than `working_days` working days ago."""

    def history(self, request_id: int | None = None) -> builtins.list[AuditEvent]:
        """Audit events of one request, or of the whole store (purges included), in order."""

    def assign(self, request_id: int, officer: str) -> InfoRequest: ...

    def answer(self, request_id: int, officer: str, text: str) -> InfoRequest:
        """Record the answer and queue a delivery to every asker, in one transaction."""

    def close(self, request_id: int, officer: str) -> InfoRequest: ...

    def decline(self, request_id: int, officer: str, reason: str) -> InfoRequest: ...

    def reopen(self, request_id: int, actor: str, reason: str = "") -> InfoRequest:
        """Back to open from assigned, declined or duplicate."""

    def mark_duplicate(self, request_id: int, of_id: int, officer: str) -> InfoRequest:
        """Mark a request as a duplicate; its askers join the other request and hear its answer."""

    def claim_deliveries(
        self, channels: Iterable[str], now: datetime | None = None, lease_seconds: int = 300
    ) -> builtins.list[Delivery]:
        """Pending deliveries due now on these channels, leased so no other process sends them."""

    def record_delivery(
        self, delivery_id: int, error: str | None = None, now: datetime | None = None
    ) -> Delivery:
        """Record a send: error None means sent; otherwise retry later, or fail for good."""

    def deliveries(
        self, request_id: int | None = None, state: str | None = None
    ) -> builtins.list[Delivery]:
        """Deliveries of one request (or all), optionally in one state."""

    def retry_failed(self, actor: str, request_id: int | None = None) -> int:
        """Put deliveries that gave up back in the queue; returns how many."""

    def claim_announcements(
        self, now: datetime | None = None, lease_seconds: int = 300, limit: int = 100
    ) -> builtins.list[InfoRequest]:
        """Up to `limit` open or assigned requests not yet posted to the officers' channel nor
        claimed by another process, oldest first, claimed for `lease_seconds` so no one else
        posts them."""

    def record_announcement(
        self, request_id: int, error: str | None = None, now: datetime | None = None
    ) -> None:
        """Record a post to the officers' channel: error None means posted (never again);
        otherwise the claim is let go so that the next pass tries again."""

    def purge(self, older_than: datetime, actor: str) -> builtins.list[int]:
        """Delete finished requests last changed before `older_than`, with their askers'
        personal data and their events; leave one audit event that the purge happened."""

    def close_store(self) -> None: ...


class Notifier(Protocol):
    """A channel that can tell an asker their request was answered."""

    channel: str

    def deliver(self, request: InfoRequest, asker: Asker) -> None:
        """Send request.answer to the asker; raise DeliveryError to have it retried."""


# ---- rules every backend shares -------------------------------------------------------------


def check_transition(request: InfoRequest, new_state: str) -> None:
    """Raise RequestError, saying why, when the request may not move to `new_state`."""
    if new_state in TRANSITIONS[request.state]:
        return
    if request.state == ANSWERED and new_state == ANSWERED:
        raise RequestError(
            f"request #{request.request_id} was already answered by {request.answered_by} "
            f"at {request.answered_at}"
        )
    raise RequestError(
        f"request #{request.request_id} is {request.state}; it cannot become {new_state}"
        + (
            f" (allowed: {', '.join(sorted(TRANSITIONS[request.state]))})"
            if TRANSITIONS[request.state]
            else " (it is finished)"
        )
    )


def clean_text(text: str, what: str) -> str:
    """Strip text an officer or councillor typed; refuse it when nothing is left."""
    text = (text or "").strip()
    if not text:
        raise RequestError(f"the {what} is empty")
    return text


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The one timestamp format stored everywhere, so that text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def overdue_cutoff(now: datetime, working_days: int) -> datetime:
    """The moment `working_days` Monday-to-Friday days before `now` (bank holidays not known)."""
    moment, left = now, working_days
    while left > 0:
        moment -= timedelta(days=1)
        if moment.weekday() < 5:
            left -= 1
    return moment


def working_days_between(start: datetime, end: datetime) -> int:
    """Monday-to-Friday days after `start`'s date up to `end`'s date (bank holidays not known)."""
    day, last, count = start.date(), end.date(), 0
    while day < last:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count += 1
    return count


def is_overdue(request: InfoRequest, now: datetime, working_days: int) -> bool:
    """Still waiting for officers and logged before the cutoff: the rule `overdue()` lists by."""
    return request.state in PENDING and request.created_at < iso(overdue_cutoff(now, working_days))


def write_csv(requests: Iterable[InfoRequest], out: IO[str]) -> None:
    """Requests as a spreadsheet, one row each; cells that a spreadsheet would run are defused."""
    columns = (
        "request_id",
        "state",
        "created_at",
        "updated_at",
        "committee",
        "question",
        "askers",
        "assigned_to",
        "answered_by",
        "answered_at",
        "answer",
        "duplicate_of",
        "reason",
    )
    writer = csv.writer(out)
    writer.writerow(columns)
    for request in requests:
        row = request.to_dict()
        row["askers"] = "; ".join(_asker_label(a) for a in request.askers)
        writer.writerow([_cell(row[c]) for c in columns])


def _asker_label(asker: Asker) -> str:
    name = f" ({asker.display_name})" if asker.display_name else ""
    return f"{asker.channel}:{asker.user_id}{name}"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # Questions come from outside: "=HYPERLINK(...)" must stay text in Excel (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
