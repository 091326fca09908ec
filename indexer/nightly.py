"""The nightly job: sync every ModernGov site, then bring the index up to date, under one lock.

Exit statuses (for cron, systemd or a container health check):
0 everything synced and indexed; 1 some documents, meetings or committees failed (the rest is
indexed and the failures are listed); 2 could not run (a site refused or was unreachable, the
index could not be built, an unexpected failure); 75 another nightly or sync run holds the lock
(EX_TEMPFAIL: try later).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from indexer.embed import Embedder
from indexer.errors import ClerkError
from indexer.files import exclusive_lock
from indexer.moderngov.settings import SyncSettings
from indexer.moderngov.sync import SyncSummary, sync_moderngov
from indexer.settings import IndexSettings
from indexer.types import IndexSummary

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 75
LOCK_FILE = "nightly.lock"


@contextmanager
def nightly_lock(index: IndexSettings) -> Iterator[Path]:
    """One nightly or sync run at a time per data directory."""
    with exclusive_lock(index.home / LOCK_FILE, "nightly or sync run") as path:
        yield path


@dataclass(frozen=True)
class NightlyReport:
    """One nightly run: each site's sync, then the index refresh."""

    sites: tuple[SyncSummary, ...]
    index: IndexSummary | None
    index_error: str | None

    @property
    def status(self) -> int:
        return max(sync_status(list(self.sites)), EXIT_FAILED if self.index_error else EXIT_OK)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "sites": [s.to_dict() for s in self.sites],
            "index": self.index.to_dict() if self.index is not None else None,
            "index_error": self.index_error,
        }


def nightly(
    index: IndexSettings,
    sync: SyncSettings,
    sites: list[str],
    roots: list[Path],
    embedder: Embedder | None = None,
    today: date | None = None,
) -> NightlyReport:
    """Under the lock: sync every site, then index `roots` incrementally and publish.

    `roots` are all the folders the index mirrors (the corpus and every other root the caller
    indexes, such as officers' answers): a root left out would count as removed.
    """
    with nightly_lock(index):
        summaries = tuple(sync_moderngov(index, sync, site, today=today) for site in sites)
        summary, error = _index(index, roots, embedder)
    return NightlyReport(summaries, summary, error)


def _index(
    index: IndexSettings, roots: list[Path], embedder: Embedder | None
) -> tuple[IndexSummary | None, str | None]:
    """Incremental index and atomic publish; (summary, None) or (None, reason)."""
    # imported here: the model and FAISS load only when a nightly run indexes
    from indexer.embed import embedder_for
    from indexer.refresh import refresh

    try:
        model = embedder or embedder_for(index)
        return refresh(index, roots, model), None
    except ClerkError as exc:
        return None, str(exc)


def sync_status(summaries: list[SyncSummary]) -> int:
    """The exit status that a set of site syncs earns."""
    if any(s.error for s in summaries):
        return EXIT_FAILED
    if any(s.failures for s in summaries):
        return EXIT_PARTIAL
    return EXIT_OK
