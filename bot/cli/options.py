"""Options more than one verb shares."""

from __future__ import annotations

import argparse
from datetime import date

from indexer.errors import ClerkError
from indexer.types import SearchFilters


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--committee", help="only papers of committees whose name contains this")
    parser.add_argument("--since", help="only meetings on or after this date (YYYY-MM-DD)")
    parser.add_argument("--until", help="only meetings on or before this date (YYYY-MM-DD)")


def filters_from(args: argparse.Namespace) -> SearchFilters:
    for value in (args.since, args.until):
        if value:
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                raise ClerkError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    return SearchFilters(args.committee, args.since, args.until)
