"""`clerk email [--once]`: answer questions emailed to Clerk's mailbox."""

from __future__ import annotations

import json
import logging

from bot import health
from bot.settings import Settings

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "email", help="answer questions sent to Clerk's mailbox (IMAP in, SMTP out)"
    )
    parser.add_argument(
        "--once", action="store_true", help="process what is waiting, then exit (for cron)"
    )
    parser.add_argument("--json", action="store_true", help="with --once: print the summary")
    parser.set_defaults(run=run_email)


def run_email(args, settings: Settings) -> int:
    # Imported here so that `clerk --help` stays quick and other verbs need no mail settings.
    from bot.channels.email.app import EmailAssistant
    from bot.channels.email.clients import check_email_settings, connect_imap, connect_smtp
    from bot.channels.email.notify import EmailNotifier
    from bot.engine.answer import Answerer
    from bot.requests.service import open_store

    check_email_settings(settings)
    store = open_store(settings)
    assistant = EmailAssistant(
        settings,
        Answerer.from_settings(settings),
        store,
        imap_factory=lambda: connect_imap(settings),
        smtp_factory=lambda: connect_smtp(settings),
    )
    notifiers = {"email": EmailNotifier(settings, lambda: connect_smtp(settings))}
    with assistant:
        return _run(args, assistant, store, notifiers)


def _run(args, assistant, store, notifiers) -> int:
    from bot.requests.service import deliver_answers

    if args.once:
        summary = assistant.run_once()
        delivered = deliver_answers(store, notifiers)
        result = {**summary.to_dict(), "officer_answers_sent": len(delivered.sent)}
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(
                ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in result.items() if v)
                or "no new mail"
            )
        return 0

    def after_pass() -> None:  # a pass that got here read the mailbox: record it
        deliver_answers(store, notifiers)
        health.beat(assistant.settings.home, "email", True)

    assistant.run_forever(on_pass=after_pass)
    return 0
