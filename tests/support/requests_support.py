"""Shared pieces for the follow-up request tests: a settable clock, a recording channel, and
the store kinds every store test runs against (the PostgreSQL helper appends its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.errors import DeliveryError
from bot.requests.model import Asker, InfoRequest
from bot.types import Citation

# Every store backend runs the same store tests (tests/test_requests_store.py): add a kind here and
# a branch in make_store (the PostgreSQL store: "postgres").
STORE_KINDS = ["sqlite", "postgres"]

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class RecordingNotifier:
    """A channel double: records what it was asked to deliver; can be told to fail."""

    def __init__(self, channel: str, fail_times: int = 0):
        self.channel = channel
        self.fail_times = fail_times
        self.delivered: list[tuple[int, str, str]] = []
        self.attempts = 0

    def deliver(self, request: InfoRequest, asker: Asker) -> None:
        self.attempts += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DeliveryError("channel unavailable (test)")
        self.delivered.append((request.request_id, asker.user_id, request.answer or ""))


def citation(council="Kent County Council", committee="Cabinet", score=0.4) -> Citation:
    return Citation(
        title="Revenue and Capital Budget Monitoring Report",
        council=council,
        committee=committee,
        meeting_date="2025-01-30",
        page=3,
        source="kent/cabinet/2025-01-30/report.pdf",
        url=None,
        quote="Highways maintenance is forecast to overspend.",
        score=score,
        chunk_id="abc123",
    )


ALICE = Asker("slack", "U0ALICE", "Cllr Alice", {"channel": "C1", "thread_ts": "1.2"})
BOB = Asker("email", "bob@council.example", "Cllr Bob", {"message_id": "<m1@example>"})
CAROL = Asker("cli", "carol")


def make_store(kind: str, tmp_path: Path, clock: Clock):
    """A fresh, empty request store of the given kind, on the test's clock."""
    if kind == "sqlite":
        from bot.requests.stores.sqlite import SqliteRequestStore

        return SqliteRequestStore(tmp_path / "requests.sqlite3", clock=clock)
    if kind == "postgres":  # a fresh database on the test process's real PostgreSQL server
        from pg_server import fresh_database

        from bot.requests.stores.postgres import PostgresRequestStore

        return PostgresRequestStore(fresh_database(), clock=clock)
    raise ValueError(f"unknown store kind {kind!r}")
