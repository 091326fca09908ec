"""The email channel: read questions from an IMAP folder, answer by SMTP in the same thread.

Each waiting message is screened (mail loops, allowed senders), parsed, answered through the
follow-up orchestration, and replied to exactly once: the state table records the reply before it
is sent, and IMAP flags (or the quarantine folder) show what was done. Nothing is deleted.
A message that cannot be read (or is over the size limit, checked before it is downloaded) is
quarantined with its reason; one the server refuses to fetch or flag is skipped for the pass.
Logs name messages by IMAP UID and give reasons, never addresses or subjects.
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
    MessageRefused,
    logout_quietly,
    quit_quietly,
    send,
    smtp_problem,
)
from bot.channels.email.parse import (
    IncomingQuestion,
    ParseError,
    is_allowed,
    message_key,
    read_question,
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
    skipped: int = 0  # the server refused to fetch, flag or move it; retried on the next pass
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
        self.max_bytes = int(settings.email.max_mb * 1024 * 1024)
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
        """One pass: handle each unprocessed message in the selected folder.

        A message the server will not fetch, flag or move is skipped (and tried again on the
        next pass); one that cannot be read is quarantined; neither stops the pass."""
        counts: Counter[str] = Counter()
        for uid in mailbox.unprocessed():
            try:
                outcome = self._handle(mailbox, uid)
            except MessageRefused as exc:
                log.warning("skipped message uid %s this pass: %s", uid.decode(), exc)
                outcome = "skipped"
            except CONNECTION_ERRORS:
                raise
            except Exception:  # one bad message must not stop the others being answered
                log.exception("could not handle message uid %s; retried next pass", uid.decode())
                outcome = "errors"
            if outcome:
                counts[outcome] += 1
        return RunSummary(**counts)

    def _handle(self, mailbox: Mailbox, uid: bytes) -> str | None:
        """Handle one message; returns the RunSummary field it counts under (None: vanished)."""
        size = mailbox.size(uid)
        if size is None:
            return None
        if size > self.max_bytes:
            head = mailbox.header(uid)
            if head is None:
                return None
            key = message_key(head)
            reason = f"{size:,} bytes, over the {self.settings.email.max_mb:g} MB limit"
            reason += " (CLERK_EMAIL_MAX_MB); not read"
            return self._already_handled(mailbox, uid, key) or self._quarantine(
                mailbox, uid, key, reason
            )
        raw = mailbox.fetch(uid)
        if raw is None:
            return None
        key = message_key(raw)
        done = self._already_handled(mailbox, uid, key)
        if done:
            return done
        try:
            read = read_question(raw, self.own_address)
        except ParseError as exc:
            return self._quarantine(mailbox, uid, key, str(exc))
        if isinstance(read, str):
            log.info("ignoring message uid %s: %s", uid.decode(), read)
            return self._finish(mailbox, uid, key, "", "", st.IGNORED, read)
        refusal = self._refusal(read)
        if refusal:
            log.info("not answering message uid %s: %s", uid.decode(), refusal)
            return self._finish(
                mailbox, uid, key, read.sender, read.subject, st.UNKNOWN_SENDER, refusal
            )
        return self._answer(mailbox, uid, key, read)

    def _refusal(self, incoming: IncomingQuestion) -> str | None:
        """Why the sender is not one Clerk answers, or None."""
        if not is_allowed(incoming.sender, self.settings.email.allowed):
            return "sender not in CLERK_EMAIL_ALLOWED"
        if incoming.auth_failure and self.settings.email.require_auth:
            return f"sender not authenticated ({incoming.auth_failure}; CLERK_EMAIL_REQUIRE_AUTH)"
        return None

    def _quarantine(self, mailbox: Mailbox, uid: bytes, key: str, reason: str) -> str:
        """Record why a message cannot be read, then move it to the quarantine folder."""
        log.warning("quarantining message uid %s: %s", uid.decode(), reason)
        self.state.record(key, "", "", st.QUARANTINED, reason)
        mailbox.move(uid, self.settings.email.quarantine_folder)
        return "quarantined"

    def _already_handled(self, mailbox: Mailbox, uid: bytes, key: str) -> str | None:
        """Re-flag a message whose outcome is already recorded; settle one left in 'sending'."""
        record = self.state.get(key)
        if record is None or record.state in st.RETRYABLE:
            return None
        if record.state == st.SENDING:
            log.error(
                "message uid %s was being replied to when Clerk stopped; it is treated as sent "
                "and flagged for an officer to check, never sent twice",
                uid.decode(),
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

    def _answer(self, mailbox: Mailbox, uid: bytes, key: str, incoming: IncomingQuestion) -> str:
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
        state = self._send(uid, key, reply, request_id)
        mailbox.flag(uid, *FLAGS[state])
        return outcome if state == st.SENT else state

    def _send(self, uid: bytes, key: str, reply: EmailMessage, request_id: int | None) -> str:
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
                reason = f"refused by the SMTP server: {smtp_problem(exc)}"
                log.error("the reply to message uid %s was %s", uid.decode(), reason)
                self.state.finish(key, st.FAILED, reason)
                return st.FAILED
            except CONNECTION_ERRORS as exc:
                reason = f"connection lost while sending: {smtp_problem(exc)}"
                log.error("reply to message uid %s may have been sent: %s", uid.decode(), reason)
                self.state.finish(key, st.UNCERTAIN, reason)
                raise
            self.state.finish(key, st.SENT)
            return st.SENT
        finally:
            quit_quietly(smtp)


def _run_hook(hook: Callable[[], object] | None) -> None:
    if hook is None:
        return
    try:
        hook()
    except Exception:  # noqa: BLE001 - a delivery problem must not stop answering questions
        log.exception("after-pass task failed")
