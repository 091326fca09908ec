"""The email channel: read questions from an IMAP folder, answer by SMTP in the same thread.

Each waiting message is screened (mail loops, allowed senders), parsed, answered through the
follow-up orchestration, and replied to exactly once: the state table records the reply before it
is sent, and IMAP flags (or the quarantine folder) show what was done. Nothing is deleted.
"""

from __future__ import annotations

import imaplib
import logging
import smtplib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.message import EmailMessage

from bot.channels.email import state as st
from bot.channels.email.clients import (
    CONNECTION_ERRORS,
    Mailbox,
    logout_quietly,
    quit_quietly,
    send,
)
from bot.channels.email.parse import (
    IncomingQuestion,
    ParseError,
    automated_reason,
    is_allowed,
    message_key,
    parse_question,
    read_message,
    sender_of,
)
from bot.channels.email.render import asker_reply_to, render_answer, render_problem
from bot.errors import QuestionError
from bot.requests.model import Asker, RequestStore
from bot.requests.service import handle_question
from bot.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "email_state.sqlite3"
# IMAP flags per outcome; every processed message also gets $ClerkProcessed.
FLAGS = {
    st.SENT: ("\\Seen", "$ClerkAnswered"),
    st.IGNORED: ("$ClerkIgnored",),
    st.UNKNOWN_SENDER: ("$ClerkUnknownSender",),
    st.UNCERTAIN: ("\\Flagged", "$ClerkUncertain"),
    st.FAILED: ("\\Flagged", "$ClerkFailed"),
}
# Refusals that prove the reply did not leave (anything else during sending is ambiguous).
REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


@dataclass(frozen=True)
class RunSummary:
    """What one pass over the mailbox did, by outcome."""

    answered: int = 0
    acknowledged: int = 0  # not answered from the papers: a follow-up request was logged
    problems: int = 0  # a reply explained why the question could not be asked
    ignored: int = 0
    unknown_sender: int = 0
    quarantined: int = 0
    uncertain: int = 0
    failed: int = 0
    already_done: int = 0
    errors: int = 0  # something unexpected; the message is retried on a later pass

    @property
    def total(self) -> int:
        return sum(asdict(self).values())

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class EmailAssistant:
    """Answers the questions waiting in one IMAP folder."""

    def __init__(
        self,
        settings: Settings,
        answerer,
        store: RequestStore,
        imap_factory: Callable[[], imaplib.IMAP4],
        smtp_factory: Callable[[], smtplib.SMTP],
        *,
        backoff: tuple[float, float] = (1.0, 60.0),
    ):
        self.settings = settings
        self.answerer = answerer
        self.store = store
        self.imap_factory = imap_factory
        self.smtp_factory = smtp_factory
        self.backoff = backoff
        self.own_address = settings.email.address.strip().lower()
        self.state = st.EmailState(settings.home / STATE_FILE)

    def close(self) -> None:
        self.state.close()

    def __enter__(self) -> EmailAssistant:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run_once(self) -> RunSummary:
        """Process every waiting message, then disconnect."""
        mailbox = self._open()
        try:
            return self.process(mailbox)
        finally:
            mailbox.close()

    def run_forever(
        self, stop: threading.Event | None = None, on_pass: Callable[[], object] | None = None
    ) -> None:
        """Keep processing as mail arrives; reconnect with backoff when the servers go away.

        on_pass runs after every pass (the CLI delivers officers' answers there); its failures
        are logged and do not stop the loop.
        """
        stop = stop or threading.Event()
        delay = self.backoff[0]
        while not stop.is_set():
            try:
                mailbox = self._open()
            except CONNECTION_ERRORS as exc:
                log.warning("cannot reach the mail server (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            delay = self.backoff[0]
            try:
                while not stop.is_set():
                    summary = self.process(mailbox)
                    if summary.total:
                        log.info("email pass: %s", summary.to_dict())
                    _run_hook(on_pass)
                    mailbox.wait(self.settings.email.poll_seconds, stop)
            except CONNECTION_ERRORS as exc:
                log.warning("mail connection lost (%s); reconnecting in %.1fs", exc, delay)
                stop.wait(delay)
            finally:
                mailbox.close()

    def _open(self) -> Mailbox:
        imap = self.imap_factory()
        try:
            return Mailbox(imap, self.settings.email.imap_folder)
        except BaseException:
            logout_quietly(imap)
            raise

    def process(self, mailbox: Mailbox) -> RunSummary:
        """One pass: handle each unprocessed message in the selected folder."""
        counts: Counter[str] = Counter()
        for uid in mailbox.unprocessed():
            raw = mailbox.fetch(uid)
            if raw is None:
                continue
            try:
                counts[self._handle(mailbox, uid, raw)] += 1
            except CONNECTION_ERRORS:
                raise
            except Exception:  # one bad message must not stop the others being answered
                log.exception("could not handle message uid %s; it will be tried again", uid)
                counts["errors"] += 1
        return RunSummary(**counts)

    def _handle(self, mailbox: Mailbox, uid: bytes, raw: bytes) -> str:
        """Handle one message; returns the RunSummary field it counts under."""
        msg = read_message(raw)
        key = message_key(msg, raw)
        _, sender = sender_of(msg)
        subject = _safe_subject(msg)
        done = self._already_handled(mailbox, uid, key)
        if done:
            return done
        reason = automated_reason(msg, self.own_address)
        if reason:
            log.info("ignoring %s from %s: %s", key, sender or "?", reason)
            return self._finish(mailbox, uid, key, sender, subject, st.IGNORED, reason)
        try:
            incoming = parse_question(msg, raw)
        except ParseError as exc:
            log.warning("quarantining %s from %s: %s", key, sender or "?", exc)
            self.state.record(key, sender, subject, st.QUARANTINED, str(exc))
            mailbox.flag(uid)
            mailbox.move(uid, self.settings.email.quarantine_folder)
            return "quarantined"
        if not is_allowed(incoming.sender, self.settings.email.allowed):
            log.info("not answering %s: %s is not an allowed sender", key, incoming.sender)
            reason = "sender not in CLERK_EMAIL_ALLOWED"
            return self._finish(mailbox, uid, key, sender, subject, st.UNKNOWN_SENDER, reason)
        return self._answer(mailbox, uid, incoming)

    def _already_handled(self, mailbox: Mailbox, uid: bytes, key: str) -> str | None:
        """Re-flag a message whose outcome is already recorded; settle one left in 'sending'."""
        record = self.state.get(key)
        if record is None or record.state in st.RETRYABLE:
            return None
        if record.state == st.SENDING:
            log.error(
                "message %s was being replied to (reply %s) when Clerk stopped; it is treated "
                "as sent and flagged for an officer to check, never sent twice",
                key,
                record.reply_id,
            )
            self.state.finish(key, st.UNCERTAIN, "interrupted while sending; not resent")
            mailbox.flag(uid, *FLAGS[st.UNCERTAIN])
            return "uncertain"
        if record.state == st.QUARANTINED:
            mailbox.move(uid, self.settings.email.quarantine_folder)
        else:
            mailbox.flag(uid, *FLAGS.get(record.state, ()))
        return "already_done"

    def _finish(self, mailbox, uid, key, sender, subject, state, reason) -> str:
        self.state.record(key, sender, subject, state, reason)
        mailbox.flag(uid, *FLAGS[state])
        return state.replace("-", "_")

    def _answer(self, mailbox: Mailbox, uid: bytes, incoming: IncomingQuestion) -> str:
        key = incoming.message_id
        if not self.state.claim(key, incoming.sender, incoming.subject):
            return self._already_handled(mailbox, uid, key) or "already_done"
        asker = Asker("email", incoming.sender, incoming.sender_name, asker_reply_to(incoming))
        logged = None
        try:
            answer, logged = handle_question(self.answerer, self.store, incoming.question, asker)
        except QuestionError as exc:
            reply, outcome = render_problem(incoming, str(exc), self.own_address), "problems"
        except Exception:
            self.state.release(key)  # nothing was sent: a later pass may try again
            raise
        else:
            reply = render_answer(incoming, answer, self.own_address, logged)
            outcome = "answered" if answer.answered else "acknowledged"
        request_id = logged.request.request_id if logged else None
        state = self._send(key, reply, request_id)
        mailbox.flag(uid, *FLAGS[state])
        return outcome if state == st.SENT else state

    def _send(self, key: str, reply: EmailMessage, request_id: int | None) -> str:
        """Send a reply at most once: recorded as 'sending' first, then 'sent'."""
        try:
            smtp = self.smtp_factory()
        except BaseException:
            self.state.release(key)  # nothing was sent: a later pass tries again
            raise
        try:
            self.state.sending(key, reply["Message-ID"], request_id)
            try:
                send(smtp, reply)
            except REFUSED as exc:
                log.error("SMTP server refused the reply to %s: %s", key, exc)
                self.state.finish(key, st.FAILED, f"refused: {exc}")
                return st.FAILED
            except CONNECTION_ERRORS as exc:
                log.error("reply to %s may or may not have been sent: %s", key, exc)
                self.state.finish(key, st.UNCERTAIN, f"connection lost while sending: {exc}")
                raise
            self.state.finish(key, st.SENT)
            return st.SENT
        finally:
            quit_quietly(smtp)


def _safe_subject(msg: EmailMessage) -> str:
    try:
        return str(msg.get("Subject", "") or "")
    except Exception:  # noqa: BLE001 - recorded only; parse_question reports the real problem
        return ""


def _run_hook(hook: Callable[[], object] | None) -> None:
    if hook is None:
        return
    try:
        hook()
    except Exception:  # noqa: BLE001 - a delivery problem must not stop answering questions
        log.exception("after-pass task failed")
