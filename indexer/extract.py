"""Read and cut papers in worker processes, ahead of the embedder, handed back in the run's order.

`PaperReader.expect` names the papers a run will ask for, in its order; worker processes read
them (pypdf, HTML, text) and cut them into passages, a few papers ahead of the caller, while the
caller embeds what it already has. `read` hands each result back whenever it is asked for, so the
run decides, dedupes and embeds in its own order, whichever worker finishes first.

A paper must not cost more than itself:
- one that runs past `CLERK_PAPER_TIMEOUT` has its worker stopped (every worker is a separate
  process, so a stuck C library stops too); the papers beside it are read again;
- one whose worker dies (a crash, the kernel's out-of-memory killer) makes the pool break; the
  papers that were in flight are then read again one at a time, and the one that breaks a pool
  on its own is skipped, with the reason. When a pool cannot run even an empty job, the workers
  themselves are at fault and `ReadingError` stops the run rather than blame every paper.

With `CLERK_INDEX_WORKERS=0` papers are read in the calling process instead (no time limit).
Workers are started with `spawn`: they hold pypdf and the papers, never the model or the index,
and the kernel ends them if the indexing process dies.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

from indexer.chunk import chunk_pages
from indexer.errors import ClerkError, ReadingError
from indexer.parse import read_pages
from indexer.types import Chunk, Paper

log = logging.getLogger(__name__)

AHEAD_PER_WORKER = 8  # papers read ahead per worker: the embedder stays fed past a slow one
POLL_SECONDS = 1.0  # how often a waiting caller looks for papers past their time
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


@dataclass(frozen=True)
class ReadJob:
    """One paper to read, with what its passages need: its document id and the chunk size."""

    paper: Paper
    doc_id: str
    chunk_words: int


@dataclass(frozen=True)
class Extracted:
    """A paper read and cut into passages, or the reason it could not be."""

    chunks: tuple[Chunk, ...] = ()
    pages: int = 0
    failure: str | None = None
    # What reading it logged in a worker, replayed in the caller's process and order.
    records: tuple[logging.LogRecord, ...] = ()


def extract(job: ReadJob) -> Extracted:
    """Read one paper and cut it into passages; a bad file is a failure, never an exception."""
    paper = job.paper
    try:
        pages = read_pages(paper)
    except ClerkError as exc:
        return Extracted(failure=str(exc))
    except Exception as exc:  # a hostile file must never stop the run
        log.exception("unexpected failure reading %s", paper.source)
        return Extracted(failure=f"unexpected error: {type(exc).__name__}: {exc}")
    chunks = chunk_pages(job.doc_id, paper.title, pages, job.chunk_words)
    return Extracted(chunks=tuple(chunks), pages=len(pages))


class PaperReader:
    """Papers read ahead by `workers` processes (or here, with 0), each handed back when asked."""

    def __init__(self, workers: int, timeout: float):
        self.workers = workers
        self.timeout = timeout
        self._ahead: list[ReadJob] = []  # expected, in the caller's order
        self._position: dict[ReadJob, int] = {}
        self._asked = 0  # expected papers before this position were asked for or passed over
        self._next = 0  # the next expected paper to submit
        self._results: dict[ReadJob, Extracted] = {}
        self._pool: _Pool | None = None
        self._count = 0

    def __enter__(self) -> PaperReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def expect(self, jobs: Iterable[ReadJob]) -> None:
        """The papers the caller will probably ask for, in the order it will ask."""
        for job in jobs:
            if job not in self._position:
                self._position[job] = len(self._ahead)
                self._ahead.append(job)

    def read(self, job: ReadJob) -> Extracted:
        """The paper read and cut; what reading it logged is logged here, now."""
        self._count += 1
        if self.workers <= 0:
            return extract(job)
        self._pass_over_to(job)
        if job not in self._results and not (self._pool and self._pool.has(job)):
            self._submit(job)  # not expected, or not submitted yet: read it now
        self._top_up()
        result = self._wait(job)
        for record in result.records:
            logging.getLogger(record.name).handle(record)
        return replace(result, records=())

    def close(self) -> None:
        """Stop the workers; papers still being read ahead are abandoned."""
        if self._pool is not None:
            self._pool.stop(graceful=self._pool.idle())
            self._pool = None
        if self._count and self.workers > 0:
            log.info("read %d papers in %d worker processes", self._count, self.workers)

    def _pass_over_to(self, job: ReadJob) -> None:
        """Expected papers before this one were not asked for after all: drop them."""
        position = self._position.get(job, -1)
        if position < self._asked:
            return
        for passed in self._ahead[self._asked : position]:
            self._results.pop(passed, None)
            if self._pool is not None:
                self._pool.abandon(passed)
        self._asked = position + 1
        self._next = max(self._next, position + 1)

    def _top_up(self) -> None:
        limit = self.workers * AHEAD_PER_WORKER
        while self._next < len(self._ahead) and self._in_flight() < limit:
            self._submit(self._ahead[self._next])
            self._next += 1

    def _in_flight(self) -> int:
        return len(self._results) + (self._pool.busy() if self._pool else 0)

    def _submit(self, job: ReadJob) -> None:
        if self._pool is None:
            self._pool = _Pool(self.workers)
        self._pool.submit(job)

    def _wait(self, job: ReadJob) -> Extracted:
        """Wait for one paper, stopping any paper past its time on the way."""
        while job not in self._results:
            assert self._pool is not None
            future = self._pool.futures[job]
            wait_for([future], timeout=min(POLL_SECONDS, self.timeout))
            if future.done():
                self._settle(job, future)
            else:
                self._stop_overdue()
        return self._results.pop(job)

    def _settle(self, job: ReadJob, future: Future) -> None:
        assert self._pool is not None
        try:
            self._results[job] = future.result()
            self._pool.forget(job)
        except BrokenProcessPool:
            self._recover()
        except Exception as exc:  # the result could not come back (say, it would not pickle)
            self._pool.forget(job)
            self._results[job] = Extracted(failure=f"unexpected error: {type(exc).__name__}")

    def _stop_overdue(self) -> None:
        """If papers have run past the timeout, stop the pool; read the others again."""
        assert self._pool is not None
        overdue = self._pool.overdue(self.timeout)
        if not overdue:
            return
        for job in overdue:
            log.warning("reading %s took over %g s: stopping it", job.paper.source, self.timeout)
            if not self._pool.abandoned(job):
                self._results[job] = Extracted(failure=_timed_out(self.timeout))
        finished, unfinished = self._pool.outcomes(but=overdue)
        self._results.update(finished)
        self._replace_pool(again=unfinished)

    def _recover(self) -> None:
        """A worker died: keep what came back, then read what was in flight one at a time."""
        assert self._pool is not None
        finished, lost = self._pool.outcomes(but=[])
        self._results.update(finished)
        log.warning("a reading process stopped abruptly; reading %d papers again", len(lost))
        self._replace_pool(again=[])
        for job in lost:
            self._results[job] = self._alone(job)

    def _alone(self, job: ReadJob) -> Extracted:
        """Read one paper in a pool of its own: if that breaks too, the paper is the cause."""
        pool = self._pool = _Pool(1)
        pool.submit(job)
        future = pool.futures[job]
        while not future.done():
            wait_for([future], timeout=min(POLL_SECONDS, self.timeout))
            if not future.done() and pool.overdue(self.timeout):
                self._replace_pool(again=[])
                return Extracted(failure=_timed_out(self.timeout))
        self._replace_pool(again=[])
        try:
            return future.result()
        except BrokenProcessPool:
            self._check_workers_run()
            return Extracted(failure="its reading process stopped abruptly (crashed or was killed)")
        except Exception as exc:
            return Extracted(failure=f"unexpected error: {type(exc).__name__}")

    def _check_workers_run(self) -> None:
        """A fresh pool must run an empty job; if it cannot, no paper is to blame."""
        probe = _Pool(1)
        try:
            probe.executor.submit(os.getpid).result(timeout=max(60.0, self.timeout))
        except Exception as exc:
            raise ReadingError(
                f"the processes that read papers cannot run ({type(exc).__name__}: {exc}); "
                "CLERK_INDEX_WORKERS=0 reads them in the indexing process"
            ) from exc
        finally:
            probe.stop(graceful=True)

    def _replace_pool(self, again: list[ReadJob]) -> None:
        """Kill the pool's workers and submit `again` to a fresh pool, in their order."""
        if self._pool is not None:
            self._pool.stop(graceful=self._pool.idle())
            self._pool = None
        for job in again:
            self._submit(job)


class _Pool:
    """One generation of worker processes and the papers submitted to it."""

    def __init__(self, workers: int):
        context = multiprocessing.get_context("spawn")
        try:
            self.started = context.SimpleQueue()  # workers say when they begin a paper
            self.executor = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(self.started, _log_levels(), os.getpid()),
            )
        except OSError as exc:  # no /dev/shm for the queues' locks, say
            raise ReadingError(
                f"cannot start processes to read papers ({exc}); "
                "CLERK_INDEX_WORKERS=0 reads them in the indexing process"
            ) from exc
        self.futures: dict[ReadJob, Future] = {}
        self._keys: dict[int, ReadJob] = {}
        self._began: dict[ReadJob, float] = {}
        self._abandoned: set[ReadJob] = set()

    def submit(self, job: ReadJob) -> None:
        key = len(self._keys)
        self._keys[key] = job
        self.futures[job] = self.executor.submit(_work, key, job)

    def has(self, job: ReadJob) -> bool:
        return job in self.futures and job not in self._abandoned

    def forget(self, job: ReadJob) -> None:
        self.futures.pop(job, None)
        self._began.pop(job, None)

    def abandon(self, job: ReadJob) -> None:
        """Not wanted after all: cancelled if not begun, else left to finish (or be stopped)."""
        future = self.futures.get(job)
        if future is not None and (future.cancel() or future.done()):
            self.forget(job)
        elif future is not None:
            self._abandoned.add(job)

    def abandoned(self, job: ReadJob) -> bool:
        return job in self._abandoned

    def busy(self) -> int:
        """Papers submitted and not collected, dropping abandoned ones that have finished."""
        for job in [j for j in self._abandoned if self.futures[j].done()]:
            self._abandoned.discard(job)
            self.forget(job)
        return len(self.futures)

    def idle(self) -> bool:
        return all(f.done() for f in self.futures.values())

    def overdue(self, timeout: float) -> list[ReadJob]:
        """Unfinished papers that began more than `timeout` seconds ago."""
        while not self.started.empty():
            key, began = self.started.get()
            job = self._keys[key]
            if job in self.futures:
                self._began[job] = began
        now = time.monotonic()
        return [
            job
            for job, began in self._began.items()
            if now - began > timeout and not self.futures[job].done()
        ]

    def outcomes(self, but: list[ReadJob]) -> tuple[dict[ReadJob, Extracted], list[ReadJob]]:
        """Before the pool is replaced: the results that came back, and the papers still wanted
        that did not (in the order submitted), other than `but`."""
        finished: dict[ReadJob, Extracted] = {}
        lost: list[ReadJob] = []
        for job, future in self.futures.items():
            if job in self._abandoned or job in but:
                continue
            if future.done() and not future.cancelled() and future.exception() is None:
                finished[job] = future.result()
            else:
                lost.append(job)
        return finished, lost

    def stop(self, graceful: bool) -> None:
        """Shut down; unless `graceful`, kill the workers first (one of them may be stuck)."""
        if not graceful:
            kill = getattr(self.executor, "kill_workers", None)  # Python 3.14
            if kill is not None:
                kill()
            else:
                for process in list((self.executor._processes or {}).values()):
                    process.kill()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.started.close()


def _timed_out(timeout: float) -> str:
    return f"reading took longer than {timeout:g} s (CLERK_PAPER_TIMEOUT); skipped"


# --- in the worker processes -------------------------------------------------------------------

_STARTED: Any = None


def _start_worker(started: Any, levels: dict[str, int], parent: int) -> None:
    """Set a worker up: where to say a paper began, the caller's log levels, and its end."""
    global _STARTED
    _STARTED = started
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
    _die_with(parent)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the indexing process dies, even by SIGKILL, so a
    worker stuck in a paper never runs on alone (Linux; elsewhere the worker ends after its
    paper)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request was made
        os._exit(1)


def _work(key: int, job: ReadJob) -> Extracted:
    """Read one paper in a worker; what it logs goes back with the result."""
    _STARTED.put((key, time.monotonic()))  # CLOCK_MONOTONIC: the same clock in every process
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        result = extract(job)
    finally:
        root.removeHandler(collector)
    return replace(result, records=tuple(collector.records))


class _Collector(logging.Handler):
    """Keeps a worker's log records, made picklable: the message formatted with any traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        record = copy.copy(record)
        record.msg = record.message = message
        record.args = record.exc_info = record.exc_text = record.stack_info = None
        self.records.append(record)


def _log_levels() -> dict[str, int]:
    """The caller's root level and every level set on a named logger (pypdf's, say)."""
    levels = {"": logging.getLogger().level}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level:
            levels[name] = logger.level
    return levels
