"""The follow-up request store on PostgreSQL, for deployments where several processes or hosts share
the requests. Chosen by `CLERK_DATABASE_URL=postgresql://...`; SQLite stays the default.

It behaves exactly like `SqliteRequestStore`: the rules are written once, in
`bot.requests.stores.sql`, and the same store tests run against both; this module holds the
connection, the schema and the locking. Every write is one transaction that first takes a
transaction-scoped advisory lock, so writers queue one at a time as they do on SQLite, and a change
is never made from a stale read; reads run in one repeatable-read snapshot. Timestamps are the same
ISO 8601 UTC strings as on SQLite, so ordering and the overdue and purge cut-offs compare the same
way. The schema grows by appending named migrations, recorded in `_migrations`, applied under the
same lock so two processes starting at once migrate once.
"""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import Callable, Sequence
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from bot.requests.model import utc_now
from bot.requests.similar import Similarity
from bot.requests.stores import schema
from bot.requests.stores.sql import SqlRequestStore
from indexer.errors import ConfigError

WRITE_LOCK = 0x436C65726B  # "Clerk": the advisory lock every write transaction holds
LOCK_TIMEOUT = "30s"  # a writer queues behind others this long before giving up


def migrate(db: psycopg.Connection, now: str) -> list[str]:
    """Apply the migrations the database lacks, inside the caller's (locked) transaction."""
    return schema.migrate(_Qmarks(db), schema.POSTGRES, now, execute=db.execute)


class _Qmarks:
    """A psycopg connection that takes the shared SQL's `?` placeholders."""

    def __init__(self, db: psycopg.Connection):
        self._db = db

    def execute(self, sql: str, args: Sequence | None = None) -> psycopg.Cursor:
        return self._db.execute(sql.replace("?", "%s"), args)


def describe_url(url: str) -> str:
    """host:port/database of a connection URL, never the password."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresRequestStore(SqlRequestStore):
    """`RequestStore` on PostgreSQL; safe to share between threads, processes and hosts."""

    BEGIN_WRITE = "BEGIN"  # then the advisory lock: see _lock_writes
    BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    LOST_CONNECTION = (psycopg.OperationalError, psycopg.InterfaceError)

    def __init__(
        self,
        url: str,
        similarity: Similarity | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        super().__init__(similarity, clock)
        self._url = url
        self._connect()
        with self._write():
            migrate(self._db, self._now())

    def _connect(self) -> None:
        try:
            self._db = psycopg.connect(self._url, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise ConfigError(
                f"cannot connect to PostgreSQL at {describe_url(self._url)}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from exc
        self._tx = _Qmarks(self._db)
        self._db.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")

    def _reconnect(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._db.close()
        self._connect()

    def _lock_writes(self) -> None:
        self._db.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    def _in(self, column: str, values: Sequence) -> tuple[str, list]:
        return f"{column} = ANY(?)", [list(values)]
