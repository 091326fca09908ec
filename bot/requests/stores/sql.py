"""The follow-up request store written once for every SQL backend (SQLite and PostgreSQL).

Every rule lives here: logging a question or linking its asker to an equivalent pending request,
officers' state changes and their audit events, duplicate linking, the delivery queue with its
retries, the claim on announcing a request to officers once, and the retention purge. A backend
subclasses `SqlRequestStore` and supplies only what genuinely differs:

- the connection, and `_tx`: what writes and reads run on, taking `?` placeholders;
- `BEGIN_WRITE` / `BEGIN_READ` and `_lock_writes`: how a write transaction queues behind others
  (SQLite `BEGIN IMMEDIATE`; PostgreSQL a transaction-scoped advisory lock) and how a read gets
  one snapshot;
- `_in`: how a column is matched against a list of values;
- `_after_purge`: housekeeping once purged rows are gone;
- its schema, as named migrations applied by `apply_migrations`.

SQL here uses `?` placeholders and no literal `?` or `%`, so a backend may rewrite the marks.
Rows are read by column name only (sqlite3.Row and psycopg's dict rows both allow it).
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from bot.errors import RequestError
from bot.requests.model import (
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
)
from bot.requests.similar import Similarity, TokenSimilarity, normalise_question
from bot.types import Citation

log = logging.getLogger(__name__)

# A delivery that has failed this many times stays "failed" (kept, listed, retried only when an
# officer runs `clerk requests deliver --retry-failed`): about two hours of outage at the backoff.
MAX_DELIVERY_ATTEMPTS = 8
RETRY_BASE_SECONDS = 60  # first retry after a minute, doubling each time ...
RETRY_MAX_SECONDS = 3600  # ... but never waiting more than an hour

_DELIVERY_SELECT = (
    "SELECT d.*, a.channel AS a_channel, a.user_id, a.display_name, a.reply_to "
    "FROM deliveries d JOIN askers a ON a.id = d.asker_id"
)
_COLUMNS = {
    "requests": {"state", "assigned_to", "answer", "answered_by", "answered_at", "updated_at",
                 "duplicate_of", "reason", "announced_at", "announce_claim"},
    "deliveries": {"state", "attempts", "last_error", "next_attempt_at", "sent_at"},
}  # fmt: skip


def apply_migrations(
    db: Any, migrations: Sequence[tuple[str, Any]], run: Callable[[Any, Any], None], now: str
) -> list[str]:
    """Run the named steps the database lacks (`run(db, step)`), recording each in `_migrations`,
    inside the caller's transaction; `db` takes `?` placeholders. Returns the names applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row["name"] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, step in migrations:
        if name not in done:
            run(db, step)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now))
            applied.append(name)
    return applied


class SqlRequestStore:
    """`RequestStore` over a SQL database; subclasses open the connection and supply the seam."""

    BEGIN_WRITE: ClassVar[str]  # starts a transaction that may write
    BEGIN_READ: ClassVar[str]  # starts a transaction that reads one snapshot
    # Errors meaning the connection is gone (a server restart, an idle-connection reaper):
    # before a transaction starts nothing can have happened, so reconnecting and starting it
    # again is safe. A transaction cut off midway is never repeated: its caller gets the error.
    LOST_CONNECTION: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, similarity: Similarity | None, clock: Callable[[], datetime]):
        self.similarity = similarity or TokenSimilarity()
        self.clock = clock
        self._lock = threading.Lock()  # one transaction at a time on this connection
        self._db: Any = None  # the backend's connection: set by the subclass
        self._tx: Any = None  # what statements run on, with `?` placeholders

    # ---- the seam ----------------------------------------------------------------------------

    def _lock_writes(self) -> None:
        """Inside BEGIN_WRITE: make this writer wait its turn (if BEGIN_WRITE did not)."""

    def _in(self, column: str, values: Sequence) -> tuple[str, list]:
        """SQL testing `column` against a non-empty list of values, and its arguments."""
        raise NotImplementedError

    def _after_purge(self) -> None:
        """Housekeeping after a purge has committed."""

    def _reconnect(self) -> None:
        """Replace a lost connection (backends with LOST_CONNECTION errors only)."""
        raise NotImplementedError

    # ---- plumbing ----------------------------------------------------------------------------

    def _now(self) -> str:
        return iso(self.clock())

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            self._begin(self.BEGIN_WRITE)
            try:
                self._lock_writes()
                yield self._tx
            except BaseException:
                self._end("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._lock:
            self._begin(self.BEGIN_READ)
            try:
                yield self._tx
            finally:
                self._end("COMMIT")

    def _begin(self, statement: str) -> None:
        try:
            self._db.execute(statement)
        except self.LOST_CONNECTION as exc:
            log.warning("request store connection lost (%s); reconnecting", type(exc).__name__)
            self._reconnect()
            self._db.execute(statement)

    def _end(self, statement: str) -> None:
        """ROLLBACK or a read's COMMIT: on a lost connection there is nothing left to end."""
        with suppress(*self.LOST_CONNECTION):
            self._db.execute(statement)

    def close_store(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
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
            return self._load_one(db, request_id)

    def list(self, where: RequestFilter | None = None) -> builtins.list[InfoRequest]:
        where = where or RequestFilter()
        sql, args = "SELECT id FROM requests WHERE TRUE", []
        if where.states:
            match, values = self._in("state", where.states)
            sql += f" AND {match}"
            args += values
        if where.created_before:
            sql += " AND created_at < ?"
            args.append(where.created_before)
        with self._read() as db:
            ids = [row["id"] for row in db.execute(sql + " ORDER BY id", args)]
            return [r for r in self._load_many(db, ids) if where.admits(r)]

    def overdue(self, working_days: int, now: datetime | None = None) -> builtins.list[InfoRequest]:
        cutoff = overdue_cutoff(now or self.clock(), working_days)
        return self.list(RequestFilter(states=PENDING, created_before=iso(cutoff)))

    def history(self, request_id: int | None = None) -> builtins.list[AuditEvent]:
        sql, args = "SELECT * FROM audit", tuple[int, ...]()
        if request_id is not None:
            sql, args = sql + " WHERE request_id = ?", (request_id,)
        with self._read() as db:
            if request_id is not None:
                _row(db, request_id)  # unknown ids are an error, not an empty history
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
        return [
            AuditEvent(r["request_id"], r["at"], r["actor"], r["action"], r["detail"]) for r in rows
        ]

    def deliveries(
        self, request_id: int | None = None, state: str | None = None
    ) -> builtins.list[Delivery]:
        sql, args = _DELIVERY_SELECT + " WHERE TRUE", builtins.list[int | str]()
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
                candidate = self._exact_pending(db, normalise_question(question))
            if candidate is not None:
                self._link(db, candidate, question, asker)
                return Logged(self._load_one(db, candidate), created=False)
            request_id = self._insert(db, question, nearest, committee)
            self._add_asker(db, request_id, question, asker)
            self._audit(db, request_id, _who(asker), "logged", question)
            return Logged(self._load_one(db, request_id), created=True)

    def _find_pending_match(self, question: str) -> int | None:
        match, args = self._in("r.state", PENDING)
        with self._read() as db:
            rows = db.execute(
                "SELECT r.id, r.question, a.question AS wording FROM requests r "
                f"LEFT JOIN askers a ON a.request_id = r.id WHERE {match} ORDER BY r.id, a.id",
                args,
            ).fetchall()
        for row in rows:
            for wording in {row["question"], row["wording"] or row["question"]}:
                if self.similarity.similar(question, wording):
                    return row["id"]
        return None

    def _exact_pending(self, db, normalised: str) -> int | None:
        match, args = self._in("state", PENDING)
        row = db.execute(
            f"SELECT id FROM requests WHERE normalised = ? AND {match} ORDER BY id LIMIT 1",
            [normalised, *args],
        ).fetchone()
        return None if row is None else int(row["id"])

    def _insert(self, db, question, nearest, committee) -> int:
        now = self._now()
        rows = db.execute(
            "INSERT INTO requests (question, normalised, state, created_at, updated_at, committee,"
            " nearest) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                question,
                normalise_question(question),
                OPEN,
                now,
                now,
                committee,
                json.dumps([c.to_dict() for c in nearest]),
            ),
        ).fetchall()  # read to the end, so that SQLite finishes the statement
        return int(rows[0]["id"])

    def _add_asker(self, db, request_id: int, question: str, asker: Asker) -> bool:
        cursor = db.execute(
            "INSERT INTO askers (request_id, channel, user_id, display_name, reply_to,"
            " question, asked_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (request_id, channel, user_id) DO NOTHING",
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
        _update(db, request_id, {"updated_at": self._now()})

    # ---- officers' changes -------------------------------------------------------------------

    def _change(self, db, request_id: int, new_state: str) -> InfoRequest:
        request = self._load_one(db, request_id)
        check_transition(request, new_state)
        return request

    def assign(self, request_id: int, officer: str) -> InfoRequest:
        officer = clean_text(officer, "officer name")
        with self._write() as db:
            self._change(db, request_id, ASSIGNED)
            _update(db, request_id, {"state": ASSIGNED, "assigned_to": officer,
                                     "updated_at": self._now()})  # fmt: skip
            self._audit(db, request_id, officer, "assigned", officer)
            return self._load_one(db, request_id)

    def answer(self, request_id: int, officer: str, text: str) -> InfoRequest:
        officer = clean_text(officer, "officer name")
        text = clean_text(text, "answer")
        with self._write() as db:
            self._change(db, request_id, ANSWERED)
            now = self._now()
            _update(db, request_id, {"state": ANSWERED, "answer": text, "answered_by": officer,
                                     "answered_at": now, "updated_at": now})  # fmt: skip
            self._audit(db, request_id, officer, "answered", text)
            queued = self._queue_deliveries(db, request_id)
            self._audit(db, request_id, officer, "deliveries queued", str(queued))
            return self._load_one(db, request_id)

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
            return self._load_one(db, request_id)

    def mark_duplicate(self, request_id: int, of_id: int, officer: str) -> InfoRequest:
        officer = clean_text(officer, "officer name")
        with self._write() as db:
            self._change(db, request_id, DUPLICATE)
            target = self._load_one(db, of_id)
            while target.state == DUPLICATE and target.duplicate_of is not None:
                target = self._load_one(db, target.duplicate_of)  # the request that lives
            if target.request_id == request_id:
                raise RequestError(f"request #{request_id} cannot be a duplicate of itself")
            if target.state in (DECLINED,):
                raise RequestError(f"request #{target.request_id} was declined; reopen it first")
            _update(db, request_id, {"state": DUPLICATE, "duplicate_of": target.request_id,
                                     "updated_at": self._now()})  # fmt: skip
            # flatten: requests already pointing here now point at the request that lives
            db.execute(
                "UPDATE requests SET duplicate_of = ?, updated_at = ?"
                " WHERE state = ? AND duplicate_of = ?",
                (target.request_id, self._now(), DUPLICATE, request_id),
            )
            self._audit(db, request_id, officer, "marked duplicate", f"of #{target.request_id}")
            self._audit(db, target.request_id, officer, "duplicate linked", f"#{request_id}")
            if target.state in (ANSWERED, CLOSED):
                self._queue_deliveries(db, target.request_id)  # tell the new askers at once
            return self._load_one(db, request_id)

    # ---- deliveries --------------------------------------------------------------------------

    def _queue_deliveries(self, db, request_id: int) -> int:
        """A pending delivery for every asker of the request and of its duplicates."""
        # follows chains too (X -> Y -> Z), for links made before they were flattened
        cursor = db.execute(
            "WITH RECURSIVE family(id) AS ("
            " SELECT CAST(? AS BIGINT)"
            " UNION SELECT r.id FROM requests r JOIN family f ON r.duplicate_of = f.id"
            " WHERE r.state = ?)"
            " INSERT INTO deliveries (request_id, asker_id, channel, state)"
            " SELECT ?, a.id, a.channel, ? FROM askers a WHERE a.request_id IN"
            " (SELECT id FROM family) ORDER BY a.id"
            " ON CONFLICT (request_id, asker_id) DO NOTHING",
            (request_id, DUPLICATE, request_id, DELIVERY_PENDING),
        )
        return cursor.rowcount

    def claim_deliveries(
        self, channels: Iterable[str], now: datetime | None = None, lease_seconds: int = 300
    ) -> builtins.list[Delivery]:
        channels = list(channels)
        if not channels:
            return []
        moment = now or self.clock()
        match, args = self._in("d.channel", channels)
        with self._write() as db:
            rows = db.execute(
                _DELIVERY_SELECT + f" WHERE d.state = ? AND {match} AND"
                " (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?) ORDER BY d.id",
                [DELIVERY_PENDING, *args, iso(moment)],
            ).fetchall()
            lease = iso(moment + timedelta(seconds=lease_seconds))
            if rows:
                match, args = self._in("id", [r["id"] for r in rows])
                db.execute(
                    f"UPDATE deliveries SET next_attempt_at = ? WHERE {match}", [lease, *args]
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
            sql = "SELECT id, request_id FROM deliveries WHERE state = ?"
            args: builtins.list[int | str] = [DELIVERY_FAILED]
            if request_id is not None:
                sql += " AND request_id = ?"
                args.append(request_id)
            rows = db.execute(sql + " ORDER BY id", args).fetchall()
            for row in rows:
                _update(db, row["id"], {"state": DELIVERY_PENDING, "next_attempt_at": None},
                        table="deliveries")  # fmt: skip
                self._audit(
                    db, row["request_id"], actor, "delivery retry", f"delivery #{row['id']}"
                )
            return len(rows)

    # ---- announcing requests to officers -----------------------------------------------------

    def claim_announcements(
        self, now: datetime | None = None, lease_seconds: int = 300, limit: int = 100
    ) -> builtins.list[InfoRequest]:
        moment = now or self.clock()
        pending, args = self._in("state", PENDING)
        with self._write() as db:
            ids = [
                row["id"]
                for row in db.execute(
                    f"SELECT id FROM requests WHERE announced_at IS NULL AND {pending}"
                    " AND (announce_claim IS NULL OR announce_claim <= ?) ORDER BY id LIMIT ?",
                    [*args, iso(moment), limit],
                )
            ]
            if ids:
                match, args = self._in("id", ids)
                lease = iso(moment + timedelta(seconds=lease_seconds))
                db.execute(f"UPDATE requests SET announce_claim = ? WHERE {match}", [lease, *args])
            return self._load_many(db, ids)

    def record_announcement(
        self, request_id: int, error: str | None = None, now: datetime | None = None
    ) -> None:
        with self._write() as db:
            row = _row(db, request_id)
            if error is not None:  # let the claim go: the next pass tries again
                _update(db, request_id, {"announce_claim": None})
            elif row["announced_at"] is None:
                moment = iso(now or self.clock())
                _update(db, request_id, {"announced_at": moment, "announce_claim": None})
                self._audit(db, request_id, "clerk", "announced", "officers' channel")

    # ---- retention ---------------------------------------------------------------------------

    def purge(self, older_than: datetime, actor: str) -> builtins.list[int]:
        actor = clean_text(actor, "officer name")
        finished, args = self._in("state", PURGEABLE)
        with self._write() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    f"SELECT id FROM requests WHERE {finished} AND updated_at < ? ORDER BY id",
                    [*args, iso(older_than)],
                )
            ]
            if ids:
                self._delete(db, ids)
            detail = (
                f"purged {len(ids)} finished request(s) last changed before {iso(older_than)}"
                + (f": #{', #'.join(map(str, ids))}" if ids else "")
            )
            self._audit(db, STORE_EVENT, actor, "purge", detail)
        self._after_purge()
        return ids

    def _delete(self, db, ids: builtins.list[int]) -> None:
        """Remove requests with their deliveries, askers (personal data) and audit events."""
        of_request, args = self._in("request_id", ids)
        db.execute(
            f"DELETE FROM deliveries WHERE {of_request} OR asker_id IN "
            f"(SELECT id FROM askers WHERE {of_request})",
            args + args,
        )
        db.execute(f"DELETE FROM askers WHERE {of_request}", args)
        db.execute(f"DELETE FROM audit WHERE {of_request}", args)
        match, args = self._in("id", ids)
        db.execute(f"DELETE FROM requests WHERE {match}", args)

    # ---- rows to values ----------------------------------------------------------------------

    def _load_one(self, db, request_id: int) -> InfoRequest:
        _row(db, request_id)
        return self._load_many(db, [request_id])[0]

    def _load_many(self, db, ids: builtins.list[int]) -> builtins.list[InfoRequest]:
        if not ids:
            return []
        askers: dict[int, builtins.list[Asker]] = {i: [] for i in ids}
        of_request, args = self._in("request_id", ids)
        for a in db.execute(f"SELECT * FROM askers WHERE {of_request} ORDER BY id", args):
            askers[a["request_id"]].append(_asker(a))
        match, args = self._in("id", ids)
        rows = db.execute(f"SELECT * FROM requests WHERE {match} ORDER BY id", args)
        return [_request(r, askers[r["id"]]) for r in rows]


def _who(asker: Asker) -> str:
    return f"{asker.channel}:{asker.user_id}"


def _update(db, row_id: int, sets: dict, table: str = "requests") -> None:
    unknown = set(sets) - _COLUMNS[table]
    if unknown:  # column names go into SQL text, so only known ones may
        raise ValueError(f"cannot update {table}.{', '.join(sorted(unknown))}")
    columns = ", ".join(f"{name} = ?" for name in sets)
    db.execute(f"UPDATE {table} SET {columns} WHERE id = ?", [*sets.values(), row_id])


def _row(db, request_id: int):
    row = db.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        raise RequestError(f"there is no request #{request_id}")
    return row


def _asker(row) -> Asker:
    return Asker(
        channel=row["channel"],
        user_id=row["user_id"],
        display_name=row["display_name"],
        reply_to=json.loads(row["reply_to"]),
    )


def _request(row, askers: list[Asker]) -> InfoRequest:
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
        announced_at=row["announced_at"],
    )


def _delivery(row) -> Delivery:
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
