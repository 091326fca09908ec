"""`clerk web [--host --port]`: serve the officers' desk; `clerk web add-officer NAME`."""

from __future__ import annotations

import getpass
import sys

from bot.errors import SignInError
from bot.settings import Settings


def register(subparsers) -> None:
    parser = subparsers.add_parser("web", help="serve the officers' desk (a web page)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (8080)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (127.0.0.1; 0.0.0.0 in a container)",
    )
    parser.set_defaults(run=run_web)
    verbs = parser.add_subparsers(dest="web_verb", metavar="[VERB]", title="optional verbs")
    add = verbs.add_parser("add-officer", help="add a local officer account (or set a password)")
    add.add_argument("name", help="the officer's user name, as audit events will record it")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(run=run_add_officer)


def run_web(args, settings: Settings) -> int:
    # Imported here so that `clerk --help` stays quick.
    from bot.channels import build_notifiers
    from bot.requests.service import open_store
    from bot.web.app import create_app
    from bot.web.serve import DeskServer
    from indexer.embed import embedder_for  # the model loads on the first answer only

    store = open_store(settings)
    try:
        embedder = embedder_for(settings.index)  # the encoder the index was built with
        app = create_app(settings, store, build_notifiers(settings), embedder)
        server = DeskServer(app, args.host, args.port)
        print(f"clerk: the officers' desk is at {server.url}", file=sys.stderr, flush=True)
        server.serve_forever()
    finally:
        store.close_store()
    return 0


def run_add_officer(args, settings: Settings) -> int:
    from bot.web.accounts import OfficerAccounts

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SignInError("the two passwords differ")
    created = OfficerAccounts.from_settings(settings).add(args.name, password)
    print(f"Officer {args.name.strip()} {'added' if created else 'has a new password'}.")
    return 0
