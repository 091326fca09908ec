"""Email soak: messages through real Dovecot and aiosmtpd while `clerk email` is killed with
SIGKILL again and again and Dovecot is restarted.

A feeder appends --messages messages to the mailbox at --rate per second: 5% malformed (a From
header with defects, a malformed Message-ID, MIME nested 1,000 deep, or over CLERK_EMAIL_MAX_MB),
5% automatic replies, 5% from strangers, the rest councillors' questions from an allowed domain.
Meanwhile `clerk email` (a real process, the real Answerer over a small real subset of
../shared/corpus, SQLite request store) is killed --kills times, each a random moment (0-3 s)
after it shows it is working (a reply sent or a pass recorded), and started again at once; Dovecot
is restarted --restarts times, evenly spread over the feeding. At the end `clerk email` runs
uncut until nothing is left unprocessed and no reply has come for a while.

Counts: replies per allowed question (exactly one expected), replies to anything else (none
expected), malformed messages quarantined (all expected), and where the rest ended up.
Prints figures; asserts nothing. Needs root and Dovecot (scripts/test-services).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/soak_email.py [--messages 1000] [--kills 20]
        [--restarts 3] [--rate 8] [--home DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from _common import QUESTIONS, REPO, clerk, clerk_env, percentile, scratch_home  # first
from mailservers import PASSWORD, Dovecot, SmtpCapture, nested_question, remove_dovecot
from mailservers import start_dovecot as new_dovecot

from bot.channels.email.state import CLAIM_SECONDS

ADDRESS = "ask@clerk.example"
QUARANTINE = "Clerk Quarantine"
MAX_MB = 0.1
MALFORMED = ("defective From", "defective From (2)", "malformed Message-ID", "MIME nested")
MALFORMED += ("over the size cap",)
SETTLE = 8.0  # seconds with nothing unprocessed and no new reply: the run is over
SOAK_ID = re.compile(rb"X-Soak: soak-(\d+)-end", re.IGNORECASE)


def kind_of(n: int) -> str:
    return {0: "malformed", 1: "auto-reply", 2: "stranger"}.get(n % 20, "question")


def message_id(n: int) -> str:
    return f"<soak-{n}@mail.kent.gov.uk>"


def way_of(n: int) -> str:
    """How malformed message n is broken."""
    return MALFORMED[(n // 20) % len(MALFORMED)]


def message(n: int) -> bytes:
    """Message n of the soak, of kind_of(n); every one carries an X-Soak header naming it."""
    kind = kind_of(n)
    if kind == "malformed" and way_of(n) == "MIME nested":
        return f"X-Soak: soak-{n}-end\r\n".encode() + nested_question(1000, message_id(n))
    msg = EmailMessage()
    sender = f"A Stranger <someone{n}@example.net>" if kind == "stranger" else ""
    msg["From"] = sender or f"Cllr Soak {n} <cllr{n}@kent.gov.uk>"
    msg["To"] = ADDRESS
    msg["Subject"] = ("Automatic reply: " if kind == "auto-reply" else "") + f"Question {n}"
    msg["Date"] = formatdate()
    msg["Message-ID"] = message_id(n)
    msg["X-Soak"] = f"soak-{n}-end"
    if kind == "auto-reply":
        msg["Auto-Submitted"] = "auto-replied"
    body = QUESTIONS[n % len(QUESTIONS)]
    if kind == "malformed" and way_of(n) == "over the size cap":
        body += "\n\n" + "Appendix text. " * int(MAX_MB * 1024 * 1024 / 15 + 1000)
    msg.set_content(f"Hello,\n\n{body}\n\nKind regards,\nCllr Soak {n}\n")
    return malform(bytes(msg), n) if kind == "malformed" else bytes(msg)


def malform(raw: bytes, n: int) -> bytes:
    """Break a header the email package would refuse to write: the raw bytes are edited."""
    bad = {
        "defective From": (b"From", b"smith@kent.gov.uk <a@evil.com>"),
        "defective From (2)": (b"From", b"<smith@kent.gov.uk>a@evil.com"),
        "malformed Message-ID": (b"Message-ID", f"<[soak-{n}]@mail.kent.gov.uk>".encode()),
    }.get(way_of(n))
    if bad is None:
        return raw
    name, value = bad
    return re.sub(rb"^" + name + rb": .*$", name + b": " + value, raw, count=1, flags=re.MULTILINE)


class EmailBot:
    """`clerk email` as a real process, killed and started again."""

    def __init__(self, home: Path, dovecot: Dovecot, user: str, smtp: SmtpCapture) -> None:
        self.home = home
        self.env = clerk_env(
            home,
            CLERK_IMAP_HOST="127.0.0.1",
            CLERK_IMAP_PORT=str(dovecot.imap_port),
            CLERK_IMAP_USER=user,
            CLERK_IMAP_PASSWORD=PASSWORD,
            CLERK_IMAP_SECURITY="none",
            CLERK_SMTP_HOST="127.0.0.1",
            CLERK_SMTP_PORT=str(smtp.port),
            CLERK_SMTP_SECURITY="none",
            CLERK_EMAIL_ADDRESS=ADDRESS,
            CLERK_EMAIL_ALLOWED="@kent.gov.uk",
            CLERK_EMAIL_MAX_MB=str(MAX_MB),
            CLERK_EMAIL_POLL_SECONDS="2",
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            clerk("email"), env=self.env, cwd=REPO, stderr=subprocess.DEVNULL
        )

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def beat(self) -> float:
        """When the process last recorded a finished pass (0 before any)."""
        path = self.home / "health" / "email.json"
        return path.stat().st_mtime if path.exists() else 0.0


class Feeder(threading.Thread):
    """Appends the messages at a steady rate; never while Dovecot is being restarted."""

    def __init__(self, dovecot: Dovecot, user: str, count: int, rate: float, lock) -> None:
        super().__init__(daemon=True)
        self.dovecot, self.user, self.count, self.rate, self.lock = dovecot, user, count, rate, lock
        self.appended_at: dict[int, float] = {}

    def run(self) -> None:
        started = time.perf_counter()
        for n in range(self.count):
            time.sleep(max(0.0, started + n / self.rate - time.perf_counter()))
            raw = message(n)
            while True:
                with self.lock:
                    try:
                        self.dovecot.append(self.user, raw)
                        break
                    except (OSError, imaplib.IMAP4.error):
                        pass
                time.sleep(0.2)
            self.appended_at[n] = time.time()


class ReplyClock(threading.Thread):
    """Stamps each reply the SMTP server receives with (about) its arrival time."""

    def __init__(self, smtp: SmtpCapture) -> None:
        super().__init__(daemon=True)
        self.smtp, self.at, self.stop = smtp, list[float](), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.at += [time.time()] * (len(self.smtp.messages) - len(self.at))


def restart_dovecot(dovecot: Dovecot, lock: threading.Lock) -> float:
    with lock:
        began = time.perf_counter()
        dovecot.stop()
        dovecot.start()
        return time.perf_counter() - began


def working_since(bot: EmailBot, smtp: SmtpCapture, since: float, replies: int) -> bool:
    return bot.beat() > since or len(smtp.messages) > replies


def unprocessed(dovecot: Dovecot, user: str) -> int:
    imap = dovecot.connect(user)
    try:
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("SEARCH", None, "UNKEYWORD", "$ClerkProcessed", "UNDELETED")
        return len(data[0].split()) if data and data[0] else 0
    finally:
        imap.logout()


def folder(dovecot: Dovecot, user: str, name: str) -> dict[int, list[set[str]]]:
    """Soak number -> the flags of each copy of it in the folder."""
    imap = dovecot.connect(user)
    found: dict[int, list[set[str]]] = {}
    try:
        status, _ = imap.select(f'"{name}"', readonly=True)
        if status != "OK":
            return found
        _, data = imap.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (X-SOAK)])")
        for item in data:
            if isinstance(item, tuple):
                soak = SOAK_ID.search(item[1])
                flags = {f.decode() for f in imaplib.ParseFlags(item[0])}
                found.setdefault(int(soak.group(1)) if soak else -1, []).append(flags)
        return found
    finally:
        imap.logout()


def run(args: argparse.Namespace, home: Path) -> None:
    rng = random.Random(args.seed)
    dovecot, smtp = new_dovecot(), SmtpCapture().start()
    try:
        user = dovecot.new_user()
        bot, lock = EmailBot(home, dovecot, user, smtp), threading.Lock()
        feeder = Feeder(dovecot, user, args.messages, args.rate, lock)
        clock = ReplyClock(smtp)
        started = time.perf_counter()
        clock.start()
        feeder.start()
        bot.start()
        try:
            restarts = churn(args, rng, bot, smtp, dovecot, lock)
            feeder.join()
            feeding = time.perf_counter() - started
            settle(smtp, dovecot, user)
        finally:
            bot.kill()
        time.sleep(0.5)
        clock.stop.set()
        elapsed = time.perf_counter() - started
        report(args, smtp, dovecot, user, restarts, feeding, elapsed)
        delays(smtp, clock, feeder)
    finally:
        smtp.stop()
        remove_dovecot(dovecot)


def churn(args, rng, bot, smtp, dovecot, lock) -> list[float]:
    """Kill and restart `clerk email` --kills times; restart Dovecot --restarts times."""
    restart_after = {args.kills * (k + 1) // (args.restarts + 1) for k in range(args.restarts)}
    restarts = []
    for k in range(args.kills):
        since, replies = time.time(), len(smtp.messages)
        deadline = time.perf_counter() + 120
        while not working_since(bot, smtp, since, replies) and time.perf_counter() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 3))
        bot.kill()
        bot.start()
        if k in restart_after:
            restarts.append(restart_dovecot(dovecot, lock))
    return restarts


def settle(smtp: SmtpCapture, dovecot: Dovecot, user: str) -> None:
    """Let the last `clerk email` run until nothing is left and no reply comes for SETTLE s."""
    last, count = time.perf_counter(), len(smtp.messages)
    deadline = time.perf_counter() + 1800
    while time.perf_counter() < deadline:
        time.sleep(1)
        if len(smtp.messages) != count:
            last, count = time.perf_counter(), len(smtp.messages)
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            if unprocessed(dovecot, user) == 0 and time.perf_counter() - last > SETTLE:
                return


def report(args, smtp, dovecot, user, restarts, feeding, elapsed) -> None:
    ids = {message_id(n): n for n in range(args.messages)}
    replies = Counter(
        ids.get(str(m.message.get("In-Reply-To", "")).strip(), -1) for m in smtp.messages
    )
    inbox, quarantine = folder(dovecot, user, "INBOX"), folder(dovecot, user, QUARANTINE)
    kinds = Counter(kind_of(n) for n in range(args.messages))
    questions = [n for n in range(args.messages) if kind_of(n) == "question"]
    others = [n for n in range(args.messages) if kind_of(n) != "question"]
    malformed = [n for n in others if kind_of(n) == "malformed"]
    unanswered = [n for n in questions if replies[n] == 0]
    flags = Counter(
        f for n in unanswered for copy in inbox.get(n, []) for f in copy if f.startswith("$Clerk")
    )
    print(
        f"messages: {args.messages} ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}), "
        f"appended over {feeding:.0f} s"
    )
    print(f"clerk email killed (SIGKILL) and restarted: {args.kills} times")
    print(f"Dovecot restarted: {len(restarts)} times ({', '.join(f'{s:.1f} s' for s in restarts)})")
    once = sum(1 for n in questions if replies[n] == 1)
    print(f"allowed questions answered exactly once: {once} of {len(questions)}")
    print(f"  answered more than once: {sum(1 for n in questions if replies[n] > 1)}")
    print(f"  not answered: {len(unanswered)} (their flags: {dict(flags) or 'none'})")
    wrong = sum(replies[n] for n in others)
    print(f"replies to anything else: {wrong} (replies matching no message: {replies[-1]})")
    in_quarantine = [n for n in malformed if n in quarantine]
    print(f"malformed quarantined: {len(in_quarantine)} of {len(malformed)}")
    for way in MALFORMED:
        of_way = [n for n in malformed if way_of(n) == way]
        print(f"  {way}: {sum(1 for n in of_way if n in quarantine)} of {len(of_way)}")
    print(f"not malformed but quarantined: {sum(1 for n in quarantine if n not in malformed)}")
    copies = sum(len(c) - 1 for c in inbox.values()) + sum(len(c) - 1 for c in quarantine.values())
    print(f"messages in the mailbox twice: {copies}; replies sent: {len(smtp.messages)}")
    print(f"time: {elapsed:.0f} s")


def delays(smtp: SmtpCapture, clock: ReplyClock, feeder: Feeder) -> None:
    """How long questions waited for their reply; long waits are claims left by a kill."""
    ids = {message_id(n): n for n in feeder.appended_at}
    waits = []
    for captured, at in zip(smtp.messages, clock.at, strict=False):
        n = ids.get(str(captured.message.get("In-Reply-To", "")).strip())
        if n is not None:
            waits.append(at - feeder.appended_at[n])
    if waits:
        print(
            f"question to reply: p50 {percentile(waits, 50):.1f} s, p99 {percentile(waits, 99):.1f}"
            f" s, max {max(waits):.0f} s (mail waits while the process restarts; a message being "
            f"answered when it died waits for its claim to expire, {CLAIM_SECONDS} s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=8.0, help="messages appended per second")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--home", type=Path, help="an existing CLERK_HOME with a published index")
    args = parser.parse_args()
    with scratch_home("clerk-soak-email-", args.home) as home:
        run(args, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
