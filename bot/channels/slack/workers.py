"""A few threads that do the queued Slack work (`jobs.py`), each job by its kind's handler.

Each process that runs workers holds a lock file `slack-workers/<owner>.lock` in the data
directory for its life; the kernel drops the lock when the process dies, even by SIGKILL. On
start, the jobs claimed by an owner whose lock can be taken are put back in the queue and done
again: their handlers skip the steps already recorded (see `jobs.Steps`).

A handler that raises is tried again later when the failure may pass (Slack refused or could not
be reached), up to MAX_ATTEMPTS in all; otherwise, or then, the job is failed with the reason and
`give_up` tells the user. Logs name job ids, kinds and error types, never payloads.
"""

from __future__ import annotations

import fcntl
import logging
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from slack_sdk.errors import SlackApiError

from bot.channels.slack.jobs import MAX_ATTEMPTS, Job, JobQueue, Steps
from indexer.errors import ClerkError

log = logging.getLogger(__name__)
WORKERS_DIR = "slack-workers"
IDLE_WAIT = 1.0  # seconds a worker waits for a job before looking again (retries fall due)
_OWNER = re.compile(r"[0-9a-f]{32}")
_MAY_PASS = (SlackApiError, OSError)  # Slack refused or was unreachable: worth another try
_EXPECTED = (*_MAY_PASS, ClerkError, KeyError, ValueError)  # others are bugs: log where
_TOKEN = re.compile(r"xox[a-z]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")

Handler = Callable[[dict, Steps], None]
GiveUp = Callable[[Job], None]


class Workers:
    """`count` threads claiming jobs from `queue` until stopped."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        give_up: GiveUp,
        count: int,
        home: Path,
    ) -> None:
        self.queue = queue
        self._handlers = handlers
        self._give_up = give_up
        self._count = max(1, count)
        self._locks = home / WORKERS_DIR
        self.owner = uuid.uuid4().hex
        self._lock_file: IO[str] | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Workers:
        """Take this process's lock, resume jobs of dead processes, start the threads."""
        self._locks.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self._locks / f"{self.owner}.lock", "w")  # noqa: SIM115 - held
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        resumed = self.queue.resume(self._alive)
        if resumed:
            log.info("resumed %d Slack jobs left by a stopped process", resumed)
        for n in range(self._count):
            thread = threading.Thread(target=self._run, name=f"slack-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Let each thread finish its job, then stop; the lock goes only when all have."""
        self._stop.set()
        self.queue.wake_all()
        for thread in self._threads:
            thread.join(timeout)
        if self._lock_file is not None and not any(t.is_alive() for t in self._threads):
            (self._locks / f"{self.owner}.lock").unlink(missing_ok=True)
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def _alive(self, owner: str) -> bool:
        """Whether the process that claimed jobs as `owner` still runs (holds its lock)."""
        if owner == self.owner:
            return True
        if not _OWNER.fullmatch(owner):
            return False
        path = self._locks / f"{owner}.lock"
        try:
            with open(path) as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return True
        path.unlink(missing_ok=True)  # its owner is gone; we held the lock only to learn that
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self.queue.next_job(self.owner, IDLE_WAIT)
            if job is not None:
                self.run_one(job)

    def run_one(self, job: Job) -> None:
        """Run a claimed job's handler and record how it went."""
        if job.attempts > MAX_ATTEMPTS:  # it died with its process every time: give it up
            self._fail(job, f"interrupted {MAX_ATTEMPTS} times")
            return
        handler = self._handlers.get(job.kind)
        if handler is None:
            self._fail(job, f"no handler for jobs of kind {job.kind!r}")
            return
        try:
            handler(job.payload, Steps(self.queue, job))
        except Exception as exc:  # every failure is recorded; none kills the worker
            self._failed(job, exc)
        else:
            self.queue.done(job.job_id)

    def _failed(self, job: Job, exc: Exception) -> None:
        reason = describe(exc)
        if isinstance(exc, _MAY_PASS) and job.attempts < MAX_ATTEMPTS:
            log.warning(
                "Slack job #%d (%s) attempt %d failed (%s); it will be tried again",
                job.job_id,
                job.kind,
                job.attempts,
                type(exc).__name__,
            )
            self.queue.retry_later(job.job_id, job.attempts, reason)
            return
        if not isinstance(exc, _EXPECTED):
            # a bug: keep where it happened (the frames, not the message, which may quote data)
            log.error("Slack job #%d (%s) raised:\n%s", job.job_id, job.kind, _frames(exc))
        self._fail(job, reason)

    def _fail(self, job: Job, reason: str) -> None:
        log.error(
            "Slack job #%d (%s) failed after %d attempt(s): %s",
            job.job_id,
            job.kind,
            job.attempts,
            reason.split(":", 1)[0],
        )
        self.queue.fail(job.job_id, reason)
        try:
            self._give_up(job)
        except Exception as exc:  # the apology is a courtesy; its failure changes nothing
            log.error("could not tell the user about job #%d: %s", job.job_id, type(exc).__name__)


def describe(exc: BaseException) -> str:
    """Why a job failed, for its row: the error type and Slack's error code or the message
    with anything token-shaped removed."""
    if isinstance(exc, SlackApiError):
        return f"SlackApiError: {exc.response.get('error')}"
    return f"{type(exc).__name__}: {scrub(str(exc))}"[:500]


def scrub(text: str) -> str:
    """Text with anything token-shaped removed, cut to 500 characters."""
    return _TOKEN.sub("[token]", text)[:500]


def _frames(exc: BaseException) -> str:
    return "".join(traceback.format_tb(exc.__traceback__)).rstrip()
