"""Reading emailed questions: the new text only, and no replies that could start a mail loop."""

from __future__ import annotations

from email.message import EmailMessage

import paths
import pytest
from mailservers import nested_question

from bot.channels.email.parse import (
    ParseError,
    automated_reason,
    html_to_text,
    is_allowed,
    message_key,
    new_text,
    parse_question,
    read_message,
    read_question,
    sender_of,
    strip_prefixes,
)

FIXTURES = paths.FIXTURES / "email"
OWN = "ask@clerk.example"


def load(name: str) -> EmailMessage:
    return read_message((FIXTURES / name).read_bytes())


def question(name: str):
    raw = (FIXTURES / name).read_bytes()
    return parse_question(read_message(raw), raw)


def test_plain_question_drops_greeting_sign_off_and_signature():
    q = question("plain_question.eml")
    assert q.message_id == "<plain-question-1@mail.kent.gov.uk>"
    assert q.sender == "jane.smith@kent.gov.uk"  # lower-cased for matching
    assert q.sender_name == "Cllr Jane Smith"
    assert q.question == (
        "Devolution white paper\n\n"
        "Did the County Council agree that Kent should join the Devolution Priority Programme?"
    )
    assert q.references == () and q.in_reply_to is None


def test_html_only_question_is_converted_and_attachment_ignored():
    q = question("html_only.eml")
    assert q.body == (
        "How are vulnerable children and adults at risk of exploitation being protected in "
        "Bradford?"
    )
    assert "color" not in q.question and "Councillor, Bradford" not in q.question
    assert "PDF" not in q.question


def test_reply_keeps_only_the_new_text_and_the_thread():
    q = question("reply_with_history.eml")
    assert q.question == (
        "Leisure centres\n\nThanks. When will the Tonbridge swimming pool reopen after its\n"
        "refurbishment?"
    )
    assert q.references == ("<plain-question-1@mail.kent.gov.uk>", "<clerk-reply-1@clerk.example>")
    assert q.in_reply_to == "<clerk-reply-1@clerk.example>"


def test_outlook_original_message_block_is_cut():
    q = question("outlook_reply.eml")
    assert "When will the next report on this come to Cabinet?" in q.body
    assert "Original Message" not in q.body and "partners" not in q.body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("New text\n\nOn Mon, 3 Mar 2025, Clerk <a@b.c> wrote:\n> old", "New text"),
        ("New\n________________________________\nFrom: Clerk\nSent: today\n\nold", "New"),
        ("New\nFrom: Clerk <a@b.c>\nSent: Monday\nTo: me\nold", "New"),
        ("Top\n> quoted\nmiddle answer\n> more quoted", "Top\nmiddle answer"),
        ("What is the plan?\n\nSent from my iPhone", "What is the plan?"),
        ("What is the plan?\n\nMany thanks,\nCllr A Person\nWard member", "What is the plan?"),
        # "Thanks" followed by a real question is not a signature
        ("Thanks\n\nWhat did Cabinet decide?", "Thanks\n\nWhat did Cabinet decide?"),
        ("Regards", "Regards"),  # a sign-off with nothing before it is the text itself
    ],
)  # fmt: skip
def test_new_text(text, expected):
    assert new_text(text) == expected


def test_html_quotes_and_outlook_separator_removed():
    html = (
        "<div>Which schools <i>close</i>?<br>Thanks</div>"
        '<div class="gmail_quote">On Monday Clerk wrote:<blockquote>old answer</blockquote></div>'
        "<hr><div>From: Clerk</div><div>old</div>"
    )
    assert html_to_text(html) == "Which schools close?\nThanks"


def test_subject_prefixes_removed_once_and_all():
    assert strip_prefixes("Re: RE: Fwd: AW: Budget") == "Budget"
    assert strip_prefixes("Re[2]: Budget") == "Budget"
    assert strip_prefixes("Reply times") == "Reply times"


def test_subject_alone_is_the_question_when_body_is_empty():
    msg = EmailMessage()
    msg["From"] = "a@kent.gov.uk"
    msg["Message-ID"] = "<x@y>"
    msg["Subject"] = "Fwd: How many libraries are closing?"
    msg.set_content("\n\n")
    assert parse_question(msg).question == "How many libraries are closing?"


def test_malformed_message_gives_a_reason():
    with pytest.raises(ParseError, match="From"):
        question("malformed.eml")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Message-ID": None}, "Message-ID"),
        ({"Subject": "", "_body": ""}, "no subject and no text"),
    ],
)
def test_unusable_messages(headers, reason):
    msg = EmailMessage()
    msg["From"] = "a@kent.gov.uk"
    if headers.get("Message-ID", "<x@y>"):
        msg["Message-ID"] = "<x@y>"
    msg["Subject"] = headers.get("Subject", "Budget")
    msg.set_content(headers.get("_body", "What is it?"))
    with pytest.raises(ParseError, match=reason):
        parse_question(msg)


def test_automatic_mail_is_recognised():
    assert "Auto-Submitted" in automated_reason(load("auto_reply.eml"), OWN)
    assert "Precedence" in automated_reason(load("mailing_list.eml"), OWN)
    assert automated_reason(load("plain_question.eml"), OWN) is None


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Auto-Submitted", "auto-generated"),
        ("Precedence", "bulk"),
        ("Precedence", "junk"),
        ("List-Id", "<x.lists.example>"),
        ("List-Unsubscribe", "<mailto:leave@example>"),
        ("X-Autoreply", "yes"),
        ("X-Autorespond", "yes"),
        ("From", "MAILER-DAEMON@mx.kent.gov.uk"),
        ("From", "postmaster@kent.gov.uk"),
        ("From", "no-reply@kent.gov.uk"),
        ("From", "noreply@kent.gov.uk"),
        ("From", "Clerk <ASK@clerk.example>"),
    ],
)
def test_loop_prevention(header, value):
    msg = EmailMessage()
    msg["From"] = value if header == "From" else "jane@kent.gov.uk"
    if header != "From":
        msg[header] = value
    assert automated_reason(msg, OWN)


def test_auto_submitted_no_is_a_person():
    msg = EmailMessage()
    msg["From"] = "jane@kent.gov.uk"
    msg["Auto-Submitted"] = "no"
    assert automated_reason(msg, OWN) is None


def test_allowed_senders_by_address_or_domain_any_case():
    allowed = ("Jane.Smith@kent.gov.uk", "@Bradford.gov.uk")
    assert is_allowed("jane.smith@KENT.gov.uk", allowed)
    assert is_allowed("omar@bradford.gov.uk", allowed)
    assert not is_allowed("omar@evil-bradford.gov.uk", allowed)
    assert not is_allowed("john@kent.gov.uk", allowed)
    assert not is_allowed("jane.smith@kent.gov.uk", ())


def test_message_key_without_message_id_is_a_digest():
    raw = b"From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n"
    assert message_key(raw).startswith("sha256:")
    plain = (FIXTURES / "plain_question.eml").read_bytes()
    assert message_key(plain) == "<plain-question-1@mail.kent.gov.uk>"
    # from the header alone (all Clerk reads of a message too large to fetch), the same key
    assert message_key(plain.split(b"\r\n\r\n")[0] + b"\r\n\r\n") == message_key(plain)


def with_header(name: str, header: str, value: str) -> bytes:
    """A fixture with one header's value replaced."""
    lines = (FIXTURES / name).read_bytes().split(b"\r\n")
    prefix = header.encode() + b": "
    return b"\r\n".join(prefix + value.encode() if x.startswith(prefix) else x for x in lines)


@pytest.mark.parametrize(
    "sender",
    [
        "smith@kent.gov.uk <a@evil.com>",
        "<smith@kent.gov.uk>a@evil.com",
        "<a@evil.com> smith@kent.gov.uk",
        "smith@kent.gov.uk <>",
        "Smith, Jane <smith@kent.gov.uk>",
        "smith@kent.gov.uk, a@evil.com",
        "=?utf-8?q?smith=40kent.gov.uk?=",
    ],
)
def test_from_header_with_defects_names_no_one(sender):
    raw = with_header("plain_question.eml", "From", sender)
    with pytest.raises(ParseError, match="From header"):
        read_question(raw, OWN)
    assert sender_of(read_message(raw)) == ("", "")


def test_two_from_headers_name_no_one():
    raw = b"From: a@evil.com\r\n" + (FIXTURES / "plain_question.eml").read_bytes()
    with pytest.raises(ParseError, match="several From headers"):
        read_question(raw, OWN)


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("J. Smith <J.Smith@kent.gov.uk>", ("J. Smith", "j.smith@kent.gov.uk")),  # obsolete, valid
        ('"smith@kent.gov.uk" <a@evil.com>', ("smith@kent.gov.uk", "a@evil.com")),
        ("a@evil.com (smith@kent.gov.uk)", ("", "a@evil.com")),
    ],
)
def test_from_header_read_as_the_address_it_names(sender, expected):
    raw = with_header("plain_question.eml", "From", sender)
    assert (read_question(raw, OWN).sender_name, read_question(raw, OWN).sender) == expected


@pytest.mark.parametrize("message_id", ["<[abc]@x>", "<@>", "<a@[b>", "<a b@c>"])
def test_malformed_message_id_is_a_parse_error(message_id):
    raw = with_header("plain_question.eml", "Message-ID", message_id)
    with pytest.raises(ParseError, match="Message-ID"):
        read_question(raw, OWN)


def test_mime_nested_too_deeply_is_a_parse_error():
    assert read_question(nested_question(5), OWN).body == "What was agreed?"
    for depth in (40, 1000):
        with pytest.raises(ParseError, match="nested"):
            read_question(nested_question(depth), OWN)


def test_authentication_failure_is_read_from_the_receiving_servers_header():
    failing = (
        "mx.kent.gov.uk; spf=pass smtp.mailfrom=kent.gov.uk; dmarc=fail header.from=kent.gov.uk"
    )
    raw = b"Authentication-Results: " + failing.encode() + b"\r\n"
    raw += (FIXTURES / "plain_question.eml").read_bytes()
    assert read_question(raw, OWN).auth_failure == "dmarc=fail"
    assert question("plain_question.eml").auth_failure is None
