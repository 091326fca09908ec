"""`clerk sync moderngov` and `clerk nightly`: the operator's verbs for fetching and indexing.

The job itself is `indexer.nightly`; this module reads options, picks the roots to index (the
corpus and officers' answers, as every index run does) and prints. An unexpected failure still
exits 2 with a report, so monitoring never mistakes a crash for a partial success.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from bot.requests.service import index_roots
from bot.settings import Settings
from indexer.errors import LockedError
from indexer.moderngov.sync import SyncSummary, sync_moderngov
from indexer.nightly import (
    EXIT_FAILED,
    EXIT_LOCKED,
    NightlyReport,
    nightly,
    nightly_lock,
    sync_status,
)

log = logging.getLogger(__name__)


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


def run_sync(args, settings: Settings) -> int:
    try:
        with nightly_lock(settings.index):
            summary = sync_moderngov(
                settings.index, settings.sync, args.site, since=args.since,
                committees=args.committees, council=args.council,
            )  # fmt: skip
    except LockedError as exc:
        print(f"clerk sync: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    status = sync_status([summary])
    if args.json:
        print(json.dumps({"status": status, **summary.to_dict()}, indent=2))
    else:
        _print_summary(summary)
    return status


def run_nightly(args, settings: Settings) -> int:
    sites = args.sites or list(settings.sync.sites)
    if not sites:
        print("clerk nightly: no sites: set CLERK_MODERNGOV_SITES or pass --site", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = nightly(settings.index, settings.sync, sites, index_roots(settings))
    except LockedError as exc:
        print(f"clerk nightly: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except Exception as exc:  # a damaged store, a full disk: still a report, and status 2
        log.exception("clerk nightly failed")
        report = NightlyReport((), None, f"unexpected failure: {type(exc).__name__}: {exc}")
    promises: list[int] = []
    kept = None
    if report.index is not None and report.index.published:
        from bot.promises.log import log_published_promises
        from bot.reader.keep import keep_published_passages

        try:
            promises = log_published_promises(settings)
        except Exception as exc:  # the index is published; promises are logged next time
            log.error("logging promises failed: %s", type(exc).__name__)
        kept = keep_published_passages(settings)
    if args.json:
        print(
            json.dumps(
                {**report.to_dict(), "promises_logged": len(promises), "reader": kept}, indent=2
            )
        )
    else:
        for summary in report.sites:
            _print_summary(summary)
        _print_index(report.index, report.index_error)
    return report.status


def _print_summary(s: SyncSummary) -> None:
    if s.error:
        print(f"{s.site}: could not sync: {s.error}")
        return
    print(
        f"{s.site} ({s.council}): {s.committees} committees, {s.meetings} meetings "
        f"({s.new_meetings} new); {s.downloaded} documents downloaded, "
        f"{s.unchanged + s.not_modified} unchanged, {s.items_written} agenda items written, "
        f"{s.skipped} restricted or external skipped, {s.withdrawn} withdrawn (moved out of the "
        f"corpus), {len(s.failures)} failed"
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
