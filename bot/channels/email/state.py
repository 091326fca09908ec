"""What the email assistant has done with each message, by Message-ID (SQLite in the data dir).

This table, not the IMAP flags, is what makes replies exactly-once: a message is recorded as
'sending' (with the reply's own Message-ID) before the reply goes to the SMTP server, and a
message found in 'sending' after a crash is never sent again.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ANSWERING = "answering"  # being answered; nothing sent yet, safe to redo
SENDING = "sending"  # handed to SMTP; may or may not have left: never resend
SENT = "sent"
UNCERTAIN = "uncertain"  # found in 'sending' after a restart; flagged for an officer
FAILED = "failed"  # the SMTP server refused the reply; flagged for an officer
IGNORED = "ignored"  # automatic mail: replying could start a loop
UNKNOWN_SENDER = "unknown-sender"
QUARANTINED = "quarantined"
RETRYABLE = frozenset({ANSWERING})
# A message another process started answering this recently is left to it: two `clerk email`
# processes on one mailbox (cron overlapping a long run) must not both reply.
CLAIM_SECONDS = 600

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "001_messages",
        """
        CREATE TABLE messages (
            message_key TEXT PRIMARY KEY,
            sender TEXT NOT NULL DEFAULT '',
            subject TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            reply_id TEXT,
            request_id INTEGER,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX messages_state ON messages (state);
        """,
    ),
)


@dataclass(frozen=True)
class MessageRecord:
    """One incoming message as the state table knows it."""

    message_key: str
    sender: str
    subject: str
    state: str
    reason: str
    reply_id: str | None
    request_id: int | None
    created_at: str
    updated_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _recent(record: MessageRecord) -> bool:
    age = datetime.now(UTC) - datetime.fromisoformat(record.updated_at)
    return age.total_seconds() < CLAIM_SECONDS


class EmailState:
    """The processed-messages table in its own SQLite file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # may be created by one thread and used by the polling thread; one transaction at a time
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a 'sending' row must survive a crash
        self._migrate()

    def _migrate(self) -> None:
        with self._write():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in self._db.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name not in done:
                    for statement in filter(str.strip, sql.split(";")):
                        self._db.execute(statement)
                    self._db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def forget_people(self, older_than: str) -> int:
        """Blank the sender and subject of messages last touched before `older_than` (ISO
        time). The message keys stay, so a purged message is still never answered twice."""
        with self._write():
            cursor = self._db.execute(
                "UPDATE messages SET sender = '', subject = ''"
                " WHERE updated_at < ? AND (sender != '' OR subject != '')",
                (older_than,),
            )
        return cursor.rowcount

    def get(self, key: str) -> MessageRecord | None:
        with self._lock:
            sql = "SELECT * FROM messages WHERE message_key = ?"
            row = self._db.execute(sql, (key,)).fetchone()
        return MessageRecord(**dict(row)) if row else None

    def claim(self, key: str, sender: str, subject: str) -> bool:
        """Start answering a message; False when it was already handled (or is being sent)."""
        with self._write():
            record = self.get(key)
            if record is not None and (record.state not in RETRYABLE or _recent(record)):
                return False
            self._upsert(key, sender, subject, ANSWERING, "")
        return True

    def release(self, key: str) -> None:
        """Give up a claim after an error before sending, so a later pass tries again."""
        with self._write():
            self._db.execute(
                "DELETE FROM messages WHERE message_key = ? AND state = ?", (key, ANSWERING)
            )

    def record(self, key: str, sender: str, subject: str, state: str, reason: str = "") -> bool:
        """Record a final outcome for a message not answered; never overwrites a reply's trail."""
        with self._write():
            record = self.get(key)
            if record is not None and record.state not in RETRYABLE:
                return False
            self._upsert(key, sender, subject, state, reason)
        return True

    def sending(self, key: str, reply_id: str, request_id: int | None) -> None:
        """Note the reply's Message-ID just before it is handed to the SMTP server."""
        self._set(key, SENDING, reply_id=reply_id, request_id=request_id)

    def finish(self, key: str, state: str, reason: str = "") -> None:
        self._set(key, state, reason=reason)

    def _set(self, key: str, state: str, **values) -> None:
        columns = {"state": state, "updated_at": _now(), **values}
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._write():
            self._db.execute(
                f"UPDATE messages SET {assignments} WHERE message_key = ?",
                (*columns.values(), key),
            )

    def _upsert(self, key: str, sender: str, subject: str, state: str, reason: str) -> None:
        now = _now()
        self._db.execute(
            """INSERT INTO messages (message_key, sender, subject, state, reason, created_at,
                                     updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (message_key) DO UPDATE SET state = excluded.state,
                   reason = excluded.reason, updated_at = excluded.updated_at""",
            (key, sender, subject[:500], state, reason, now, now),
        )

    def counts(self) -> dict[str, int]:
        """How many messages are in each state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM messages GROUP BY state")
            return {state: count for state, count in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
