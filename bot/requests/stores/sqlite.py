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
from bot.requests.stores.sql import SqlRequestStore, apply_migrations

BUSY_TIMEOUT_MS = 30_000  # a writer queues behind others for up to 30 s before giving up

MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = []


def migration(fn: Callable[[sqlite3.Connection], None]):
    """Register a schema step; never edit or reorder one that has shipped, append a new one."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_requests(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            question TEXT NOT NULL,
            normalised TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            committee TEXT,
            nearest TEXT NOT NULL DEFAULT '[]',
            assigned_to TEXT,
            answer TEXT,
            answered_by TEXT,
            answered_at TEXT,
            duplicate_of INTEGER,
            reason TEXT)"""
    )
    db.execute("CREATE INDEX requests_state ON requests (state, normalised)")


@migration
def m002_askers(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE askers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id INTEGER NOT NULL REFERENCES requests (id),
            channel TEXT NOT NULL,
            user_id TEXT NOT NULL,
            display_name TEXT NOT NULL DEFAULT '',
            reply_to TEXT NOT NULL DEFAULT '{}',
            question TEXT NOT NULL,
            asked_at TEXT NOT NULL,
            UNIQUE (request_id, channel, user_id))"""
    )


@migration
def m003_audit(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id INTEGER NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '')"""
    )
    db.execute("CREATE INDEX audit_request ON audit (request_id, id)")


@migration
def m004_deliveries(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id INTEGER NOT NULL REFERENCES requests (id),
            asker_id INTEGER NOT NULL REFERENCES askers (id),
            channel TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TEXT,
            sent_at TEXT,
            UNIQUE (request_id, asker_id))"""
    )
    db.execute("CREATE INDEX deliveries_due ON deliveries (state, channel, next_attempt_at)")


def migrate(db: sqlite3.Connection, now: str) -> list[str]:
    """Apply the migrations this file lacks, inside the caller's transaction."""
    return apply_migrations(db, MIGRATIONS, lambda db, step: step(db), now)


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
