"""The email assistant against real servers on loopback: Dovecot (IMAP) and aiosmtpd (SMTP).

Questions are delivered with IMAP APPEND, answered by the real answering engine over a real
index, logged in the real SQLite request store; the tests assert what reached the SMTP server and
what the IMAP folders hold afterwards.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time

import paths
import pytest
from mailservers import ImapFaults, SmtpCapture, nested_question, remove_dovecot, start_dovecot

from bot.channels.email.app import STATE_FILE, EmailAssistant
from bot.channels.email.clients import connect_imap, connect_smtp
from bot.channels.email.notify import EmailNotifier
from bot.channels.email.state import EmailState
from bot.requests.service import deliver_answers, open_store

FIXTURES = paths.FIXTURES / "email"
OWN = "ask@clerk.example"
ALLOWED = "@kent.gov.uk, omar.khan@bradford.gov.uk"
PROCESSED = "$ClerkProcessed"


def eml(name: str, message_id: str | None = None) -> bytes:
    raw = (FIXTURES / name).read_bytes()
    if message_id:
        old = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0]
        raw = raw.replace(old, message_id.encode())
    return raw


@pytest.fixture(scope="session")
def dovecot():
    server = start_dovecot()
    yield server
    remove_dovecot(server)


@pytest.fixture(scope="session")
def smtp_server():
    capture = SmtpCapture().start()
    yield capture
    capture.stop()


def mail_settings(engine_settings, imap_port: int, user: str, smtp_port: int, **extra):
    return engine_settings.replaced(
        CLERK_IMAP_HOST="127.0.0.1",
        CLERK_IMAP_PORT=imap_port,
        CLERK_IMAP_USER=user,
        CLERK_IMAP_PASSWORD="clerk-test-password",  # noqa: S106 - the throwaway server's password
        CLERK_IMAP_SECURITY="none",
        CLERK_SMTP_HOST="127.0.0.1",
        CLERK_SMTP_PORT=smtp_port,
        CLERK_SMTP_SECURITY="none",
        CLERK_EMAIL_ADDRESS=OWN,
        CLERK_EMAIL_ALLOWED=ALLOWED,
        CLERK_EMAIL_POLL_SECONDS=0.5,
        **extra,
    )


@pytest.fixture
def mailbox_user(dovecot):
    return dovecot.new_user()


@pytest.fixture
def settings(engine_settings, dovecot, smtp_server, mailbox_user):
    smtp_server.clear()
    return mail_settings(engine_settings, dovecot.imap_port, mailbox_user, smtp_server.port)


@pytest.fixture
def store(settings):
    with open_store(settings) as opened:
        yield opened


def assistant_for(settings, answerer, store, smtp_factory=None, **kwargs) -> EmailAssistant:
    return EmailAssistant(
        settings,
        answerer,
        store,
        imap_factory=lambda: connect_imap(settings),
        smtp_factory=smtp_factory or (lambda: connect_smtp(settings)),
        **kwargs,
    )


PAPERS_URL = "https://papers.example.gov.uk/corpus"


@pytest.fixture
def answerer(settings, searcher):
    """The real answering engine, with links to where the papers are published."""
    from bot.engine.answer import Answerer

    return Answerer(settings.replaced(CLERK_DOCUMENTS_URL=PAPERS_URL), searcher)


@pytest.fixture
def assistant(settings, answerer, store):
    return assistant_for(settings, answerer, store)


def flags_of(dovecot, user, folder="INBOX") -> dict[str, set[str]]:
    return dict(dovecot.folder_state(user, folder))


def test_plain_question_answered_in_thread_with_citation(
    assistant, dovecot, mailbox_user, smtp_server
):
    dovecot.append(mailbox_user, eml("plain_question.eml"))

    summary = assistant.run_once()

    assert summary.answered == 1 and summary.total == 1
    [sent] = smtp_server.messages
    reply = sent.message
    assert sent.rcpt_tos == ["jane.smith@kent.gov.uk"] and sent.mail_from == OWN
    assert reply["Subject"] == "Re: Devolution white paper"
    assert reply["In-Reply-To"] == "<plain-question-1@mail.kent.gov.uk>"
    assert reply["References"] == "<plain-question-1@mail.kent.gov.uk>"
    assert reply["Auto-Submitted"] == "auto-replied"
    text = reply.get_body(("plain",)).get_content()
    html = reply.get_body(("html",)).get_content()
    title = "Devolution White Paper - County Council Report - FINAL"
    assert title in text and "County Council, Kent County Council, 9 January 2025, page" in text
    link = f"{PAPERS_URL}/kent/full_council/2025-01-09/Devolution%20White%20Paper"
    assert link in text and ".pdf#page=" in text
    assert f'<a href="{link}' in html and "<blockquote" in html
    flags = flags_of(dovecot, mailbox_user)["<plain-question-1@mail.kent.gov.uk>"]
    assert {"\\Seen", PROCESSED, "$ClerkAnswered"} <= flags
    # the next pass finds nothing to do and sends nothing more
    assert assistant.run_once().total == 0
    assert len(smtp_server.messages) == 1


def test_html_only_question_answered(assistant, dovecot, mailbox_user, smtp_server):
    dovecot.append(mailbox_user, eml("html_only.eml"))

    assert assistant.run_once().answered == 1
    [sent] = smtp_server.messages
    assert sent.rcpt_tos == ["omar.khan@bradford.gov.uk"]
    assert sent.message["In-Reply-To"] == "<CAHtml-only-2@mail.gmail.com>"
    text = sent.message.get_body(("plain",)).get_content()
    assert "Protecting vulnerable children" in text


def test_reply_with_quoted_history_asks_only_the_new_text(
    assistant, dovecot, mailbox_user, smtp_server, store
):
    dovecot.append(mailbox_user, eml("reply_with_history.eml"))

    summary = assistant.run_once()

    # the new text is not in the papers (the quoted history would have been)
    assert summary.acknowledged == 1
    [request] = store.list()
    assert request.question == (
        "Leisure centres Thanks. When will the Tonbridge swimming pool reopen after its "
        "refurbishment?"
    )
    assert "exploitation" not in request.question and "wrote" not in request.question
    [sent] = smtp_server.messages
    assert sent.message["Subject"] == "Re: Leisure centres"
    assert sent.message["References"] == (
        "<plain-question-1@mail.kent.gov.uk> <clerk-reply-1@clerk.example> "
        "<reply-history-3@mail.kent.gov.uk>"
    )


def test_unanswered_question_acknowledged_then_officer_answer_in_same_thread(
    assistant, settings, dovecot, mailbox_user, smtp_server, store
):
    dovecot.append(mailbox_user, eml("unanswerable_question.eml"))

    assert assistant.run_once().acknowledged == 1
    [ack] = smtp_server.messages
    [request] = store.list()
    text = ack.message.get_body(("plain",)).get_content()
    assert "do not answer this question" in text
    assert f"request #{request.request_id}" in text
    assert "reply to you in this email thread" in text
    [asker] = request.askers
    assert (asker.channel, asker.user_id) == ("email", "jane.smith@kent.gov.uk")

    store.answer(
        request.request_id,
        "A. Officer",
        "From the 2023 records: 4,100 potholes were filled <in 2023>.",
    )
    notifier = EmailNotifier(settings, lambda: connect_smtp(settings))
    report = deliver_answers(store, {"email": notifier})

    assert len(report.sent) == 1
    officer = smtp_server.messages[1].message
    assert b"\n>From " not in smtp_server.messages[1].raw  # sent as written, no mbox escaping
    assert officer["To"].addresses[0].addr_spec == "jane.smith@kent.gov.uk"
    assert officer["Subject"] == "Re: Potholes in Ashford"
    assert officer["In-Reply-To"] == "<unanswerable-9@mail.kent.gov.uk>"
    assert officer["References"] == (
        "<older-thread-0@mail.kent.gov.uk> <unanswerable-9@mail.kent.gov.uk>"
    )
    assert officer["Auto-Submitted"] == "auto-replied"
    assert officer["Message-ID"] != ack.message["Message-ID"]
    officer_text = officer.get_body(("plain",)).get_content()
    assert "From the 2023 records: 4,100 potholes were filled <in 2023>." in officer_text
    assert "&lt;in 2023&gt;" in officer.get_body(("html",)).get_content()
    # delivered once: a second round sends nothing
    assert not deliver_answers(store, {"email": notifier}).results
    assert len(smtp_server.messages) == 2


def test_auto_reply_and_mailing_list_are_not_answered(
    assistant, settings, dovecot, mailbox_user, smtp_server
):
    dovecot.append(mailbox_user, eml("auto_reply.eml"))
    dovecot.append(mailbox_user, eml("mailing_list.eml"))

    summary = assistant.run_once()

    assert summary.ignored == 2 and summary.total == 2
    assert smtp_server.messages == []
    flags = flags_of(dovecot, mailbox_user)
    for message_id in ("<auto-reply-5@mail.kent.gov.uk>", "<list-6@lists.kent.gov.uk>"):
        assert {PROCESSED, "$ClerkIgnored"} <= flags[message_id]
        assert "\\Seen" not in flags[message_id]  # left for a person to read
    record = EmailState(settings.home / STATE_FILE).get("<auto-reply-5@mail.kent.gov.uk>")
    assert record.state == "ignored" and "Auto-Submitted" in record.reason


def test_unknown_sender_is_recorded_not_answered(
    assistant, settings, dovecot, mailbox_user, smtp_server
):
    dovecot.append(mailbox_user, eml("unknown_sender.eml"))

    assert assistant.run_once().unknown_sender == 1
    assert smtp_server.messages == []
    assert "$ClerkUnknownSender" in flags_of(dovecot, mailbox_user)["<unknown-7@example.com>"]
    record = EmailState(settings.home / STATE_FILE).get("<unknown-7@example.com>")
    assert (record.state, record.sender) == ("unknown-sender", "someone@example.com")


def test_malformed_message_is_quarantined_with_reason(
    assistant, settings, dovecot, mailbox_user, smtp_server
):
    dovecot.append(mailbox_user, eml("malformed.eml"))
    dovecot.append(mailbox_user, eml("plain_question.eml"))

    summary = assistant.run_once()

    assert (summary.quarantined, summary.total) == (1, 2)
    assert len(smtp_server.messages) == 1  # only the good question was answered
    assert list(flags_of(dovecot, mailbox_user)) == ["<plain-question-1@mail.kent.gov.uk>"]
    assert "Clerk Quarantine" in dovecot.folders(mailbox_user)
    quarantined = flags_of(dovecot, mailbox_user, "Clerk Quarantine")
    assert list(quarantined) == ["<malformed-8@mail.kent.gov.uk>"]
    record = EmailState(settings.home / STATE_FILE).get("<malformed-8@mail.kent.gov.uk>")
    assert record.state == "quarantined" and "From" in record.reason


class SimulatedCrash(BaseException):
    """The process dies: nothing after this point runs."""


class CrashAfterSending(smtplib.SMTP):
    """A real SMTP client whose process 'dies' the moment the server has accepted the message."""

    def sendmail(self, *args, **kwargs):
        result = super().sendmail(*args, **kwargs)
        raise SimulatedCrash("killed after sending")
        return result  # pragma: no cover


def test_crash_after_sending_never_sends_twice(
    settings, answerer, dovecot, mailbox_user, smtp_server
):
    dovecot.append(mailbox_user, eml("plain_question.eml"))
    with open_store(settings) as store:
        crashing = assistant_for(
            settings, answerer, store, smtp_factory=lambda: CrashAfterSending(*_smtp(settings))
        )
        with pytest.raises(SimulatedCrash):
            crashing.run_once()
    assert len(smtp_server.messages) == 1
    reply_id = smtp_server.messages[0].message["Message-ID"]
    # what the dead process left behind: recorded as 'sending' with the reply's id, not flagged
    left = EmailState(settings.home / STATE_FILE).get("<plain-question-1@mail.kent.gov.uk>")
    assert (left.state, left.reply_id) == ("sending", reply_id)
    assert PROCESSED not in flags_of(dovecot, mailbox_user)["<plain-question-1@mail.kent.gov.uk>"]

    # a new process starts: it must not answer again, and flags the message for an officer
    with open_store(settings) as store:
        summary = assistant_for(settings, answerer, store).run_once()

    assert summary.uncertain == 1 and summary.answered == 0
    assert len(smtp_server.messages) == 1
    flags = flags_of(dovecot, mailbox_user)["<plain-question-1@mail.kent.gov.uk>"]
    assert {PROCESSED, "\\Flagged", "$ClerkUncertain"} <= flags
    record = EmailState(settings.home / STATE_FILE).get("<plain-question-1@mail.kent.gov.uk>")
    assert record.state == "uncertain" and record.reply_id == reply_id


def _smtp(settings) -> tuple[str, int]:
    return settings.email.smtp_host, settings.email.smtp_port


def test_same_message_delivered_twice_is_answered_once(
    assistant, dovecot, mailbox_user, smtp_server
):
    dovecot.append(mailbox_user, eml("plain_question.eml"))
    assistant.run_once()
    dovecot.append(mailbox_user, eml("plain_question.eml"))  # e.g. delivered by two routes

    summary = assistant.run_once()

    assert summary.already_done == 1
    assert len(smtp_server.messages) == 1


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def test_survives_imap_server_restart(engine_settings, answerer, smtp_server, caplog):
    caplog.set_level(logging.INFO, logger="bot")
    server = start_dovecot()  # its own server: this test stops it
    try:
        smtp_server.clear()
        user = server.new_user()
        settings = mail_settings(engine_settings, server.imap_port, user, smtp_server.port)
        stop = threading.Event()
        with open_store(settings) as store:
            assistant = assistant_for(settings, answerer, store, backoff=(0.1, 0.5))
            loop = threading.Thread(target=assistant.run_forever, args=(stop,), daemon=True)
            server.append(user, eml("plain_question.eml"))
            loop.start()
            try:
                wait_for(lambda: len(smtp_server.messages) == 1)
                server.stop()  # the connection in IDLE is dropped; reconnects are refused
                time.sleep(1.0)
                server.start()
                server.append(user, eml("html_only.eml", "<after-restart-1@mail.kent.gov.uk>"))
                wait_for(lambda: len(smtp_server.messages) == 2)
            finally:
                stop.set()
                loop.join(10)
            assert not loop.is_alive()
        lost = [r for r in caplog.records if "reconnecting" in r.getMessage()]
        assert lost, [r.getMessage() for r in caplog.records]
        replied_to = [m.message["In-Reply-To"] for m in smtp_server.messages]
        assert replied_to == [
            "<plain-question-1@mail.kent.gov.uk>",
            "<after-restart-1@mail.kent.gov.uk>",
        ]
        for flags in flags_of(server, user).values():
            assert "$ClerkAnswered" in flags
    finally:
        remove_dovecot(server)


def test_question_too_long_gets_an_explanation_not_a_request(
    assistant, dovecot, mailbox_user, smtp_server, store
):
    raw = eml("plain_question.eml", "<long-1@mail.kent.gov.uk>")
    raw = raw.replace(b"Did the", b"Why? " * 600 + b"Did the")
    dovecot.append(mailbox_user, raw)

    assert assistant.run_once().problems == 1
    [sent] = smtp_server.messages
    assert "I could not look this up" in sent.message.get_body(("plain",)).get_content()
    assert store.list() == []


def with_header(raw: bytes, header: str, value: str) -> bytes:
    """The message with one header's value replaced."""
    prefix = header.encode() + b": "
    lines = raw.split(b"\r\n")
    return b"\r\n".join(prefix + value.encode() if x.startswith(prefix) else x for x in lines)


def received_with(raw: bytes, auth_results: str) -> bytes:
    """The message as the receiving server stores it, with its Authentication-Results on top."""
    return f"Authentication-Results: {auth_results}\r\n".encode() + raw


def personal_data_logged(caplog) -> list[str]:
    """Log lines naming an address, a domain of the test senders or a subject."""
    words = ("@", "kent.gov.uk", "evil.com", "Devolution", "Potholes")
    return [r.getMessage() for r in caplog.records if any(w in r.getMessage() for w in words)]


@pytest.mark.parametrize(
    "spoofed", ["smith@kent.gov.uk <a@evil.com>", "<smith@kent.gov.uk>a@evil.com"]
)
def test_from_header_with_defects_is_not_read_as_the_allowed_address(
    assistant, settings, dovecot, mailbox_user, smtp_server, spoofed, caplog
):
    caplog.set_level(logging.INFO, logger="bot")
    raw = eml("plain_question.eml", "<spoofed-1@evil.com>")
    dovecot.append(mailbox_user, with_header(raw, "From", spoofed))
    dovecot.append(mailbox_user, eml("plain_question.eml"))

    summary = assistant.run_once()

    assert (summary.answered, summary.quarantined, summary.total) == (1, 1, 2)
    [sent] = smtp_server.messages  # only the real councillor's question
    assert sent.rcpt_tos == ["jane.smith@kent.gov.uk"]
    assert list(flags_of(dovecot, mailbox_user, "Clerk Quarantine")) == ["<spoofed-1@evil.com>"]
    record = EmailState(settings.home / STATE_FILE).get("<spoofed-1@evil.com>")
    assert record.state == "quarantined" and "From header has parse defects" in record.reason
    assert assistant.run_once().total == 0
    assert personal_data_logged(caplog) == []


DMARC_FAIL = (
    "mx.kent.gov.uk; spf=pass smtp.mailfrom=kent.gov.uk; dkim=none; "
    "dmarc=fail (p=none dis=none) header.from=kent.gov.uk"
)
SPF_SOFTFAIL = (
    "mx.kent.gov.uk; spf=softfail (domain does not designate 203.0.113.9) smtp.mailfrom=kent.gov.uk"
)
DKIM_ALIGNED = (
    "mx.kent.gov.uk; spf=fail smtp.mailfrom=bounce.example; dkim=pass header.d=kent.gov.uk; "
    "dmarc=pass header.from=kent.gov.uk"
)


def test_failed_dmarc_or_spf_is_not_an_allowed_sender(
    assistant, settings, dovecot, mailbox_user, smtp_server, caplog
):
    caplog.set_level(logging.INFO, logger="bot")
    for number, results in enumerate((DMARC_FAIL, SPF_SOFTFAIL, DKIM_ALIGNED)):
        raw = eml("plain_question.eml", f"<auth-{number}@mail.kent.gov.uk>")
        dovecot.append(mailbox_user, received_with(raw, results))
    dovecot.append(mailbox_user, eml("plain_question.eml"))  # no Authentication-Results at all

    summary = assistant.run_once()

    assert (summary.unknown_sender, summary.answered, summary.total) == (2, 2, 4)
    replied_to = sorted(m.message["In-Reply-To"] for m in smtp_server.messages)
    assert replied_to == ["<auth-2@mail.kent.gov.uk>", "<plain-question-1@mail.kent.gov.uk>"]
    state = EmailState(settings.home / STATE_FILE)
    for number, failure in ((0, "dmarc=fail"), (1, "spf=softfail")):
        record = state.get(f"<auth-{number}@mail.kent.gov.uk>")
        assert record.state == "unknown-sender" and failure in record.reason
        flags = flags_of(dovecot, mailbox_user)[f"<auth-{number}@mail.kent.gov.uk>"]
        assert "$ClerkUnknownSender" in flags
    assert personal_data_logged(caplog) == []


def test_failed_dmarc_is_answered_when_authentication_is_not_required(
    engine_settings, answerer, store, dovecot, mailbox_user, smtp_server
):
    smtp_server.clear()
    settings = mail_settings(
        engine_settings,
        dovecot.imap_port,
        mailbox_user,
        smtp_server.port,
        CLERK_EMAIL_REQUIRE_AUTH="false",  # as it comes from the environment
    )
    dovecot.append(mailbox_user, received_with(eml("plain_question.eml"), DMARC_FAIL))

    assert assistant_for(settings, answerer, store).run_once().answered == 1
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    ("unreadable", "key", "reason"),
    [
        (
            with_header(eml("plain_question.eml"), "Message-ID", "<[abc]@mail.kent.gov.uk>"),
            "<[abc]@mail.kent.gov.uk>",
            "malformed Message-ID",
        ),
        (None, "<deep-1@mail.kent.gov.uk>", "nested"),
    ],
    ids=["malformed-message-id", "mime-nested-1000-deep"],
)
def test_unreadable_message_is_quarantined_once_with_its_reason(
    assistant, settings, dovecot, mailbox_user, smtp_server, unreadable, key, reason
):
    dovecot.append(mailbox_user, unreadable or nested_question(1000))
    dovecot.append(mailbox_user, eml("plain_question.eml"))

    summary = assistant.run_once()

    assert (summary.quarantined, summary.answered, summary.total) == (1, 1, 2)
    assert len(smtp_server.messages) == 1
    assert list(flags_of(dovecot, mailbox_user, "Clerk Quarantine")) == [key]
    record = EmailState(settings.home / STATE_FILE).get(key)
    assert record.state == "quarantined" and reason in record.reason
    # the next pass has nothing left to fail on
    assert assistant.run_once().total == 0


@pytest.fixture
def faults(dovecot):
    """A proxy in front of the session's Dovecot that can refuse commands about one message."""
    proxy = ImapFaults(dovecot.imap_port).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def faulty_settings(engine_settings, faults, smtp_server, mailbox_user):
    smtp_server.clear()
    return mail_settings(engine_settings, faults.port, mailbox_user, smtp_server.port)


def test_message_over_the_size_cap_is_quarantined_without_being_downloaded(
    engine_settings, answerer, store, faults, dovecot, mailbox_user, smtp_server
):
    smtp_server.clear()
    settings = mail_settings(
        engine_settings, faults.port, mailbox_user, smtp_server.port, CLERK_EMAIL_MAX_MB=0.1
    )
    big = eml("plain_question.eml", "<big-1@mail.kent.gov.uk>")
    big = big.replace(b"Kind regards,", b"Kind regards,\r\n" + b"x" * 76 * 4000)  # 300 KB
    dovecot.append(mailbox_user, big)
    dovecot.append(mailbox_user, eml("plain_question.eml"))
    assistant = assistant_for(settings, answerer, store)

    summary = assistant.run_once()

    assert (summary.quarantined, summary.answered, summary.total) == (1, 1, 2)
    assert faults.bytes_from_server < len(big) / 10  # only its size and the start of its header
    assert [m.message["In-Reply-To"] for m in smtp_server.messages] == [
        "<plain-question-1@mail.kent.gov.uk>"
    ]
    assert list(flags_of(dovecot, mailbox_user, "Clerk Quarantine")) == ["<big-1@mail.kent.gov.uk>"]
    record = EmailState(settings.home / STATE_FILE).get("<big-1@mail.kent.gov.uk>")
    assert record.state == "quarantined" and "CLERK_EMAIL_MAX_MB" in record.reason
    assert assistant.run_once().total == 0


@pytest.mark.parametrize("status", ["NO", "BAD"])
def test_refused_fetch_skips_that_message_and_the_pass_goes_on(
    faulty_settings, answerer, store, faults, dovecot, mailbox_user, smtp_server, status, caplog
):
    caplog.set_level(logging.INFO, logger="bot")
    ids = [f"<fetch-{n}@mail.kent.gov.uk>" for n in (1, 2, 3)]
    for message_id in ids:  # UIDs 1, 2 and 3 in a new mailbox
        dovecot.append(mailbox_user, eml("plain_question.eml", message_id))
    faults.refuse("FETCH", 2, status)
    assistant = assistant_for(faulty_settings, answerer, store)

    first = assistant.run_once()
    again = assistant.run_once()  # the server still refuses it: skipped again, nothing else done

    assert (first.answered, first.skipped, first.total) == (2, 1, 3)
    assert (again.skipped, again.total) == (1, 1)
    assert sorted(m.message["In-Reply-To"] for m in smtp_server.messages) == [ids[0], ids[2]]
    assert PROCESSED not in flags_of(dovecot, mailbox_user)[ids[1]]
    skipped = [r.getMessage() for r in caplog.records if "skipped message uid 2" in r.getMessage()]
    assert len(skipped) == 2 and f"FETCH {status}" in skipped[0]
    assert personal_data_logged(caplog) == []

    faults.allow_all()  # the server recovers: the next pass answers it, once
    assert assistant.run_once().answered == 1
    assert sorted(m.message["In-Reply-To"] for m in smtp_server.messages) == sorted(ids)
    assert assistant.run_once().total == 0


@pytest.mark.parametrize("status", ["NO", "BAD"])
def test_refused_store_skips_that_message_and_never_replies_twice(
    faulty_settings, answerer, store, faults, dovecot, mailbox_user, smtp_server, status
):
    ids = [f"<store-{n}@mail.kent.gov.uk>" for n in (1, 2)]
    for message_id in ids:
        dovecot.append(mailbox_user, eml("plain_question.eml", message_id))
    faults.refuse("STORE", 1, status)
    assistant = assistant_for(faulty_settings, answerer, store)

    first = assistant.run_once()  # replied to uid 1, then could not flag it
    again = assistant.run_once()  # still cannot flag it: skipped, not answered again

    assert (first.skipped, first.answered, first.total) == (1, 1, 2)
    assert (again.skipped, again.total) == (1, 1)
    assert sorted(m.message["In-Reply-To"] for m in smtp_server.messages) == ids
    record = EmailState(faulty_settings.home / STATE_FILE).get(ids[0])
    assert record.state == "sent"

    faults.allow_all()
    assert assistant.run_once().already_done == 1  # now flagged, still not resent
    assert {PROCESSED, "$ClerkAnswered"} <= flags_of(dovecot, mailbox_user)[ids[0]]
    assert assistant.run_once().total == 0
    assert len(smtp_server.messages) == 2
