"""The follow-up request store on SQLite: one file in the data directory, shared by processes.

The Slack process, the email process and an officer's CLI may write at once. WAL lets readers
carry on while one writer commits; every write is one `BEGIN IMMEDIATE` transaction that reads the
current state, checks the transition and writes, so a change is never made from a stale read and
two officers answering the same request give one answer and one clear error. `busy_timeout` makes
a writer wait for the lock instead of failing.

The schema grows only by appending named migrations (recorded in `_migrations`). Rows are never
deleted except by `purge`, which removes finished requests with their askers' personal data and
leaves one audit event saying that it happened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from bot.requests import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    DECLINED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_SENT,
    DUPLICATE,
    OPEN,
    PENDING,
    PURGEABLE,
    STORE_EVENT,
    Asker,
    AuditEvent,
    Delivery,
    InfoRequest,
    Logged,
    RequestFilter,
    check_transition,
    clean_text,
    iso,
    overdue_cutoff,
    utc_now,
)
from bot.similar import Similarity, TokenSimilarity, normalise_question
from indexer.errors import RequestError
from indexer.types import Citation

# A delivery that has failed this many times stays "failed" (kept, listed, retried only when an
# officer runs `clerk requests deliver --retry-failed`): about two hours of outage at the backoff.
MAX_DELIVERY_ATTEMPTS = 8
RETRY_BASE_SECONDS = 60  # first retry after a minute, doubling each time ...
RETRY_MAX_SECONDS = 3600  # ... but never waiting more than an hour
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
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, step in MIGRATIONS:
        if name not in done:
            step(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now))
            applied.append(name)
    return applied


class SqliteRequestStore:
    """`RequestStore` on one SQLite file; safe to share between threads and processes."""

    def __init__(
        self,
        path: Path | str,
        similarity: Similarity | None = None,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.similarity = similarity or TokenSimilarity()
        self.clock = clock
        self._lock = threading.Lock()  # one transaction at a time per connection
        self._db = sqlite3.connect(
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

    # ---- plumbing ----------------------------------------------------------------------------

    def _now(self) -> str:
        return iso(self.clock())

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")  # one snapshot for the several SELECTs of a read
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def close_store(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteRequestStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close_store()

    def _audit(self, db, request_id: int, actor: str, action: str, detail: str = "") -> None:
        db.execute(
            "INSERT INTO audit (request_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
            (request_id, self._now(), actor, action, detail),
        )

    # ---- reading -----------------------------------------------------------------------------

    def get(self, request_id: int) -> InfoRequest:
        with self._read() as db:
            return _load_one(db, request_id)

    def list(self, where: RequestFilter | None = None) -> list[InfoRequest]:
        where = where or RequestFilter()
        sql, args = "SELECT id FROM requests WHERE 1=1", []
        if where.states:
            sql += f" AND state IN ({','.join('?' * len(where.states))})"
            args += list(where.states)
        if where.created_before:
            sql += " AND created_at < ?"
            args.append(where.created_before)
        with self._read() as db:
            ids = [row[0] for row in db.execute(sql + " ORDER BY id", args)]
            return [r for r in _load_many(db, ids) if where.admits(r)]

    def overdue(self, working_days: int, now: datetime | None = None) -> list[InfoRequest]:
        cutoff = overdue_cutoff(now or self.clock(), working_days)
        return self.list(RequestFilter(states=PENDING, created_before=iso(cutoff)))

    def history(self, request_id: int | None = None) -> list[AuditEvent]:
        sql, args = "SELECT * FROM audit", ()
        if request_id is not None:
            sql, args = sql + " WHERE request_id = ?", (request_id,)
        with self._read() as db:
            if request_id is not None:
                _row(db, request_id)  # unknown ids are an error, not an empty history
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [
            AuditEvent(r["request_id"], r["at"], r["actor"], r["action"], r["detail"]) for r in rows
        ]

    def deliveries(self, request_id: int | None = None, state: str | None = None) -> list[Delivery]:
        sql, args = _DELIVERY_SELECT + " WHERE 1=1", []
        if request_id is not None:
            sql += " AND d.request_id = ?"
            args.append(request_id)
        if state is not None:
            sql += " AND d.state = ?"
            args.append(state)
        with self._read() as db:
            return [_delivery(r) for r in db.execute(sql + " ORDER BY d.id", args)]

    # ---- logging questions -------------------------------------------------------------------

    def log(
        self,
        question: str,
        asker: Asker,
        nearest: Sequence[Citation] = (),
        committee: str | None = None,
    ) -> Logged:
        question = clean_text(question, "question")
        # Compare outside the write lock: an embedder may take a moment, and other processes
        # should not wait for it. The choice is re-checked inside the transaction.
        candidate = self._find_pending_match(question)
        with self._write() as db:
            if candidate is not None and _row(db, candidate)["state"] not in PENDING:
                candidate = None  # answered or declined meanwhile: this is a new request
            if candidate is None:
                candidate = _exact_pending(db, normalise_question(question))
            if candidate is not None:
                self._link(db, candidate, question, asker)
                return Logged(_load_one(db, candidate), created=False)
            request_id = self._insert(db, question, nearest, committee)
            self._add_asker(db, request_id, question, asker)
            self._audit(db, request_id, _who(asker), "logged", question)
            return Logged(_load_one(db, request_id), created=True)

    def _find_pending_match(self, question: str) -> int | None:
        with self._read() as db:
            rows = db.execute(
                "SELECT r.id, r.question, a.question AS wording FROM requests r "
                "LEFT JOIN askers a ON a.request_id = r.id "
                f"WHERE r.state IN ({_PENDING_MARKS}) ORDER BY r.id",
                PENDING,
            ).fetchall()
        for row in rows:
            for wording in {row["question"], row["wording"] or row["question"]}:
                if self.similarity.similar(question, wording):
                    return row["id"]
        return None

    def _insert(self, db, question, nearest, committee) -> int:
        now = self._now()
        cursor = db.execute(
            "INSERT INTO requests (question, normalised, state, created_at, updated_at, committee,"
            " nearest) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                question,
                normalise_question(question),
                OPEN,
                now,
                now,
                committee,
                json.dumps([c.to_dict() for c in nearest]),
            ),
        )
        return int(cursor.lastrowid)

    def _add_asker(self, db, request_id: int, question: str, asker: Asker) -> bool:
        cursor = db.execute(
            "INSERT OR IGNORE INTO askers (request_id, channel, user_id, display_name, reply_to,"
            " question, asked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                asker.channel,
                asker.user_id,
                asker.display_name,
                json.dumps(dict(asker.reply_to)),
                question,
                self._now(),
            ),
        )
        return cursor.rowcount == 1

    def _link(self, db, request_id: int, question: str, asker: Asker) -> None:
        added = self._add_asker(db, request_id, question, asker)
        action = "linked asker" if added else "asked again"
        self._audit(db, request_id, _who(asker), action, question)
        db.execute("UPDATE requests SET updated_at = ? WHERE id = ?", (self._now(), request_id))

    # ---- officers' changes -------------------------------------------------------------------

    def _change(self, db, request_id: int, new_state: str) -> InfoRequest:
        request = _load_one(db, request_id)
        check_transition(request, new_state)
        return request

    def assign(self, request_id: int, officer: str) -> InfoRequest:
        officer = clean_text(officer, "officer name")
        with self._write() as db:
            self._change(db, request_id, ASSIGNED)
            db.execute(
                "UPDATE requests SET state = ?, assigned_to = ?, updated_at = ? WHERE id = ?",
                (ASSIGNED, officer, self._now(), request_id),
            )
            self._audit(db, request_id, officer, "assigned", officer)
            return _load_one(db, request_id)

    def answer(self, request_id: int, officer: str, text: str) -> InfoRequest:
        officer = clean_text(officer, "officer name")
        text = clean_text(text, "answer")
        with self._write() as db:
            self._change(db, request_id, ANSWERED)
            now = self._now()
            db.execute(
                "UPDATE requests SET state = ?, answer = ?, answered_by = ?, answered_at = ?,"
                " updated_at = ? WHERE id = ?",
                (ANSWERED, text, officer, now, now, request_id),
            )
            self._audit(db, request_id, officer, "answered", text)
            queued = self._queue_deliveries(db, request_id)
            self._audit(db, request_id, officer, "deliveries queued", str(queued))
            return _load_one(db, request_id)

    def close(self, request_id: int, officer: str) -> InfoRequest:
        return self._simple(request_id, officer, CLOSED, "closed", "")

    def decline(self, request_id: int, officer: str, reason: str) -> InfoRequest:
        reason = clean_text(reason, "reason for declining")
        return self._simple(request_id, officer, DECLINED, "declined", reason)

    def reopen(self, request_id: int, actor: str, reason: str = "") -> InfoRequest:
        return self._simple(request_id, actor, OPEN, "reopened", reason.strip())

    def _simple(self, request_id, actor, state, action, detail) -> InfoRequest:
        actor = clean_text(actor, "officer name")
        with self._write() as db:
            self._change(db, request_id, state)
            sets = {"state": state, "updated_at": self._now()}
            if state == DECLINED:
                sets["reason"] = detail
            if state == OPEN:
                sets.update(assigned_to=None, duplicate_of=None, reason=None)
            _update(db, request_id, sets)
            self._audit(db, request_id, actor, action, detail)
            return _load_one(db, request_id)

    def mark_duplicate(self, request_id: int, of_id: int, officer: str) -> InfoRequest:
        officer = clean_text(officer, "officer name")
        with self._write() as db:
            self._change(db, request_id, DUPLICATE)
            target = _load_one(db, of_id)
            while target.state == DUPLICATE and target.duplicate_of is not None:
                target = _load_one(db, target.duplicate_of)  # point at the request that lives
            if target.request_id == request_id:
                raise RequestError(f"request #{request_id} cannot be a duplicate of itself")
            if target.state in (DECLINED,):
                raise RequestError(f"request #{target.request_id} was declined; reopen it first")
            _update(
                db,
                request_id,
                {"state": DUPLICATE, "duplicate_of": target.request_id, "updated_at": self._now()},
            )
            self._audit(db, request_id, officer, "marked duplicate", f"of #{target.request_id}")
            self._audit(db, target.request_id, officer, "duplicate linked", f"#{request_id}")
            if target.state in (ANSWERED, CLOSED):
                self._queue_deliveries(db, target.request_id)  # tell the new askers at once
            return _load_one(db, request_id)

    # ---- deliveries --------------------------------------------------------------------------

    def _queue_deliveries(self, db, request_id: int) -> int:
        """A pending delivery for every asker of the request and of its duplicates."""
        cursor = db.execute(
            "INSERT OR IGNORE INTO deliveries (request_id, asker_id, channel, state)"
            " SELECT ?, a.id, a.channel, ? FROM askers a JOIN requests r ON r.id = a.request_id"
            " WHERE r.id = ? OR (r.state = ? AND r.duplicate_of = ?) ORDER BY a.id",
            (request_id, DELIVERY_PENDING, request_id, DUPLICATE, request_id),
        )
        return cursor.rowcount

    def claim_deliveries(
        self, channels: Iterable[str], now: datetime | None = None, lease_seconds: int = 300
    ) -> list[Delivery]:
        channels = list(channels)
        if not channels:
            return []
        moment = now or self.clock()
        with self._write() as db:
            rows = db.execute(
                _DELIVERY_SELECT + " WHERE d.state = ? AND d.channel IN "
                f"({','.join('?' * len(channels))}) AND (d.next_attempt_at IS NULL OR "
                "d.next_attempt_at <= ?) ORDER BY d.id",
                [DELIVERY_PENDING, *channels, iso(moment)],
            ).fetchall()
            lease = iso(moment + timedelta(seconds=lease_seconds))
            db.executemany(
                "UPDATE deliveries SET next_attempt_at = ? WHERE id = ?",
                [(lease, r["id"]) for r in rows],
            )
        return [_delivery(r) for r in rows]

    def record_delivery(
        self, delivery_id: int, error: str | None = None, now: datetime | None = None
    ) -> Delivery:
        moment = now or self.clock()
        with self._write() as db:
            row = db.execute(_DELIVERY_SELECT + " WHERE d.id = ?", (delivery_id,)).fetchone()
            if row is None:
                raise RequestError(f"no delivery #{delivery_id}")
            if row["state"] != DELIVERY_PENDING:
                raise RequestError(f"delivery #{delivery_id} is already {row['state']}")
            attempts = row["attempts"] + 1
            who = f"{row['channel']}:{row['user_id']}"
            if error is None:
                sets = {"state": DELIVERY_SENT, "sent_at": iso(moment), "next_attempt_at": None}
                self._audit(db, row["request_id"], "clerk", "delivered", who)
            else:
                gave_up = attempts >= MAX_DELIVERY_ATTEMPTS
                wait = min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
                sets = {
                    "state": DELIVERY_FAILED if gave_up else DELIVERY_PENDING,
                    "last_error": error[:2000],
                    "next_attempt_at": None if gave_up else iso(moment + timedelta(seconds=wait)),
                }
                action = "delivery failed" if gave_up else "delivery will be retried"
                self._audit(db, row["request_id"], "clerk", action, f"{who}: {error[:500]}")
            sets["attempts"] = attempts
            _update(db, delivery_id, sets, table="deliveries")
            return _delivery(
                db.execute(_DELIVERY_SELECT + " WHERE d.id = ?", (delivery_id,)).fetchone()
            )

    def retry_failed(self, actor: str, request_id: int | None = None) -> int:
        with self._write() as db:
            sql, args = "SELECT id, request_id FROM deliveries WHERE state = ?", [DELIVERY_FAILED]
            if request_id is not None:
                sql += " AND request_id = ?"
                args.append(request_id)
            rows = db.execute(sql, args).fetchall()
            for row in rows:
                _update(
                    db,
                    row["id"],
                    {"state": DELIVERY_PENDING, "next_attempt_at": None},
                    table="deliveries",
                )
                self._audit(
                    db, row["request_id"], actor, "delivery retry", f"delivery #{row['id']}"
                )
            return len(rows)

    # ---- retention ---------------------------------------------------------------------------

    def purge(self, older_than: datetime, actor: str) -> list[int]:
        actor = clean_text(actor, "officer name")
        with self._write() as db:
            ids = [
                r[0]
                for r in db.execute(
                    f"SELECT id FROM requests WHERE state IN ({','.join('?' * len(PURGEABLE))})"
                    " AND updated_at < ? ORDER BY id",
                    [*PURGEABLE, iso(older_than)],
                )
            ]
            marks = ",".join("?" * len(ids))
            if ids:
                db.execute(
                    f"DELETE FROM deliveries WHERE request_id IN ({marks}) OR asker_id IN "
                    f"(SELECT id FROM askers WHERE request_id IN ({marks}))",
                    ids + ids,
                )
                for table, column in (("askers", "request_id"), ("audit", "request_id")):
                    db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
                db.execute(f"DELETE FROM requests WHERE id IN ({marks})", ids)
            detail = (
                f"purged {len(ids)} finished request(s) last changed before {iso(older_than)}"
                + (f": #{', #'.join(map(str, ids))}" if ids else "")
            )
            self._audit(db, STORE_EVENT, actor, "purge", detail)
        with self._lock:  # fold the WAL back so deleted rows do not linger in it
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return ids


_PENDING_MARKS = ",".join("?" * len(PENDING))
_DELIVERY_SELECT = (
    "SELECT d.*, a.channel AS a_channel, a.user_id, a.display_name, a.reply_to "
    "FROM deliveries d JOIN askers a ON a.id = d.asker_id"
)


def _who(asker: Asker) -> str:
    return f"{asker.channel}:{asker.user_id}"


def _update(db, row_id: int, sets: dict, table: str = "requests") -> None:
    columns = ", ".join(f"{name} = ?" for name in sets)
    db.execute(f"UPDATE {table} SET {columns} WHERE id = ?", [*sets.values(), row_id])


def _row(db, request_id: int) -> sqlite3.Row:
    row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        raise RequestError(f"there is no request #{request_id}")
    return row


def _exact_pending(db, normalised: str) -> int | None:
    row = db.execute(
        f"SELECT id FROM requests WHERE normalised = ? AND state IN ({_PENDING_MARKS})"
        " ORDER BY id LIMIT 1",
        (normalised, *PENDING),
    ).fetchone()
    return None if row is None else int(row[0])


def _load_one(db, request_id: int) -> InfoRequest:
    _row(db, request_id)
    return _load_many(db, [request_id])[0]


def _load_many(db, ids: list[int]) -> list[InfoRequest]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    askers: dict[int, list[Asker]] = {i: [] for i in ids}
    for a in db.execute(f"SELECT * FROM askers WHERE request_id IN ({marks}) ORDER BY id", ids):
        askers[a["request_id"]].append(_asker(a))
    rows = db.execute(f"SELECT * FROM requests WHERE id IN ({marks}) ORDER BY id", ids)
    return [_request(r, askers[r["id"]]) for r in rows]


def _asker(row: sqlite3.Row) -> Asker:
    return Asker(
        channel=row["channel"],
        user_id=row["user_id"],
        display_name=row["display_name"],
        reply_to=json.loads(row["reply_to"]),
    )


def _request(row: sqlite3.Row, askers: list[Asker]) -> InfoRequest:
    return InfoRequest(
        request_id=row["id"],
        question=row["question"],
        state=row["state"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        askers=tuple(askers),
        nearest=tuple(Citation(**c) for c in json.loads(row["nearest"])),
        committee=row["committee"],
        assigned_to=row["assigned_to"],
        answer=row["answer"],
        answered_by=row["answered_by"],
        answered_at=row["answered_at"],
        duplicate_of=row["duplicate_of"],
        reason=row["reason"],
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        delivery_id=row["id"],
        request_id=row["request_id"],
        asker=Asker(
            row["a_channel"], row["user_id"], row["display_name"], json.loads(row["reply_to"])
        ),
        state=row["state"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        sent_at=row["sent_at"],
    )
