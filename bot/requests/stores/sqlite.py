"""The follow-up request store on SQLite: one file in the data directory, shared by processes.

The Slack process, the email process and an officer's CLI may write at once. WAL lets readers
carry on while one writer commits; every write is one `BEGIN IMMEDIATE` transaction that reads the
current state, checks the transition and writes, so a change is never made from a stale read and
two officers answering the same request give one answer and one clear error. `busy_timeout` makes
a writer wait for the lock instead of failing.

The schema grows only by appending named migrations (recorded in `_migrations`). Rows are never
deleted except by `purge`, which removes finished requests with their askers' personal data and
leaves one audit event saying that it happened.

The lifecycle, audit, linking, delivery and purge rules are written once, in
`bot.requests.stores.sql`, shared with PostgreSQL; this module holds the connection, the schema
and the SQLite specifics.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from bot.requests.model import utc_now
from bot.requests.similar import Similarity
from bot.requests.stores import schema
from bot.requests.stores.sql import SqlRequestStore

BUSY_TIMEOUT_MS = 30_000  # a writer queues behind others for up to 30 s before giving up


def migrate(db: sqlite3.Connection, now: str) -> list[str]:
    """Apply the migrations this file lacks, inside the caller's transaction."""
    return schema.migrate(db, schema.SQLITE, now)


class SqliteRequestStore(SqlRequestStore):
    """`RequestStore` on one SQLite file; safe to share between threads and processes."""

    BEGIN_WRITE = "BEGIN IMMEDIATE"  # takes the write lock now, so reads in it are current
    BEGIN_READ = "BEGIN"  # one snapshot for the several SELECTs of a read

    def __init__(
        self,
        path: Path | str,
        similarity: Similarity | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        super().__init__(similarity, clock)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._tx = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # an officer's answer survives power loss
        self._db.execute("PRAGMA secure_delete = ON")  # purged personal data is overwritten
        self._db.execute("PRAGMA foreign_keys = ON")
        with self._write() as db:
            migrate(db, self._now())

    def _in(self, column: str, values: Sequence) -> tuple[str, list]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def _after_purge(self) -> None:
        with self._lock:  # fold the WAL back so deleted rows do not linger in it
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
