"""The `clerk` command: one entry point, one verb per job, `--json` for machines.

Each verb lives in its own module with a `register(subparsers)` function; the parser it adds sets
`run=function(args, settings) -> exit status`. Settings are read here, once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from bot import channels
from bot.cli import engine as cli_engine
from bot.cli import requests as cli_requests
from bot.cli import sync as cli_sync
from bot.settings import Settings
from bot.web import cli as web_cli
from indexer.errors import ClerkError

# Modules that add verbs to `clerk` (the officers' desk is `web`); each channel adds its own
# (see bot.channels).
COMMAND_MODULES = (cli_engine, cli_requests, cli_sync, web_cli)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clerk", description="Answers councillors' questions from committee papers."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    channels.register_verbs(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Models come from the installed package, never from a hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pypdf narrates every repaired cross-reference table; the index summary reports real failures.
    logging.getLogger("pypdf").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
        return int(args.run(args, settings) or 0)
    except ClerkError as exc:
        print(f"clerk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
