"""`clerk sync moderngov` and `clerk nightly`: fetch new papers, index them, tell monitoring.

Exit statuses (for cron, systemd or a container health check):
0 everything synced and indexed; 1 some documents, meetings or committees failed (the rest is
indexed and the failures are listed); 2 could not run (a site refused or was unreachable, the
index could not be built, bad options); 75 another nightly or sync run holds the lock (EX_TEMPFAIL:
try later).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from indexer.errors import ClerkError, LockedError
from indexer.settings import Settings, split_list
from indexer.sync import SyncSummary, sync_moderngov
from indexer.types import IndexSummary

EXIT_OK, EXIT_PARTIAL, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 75
LOCK_FILE = "nightly.lock"


def register(subparsers) -> None:
    sync = subparsers.add_parser("sync", help="fetch committee papers from a ModernGov site")
    sources = sync.add_subparsers(dest="source", metavar="SOURCE", required=True)
    mg = sources.add_parser(
        "moderngov", help="sync committees, meetings and documents via mgWebService.asmx"
    )
    mg.add_argument(
        "--site", required=True, help="install root, e.g. https://democracy.kent.gov.uk"
    )
    mg.add_argument("--since", type=_iso_date, help="first meeting date (YYYY-MM-DD)")
    mg.add_argument(
        "--committee", type=int, action="append", dest="committees", metavar="ID",
        help="only this committee id (repeatable)",
    )  # fmt: skip
    mg.add_argument("--council", help="council name for meeting.json (default: from the site)")
    mg.add_argument("--json", action="store_true", help="print the summary as JSON")
    mg.set_defaults(run=run_sync)

    nightly = subparsers.add_parser(
        "nightly", help="sync every configured ModernGov site, then index what is new"
    )
    nightly.add_argument(
        "--site", action="append", dest="sites", help="site to sync (default CLERK_MODERNGOV_SITES)"
    )
    nightly.add_argument("--json", action="store_true", help="print the summary as JSON")
    nightly.set_defaults(run=run_nightly)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-01-31") from exc


@contextlib.contextmanager
def nightly_lock(settings: Settings) -> Iterator[Path]:
    """Hold an exclusive lock on home/nightly.lock; LockedError at once if another run has it."""
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / LOCK_FILE
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise LockedError(
                f"another nightly or sync run is in progress (process {holder}; lock {path})"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()  # an empty lock file means nobody holds it
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def run_sync(args, settings: Settings) -> int:
    try:
        with nightly_lock(settings):
            summary = sync_moderngov(
                settings, args.site, since=args.since, committees=args.committees,
                council=args.council,
            )  # fmt: skip
    except LockedError as exc:
        print(f"clerk sync: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    status = _status([summary])
    if args.json:
        print(json.dumps({"status": status, **summary.to_dict()}, indent=2))
    else:
        _print_summary(summary)
    return status


@dataclass(frozen=True)
class NightlyReport:
    """One nightly run: each site's sync, then the index refresh."""

    sites: tuple[SyncSummary, ...]
    index: IndexSummary | None
    index_error: str | None

    @property
    def status(self) -> int:
        return max(_status(list(self.sites)), EXIT_FAILED if self.index_error else EXIT_OK)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "sites": [s.to_dict() for s in self.sites],
            "index": self.index.to_dict() if self.index is not None else None,
            "index_error": self.index_error,
        }


def nightly(
    settings: Settings, sites: list[str], embedder=None, today: date | None = None
) -> NightlyReport:
    """Under the lock: sync every site, then index the corpus incrementally and publish."""
    with nightly_lock(settings):
        summaries = tuple(sync_moderngov(settings, site, today=today) for site in sites)
        index, index_error = _index(settings, embedder)
    return NightlyReport(summaries, index, index_error)


def run_nightly(args, settings: Settings) -> int:
    sites = args.sites or split_list(settings.moderngov_sites)
    if not sites:
        print("clerk nightly: no sites: set CLERK_MODERNGOV_SITES or pass --site", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = nightly(settings, sites)
    except LockedError as exc:
        print(f"clerk nightly: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for summary in report.sites:
            _print_summary(summary)
        _print_index(report.index, report.index_error)
    return report.status


def _index(settings: Settings, embedder=None) -> tuple[IndexSummary | None, str | None]:
    """Incremental index of the corpus and atomic publish; (summary, None) or (None, reason)."""
    # imported here: the model and FAISS load only when a nightly run indexes
    from indexer.embed import SentenceTransformerEmbedder
    from indexer.refresh import refresh

    try:
        embedder = embedder or SentenceTransformerEmbedder(settings.model)
        return refresh(settings, [settings.corpus], embedder), None
    except ClerkError as exc:
        return None, str(exc)


def _status(summaries: list[SyncSummary]) -> int:
    if any(s.error for s in summaries):
        return EXIT_FAILED
    if any(s.failures for s in summaries):
        return EXIT_PARTIAL
    return EXIT_OK


def _print_summary(s: SyncSummary) -> None:
    if s.error:
        print(f"{s.site}: could not sync: {s.error}")
        return
    print(
        f"{s.site} ({s.council}): {s.committees} committees, {s.meetings} meetings "
        f"({s.new_meetings} new); {s.downloaded} documents downloaded, "
        f"{s.unchanged + s.not_modified} unchanged, {s.items_written} agenda items written, "
        f"{s.skipped} restricted or external skipped, {len(s.failures)} failed"
    )
    for f in s.failures:
        where = f" [{f.meeting}]" if f.meeting else ""
        print(f"  failed {f.kind} {f.ref}{where}: {f.reason}")


def _print_index(index, error: str | None) -> None:
    if error:
        print(f"index: could not build: {error}")
        return
    print(
        f"index: {index.added} added, {index.updated} updated, {index.unchanged} unchanged, "
        f"{index.removed} removed, {len(index.failed)} failed; "
        + ("published" if index.published else "nothing new to publish")
    )
    for failure in index.failed:
        print(f"  failed {failure.get('source', '?')}: {failure.get('reason', '?')}")
