"""The durable queue of acknowledged Slack work, in `slack-events.sqlite3` in the data directory.

A listener writes the work it owes (a kind, and the payload the work needs) as one row before it
acknowledges Slack, so nothing acknowledged is lost when the process dies. An event's id is the
row's unique key: a retried event (Slack's X-Slack-Retry-Num, or Socket Mode's retry_attempt) is
not queued again, within a day and across restarts. Workers (`workers.py`) claim rows, record each
step that reached Slack (`Steps`: the "working" message's ts, officers told) so that a resumed job
never repeats it, and mark the row done, or failed with the reason after MAX_ATTEMPTS.

States: pending -> claimed -> done | failed; a claimed row goes back to pending when its worker
fails in a way worth another try, or when the process that claimed it died (`resume`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.requests.stores.sql import apply_migrations

JOBS_FILE = "slack-events.sqlite3"
PENDING, CLAIMED, DONE, FAILED = "pending", "claimed", "done", "failed"
MAX_ATTEMPTS = 3  # a job that fails (or dies with its process) this often is given up
RETRY_DELAYS = (1.0, 5.0)  # seconds before the second and the third attempt
KEEP_SECONDS = 24 * 3600  # finished rows (and so their event ids) are kept a day
PRUNE_EVERY = 1000  # jobs finished between prunes

# Append-only named migrations (see bot/requests/stores/schema.py). The file once held only the
# ids of events taken in (`seen`); they become finished jobs, so their retries stay refused.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "m001_jobs",
        (
            """CREATE TABLE jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT UNIQUE,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                owner TEXT,
                not_before REAL NOT NULL DEFAULT 0,
                progress TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                created_at REAL NOT NULL,
                finished_at REAL)""",
            "CREATE INDEX jobs_due ON jobs (state, id)",
            "CREATE INDEX jobs_finished ON jobs (finished_at)",
            "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at REAL)",
            "INSERT INTO jobs (event_id, kind, payload, state, created_at, finished_at)"
            " SELECT event_id, 'seen', '{}', 'done', at, at FROM seen",
            "DROP TABLE seen",
        ),
    ),
)


@dataclass(frozen=True)
class Job:
    """One piece of acknowledged work, as a worker claimed it."""

    job_id: int
    kind: str
    payload: dict
    attempts: int  # counting this one
    progress: dict  # steps already done, by name (see Steps)


class JobQueue:
    """The jobs table, shared by the listeners (put) and the workers (claim, note, finish)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._db = _connect(path)  # the workers'
        # The listeners write on their own connection, which never checkpoints the WAL into
        # the database (an fsync), so an acknowledgement never waits behind that or a worker.
        self._intake = _connect(path)
        self._intake.execute("PRAGMA wal_autocheckpoint=0")
        self._lock = threading.Lock()  # one statement at a time on the workers' connection
        self._intake_lock = threading.Lock()
        self._added = threading.Condition()
        self._generation = 0  # bumped by every put, so a worker never sleeps through one
        self._finished = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                apply_migrations(self._db, MIGRATIONS, _run_statements, _iso_now())
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        self.prune()

    def close(self) -> None:
        with self._intake_lock:
            self._intake.close()
        with self._lock:
            self._db.close()

    # ---- the listeners' side ------------------------------------------------------------------

    def put(self, kind: str, payload: dict, event_id: str | None = None) -> bool:
        """Queue work; False (nothing queued) when this event id was taken in before."""
        with self._intake_lock:
            cursor = self._intake.execute(
                "INSERT OR IGNORE INTO jobs (event_id, kind, payload, state, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (event_id, kind, json.dumps(payload), PENDING, self._clock()),
            )
            queued = cursor.rowcount == 1
        if queued:
            with self._added:
                self._generation += 1
                self._added.notify()
        return queued

    # ---- the workers' side --------------------------------------------------------------------

    def claim(self, owner: str) -> Job | None:
        """The oldest job that is due, now claimed by `owner`; None when there is none."""
        with self._lock:
            rows = self._db.execute(
                "UPDATE jobs SET state = ?, owner = ?, attempts = attempts + 1"
                " WHERE id = (SELECT id FROM jobs WHERE state = ? AND not_before <= ?"
                " ORDER BY id LIMIT 1)"
                " RETURNING id, kind, payload, attempts, progress",
                (CLAIMED, owner, PENDING, self._clock()),
            ).fetchall()  # read to the end, so that SQLite finishes (and commits) the statement
        if not rows:
            return None
        row = rows[0]
        return Job(
            row["id"],
            row["kind"],
            json.loads(row["payload"]),
            row["attempts"],
            json.loads(row["progress"]),
        )

    def next_job(self, owner: str, timeout: float) -> Job | None:
        """Claim a job, or wait up to `timeout` seconds for one to be put; None if none came."""
        with self._added:
            generation = self._generation
        job = self.claim(owner)
        if job is None:
            with self._added:
                if self._generation == generation:
                    self._added.wait(timeout)
        return job

    def wake_all(self) -> None:
        with self._added:
            self._added.notify_all()

    def note(self, job_id: int, steps: dict[str, Any]) -> None:
        """Record steps the job has taken (JSON values, never null), merged into its progress."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET progress = json_patch(progress, ?) WHERE id = ?",
                (json.dumps(steps), job_id),
            )

    def done(self, job_id: int) -> None:
        self._finish(job_id, DONE, None)

    def fail(self, job_id: int, reason: str) -> None:
        """Give the job up, keeping why (no payload in the reason)."""
        self._finish(job_id, FAILED, reason)

    def retry_later(self, job_id: int, attempts: int, reason: str) -> None:
        """Back to pending after the delay for its next attempt."""
        delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, owner = NULL, not_before = ?, error = ? WHERE id = ?",
                (PENDING, self._clock() + delay, reason, job_id),
            )

    def _finish(self, job_id: int, state: str, reason: str | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, owner = NULL, error = ?, finished_at = ? WHERE id = ?",
                (state, reason, self._clock(), job_id),
            )
            self._finished += 1
            prune = self._finished % PRUNE_EVERY == 0
        if prune:  # here, on a worker, never on the way to an acknowledgement
            self.prune()

    def resume(self, alive: Callable[[str], bool]) -> int:
        """Put back to pending the jobs claimed by owners that are not `alive`; how many."""
        with self._lock:
            owners = [
                row["owner"]
                for row in self._db.execute(
                    "SELECT DISTINCT owner FROM jobs WHERE state = ?", (CLAIMED,)
                )
            ]
        resumed = 0
        for owner in owners:
            if owner is None or not alive(owner):
                with self._lock:
                    resumed += self._db.execute(
                        "UPDATE jobs SET state = ?, owner = NULL WHERE state = ? AND owner IS ?",
                        (PENDING, CLAIMED, owner),
                    ).rowcount
        if resumed:
            self.wake_all()
        return resumed

    # ---- upkeep -------------------------------------------------------------------------------

    def prune(self) -> int:
        """Forget jobs finished more than a day ago (their event ids with them); how many."""
        with self._lock:
            return self._db.execute(
                "DELETE FROM jobs WHERE state IN (?, ?) AND finished_at < ?",
                (DONE, FAILED, self._clock() - KEEP_SECONDS),
            ).rowcount

    def counts(self) -> dict[str, int]:
        """Jobs by state (pending, claimed, done, failed)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            found = {row["state"]: row["n"] for row in rows}
        return {state: found.get(state, 0) for state in (PENDING, CLAIMED, DONE, FAILED)}

    def failures(self) -> list[tuple[int, str, str]]:
        """(job id, kind, reason) of the jobs given up, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, error FROM jobs WHERE state = ? ORDER BY id", (FAILED,)
            ).fetchall()
        return [(row["id"], row["kind"], row["error"] or "") for row in rows]


class Steps:
    """What a job has already done that must not be done twice, kept in its row as it goes."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self._queue = queue
        self._job_id = job.job_id
        self._done = dict(job.progress)
        self.resumed = job.attempts > 1  # an earlier attempt may have done more than it noted

    def once(self, name: str, work: Callable[[], Any]) -> Any:
        """Run `work` unless a step of this name was done before; its result (True for None)."""
        if name not in self._done:
            value = work()
            value = True if value is None else value  # a null would delete the key (json_patch)
            self._queue.note(self._job_id, {name: value})
            self._done[name] = value
        return self._done[name]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    # WAL with NORMAL: a commit survives the process being killed (not a power cut)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _run_statements(db: sqlite3.Connection, statements: tuple[str, ...]) -> None:
    for statement in statements:
        db.execute(statement)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
