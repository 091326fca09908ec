"""Email throughput: messages processed per minute through real Dovecot and aiosmtpd.

Starts Dovecot (throwaway configuration, 127.0.0.1) and an aiosmtpd capture server, appends a mix
of questions (answerable, not in the papers, automatic mail) with IMAP APPEND, then times
`EmailAssistant.run_once()` over them with the real Answerer over an index of real committee
papers and the real SQLite request store. Needs root and Debian's dovecot-core/dovecot-imapd
(scripts/test-services). Prints figures.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_email.py [--messages 30] [--home DIR]

Without --home it indexes a small subset of ../shared/corpus into a temporary data directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from _common import CORPUS, build_home  # first: it sets sys.path for the imports below
from mailservers import PASSWORD, SmtpCapture, remove_dovecot, start_dovecot

from bot.channels.email.app import EmailAssistant
from bot.channels.email.clients import connect_imap, connect_smtp
from bot.engine.answer import Answerer
from bot.requests.service import open_store
from bot.settings import Settings

QUESTIONS = (
    ("Exploitation", "What did the area committee resolve about protecting vulnerable children?"),
    ("Devolution", "What was decided about devolution and local government reorganisation?"),
    ("Chair", "Who chaired the County Council meeting in January 2025?"),
    ("Budget", "What did the Cabinet say about the council's budget position?"),
    ("SEND", "What is the position on special educational needs and disabilities?"),
    ("Bins", "When is the next bin collection in my ward?"),  # not in the papers
    ("County lines", "What did the report say about county lines and child exploitation?"),
    ("Motions", "What motions were debated at the County Council?"),
    ("Potholes", "How many potholes were filled in Ashford in 2023?"),  # not in the papers
)


def message(n: int) -> bytes:
    """Question n: every tenth is an out-of-office reply, which must be ignored."""
    subject, body = QUESTIONS[n % len(QUESTIONS)]
    msg = EmailMessage()
    msg["From"] = f"Cllr Bench {n} <cllr{n}@kent.gov.uk>"
    msg["To"] = "ask@clerk.example"
    msg["Subject"] = ("Automatic reply: " if n % 10 == 9 else "") + subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = f"<bench-{n}-{time.time_ns()}@kent.gov.uk>"
    if n % 10 == 9:
        msg["Auto-Submitted"] = "auto-replied"
    msg.set_content(f"Hello,\n\n{body}\n\nKind regards,\nCllr Bench {n}\n")
    return bytes(msg)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--home", type=Path, help="data directory with a published index")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="clerk-bench-email-"))
    base = (
        Settings.from_env({}, CLERK_HOME=home, CLERK_CORPUS=CORPUS)
        if args.home
        else build_home(home)
    )
    dovecot, smtp = start_dovecot(), SmtpCapture().start()
    try:
        user = dovecot.new_user()
        settings = base.replaced(
            CLERK_IMAP_HOST="127.0.0.1",
            CLERK_IMAP_PORT=dovecot.imap_port,
            CLERK_IMAP_USER=user,
            CLERK_IMAP_PASSWORD=PASSWORD,
            CLERK_IMAP_SECURITY="none",
            CLERK_SMTP_HOST="127.0.0.1",
            CLERK_SMTP_PORT=smtp.port,
            CLERK_SMTP_SECURITY="none",
            CLERK_EMAIL_ADDRESS="ask@clerk.example",
            CLERK_EMAIL_ALLOWED="@kent.gov.uk",
        )
        answerer = Answerer.from_settings(settings)
        answerer.answer("warm-up question about the budget")  # load the index before timing
        for n in range(args.messages):
            dovecot.append(user, message(n))
        with open_store(settings) as store, EmailAssistant(
            settings, answerer, store,
            imap_factory=lambda: connect_imap(settings),
            smtp_factory=lambda: connect_smtp(settings),
        ) as assistant:  # fmt: skip
            started = time.perf_counter()
            summary = assistant.run_once()
            seconds = time.perf_counter() - started
        print(f"messages: {summary.total} in {seconds:.1f} s  {summary.to_dict()}")
        print(f"replies captured by SMTP: {len(smtp.messages)}")
        print(f"throughput: {summary.total / seconds * 60:.0f} messages/minute")
        print(f"per message: {seconds / summary.total * 1000:.0f} ms mean")
        return 0
    finally:
        smtp.stop()
        remove_dovecot(dovecot)


if __name__ == "__main__":
    sys.exit(main())
