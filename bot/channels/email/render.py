"""Clerk's replies as email messages (pure): threaded, plain text and HTML, everything escaped.

A reply reads like a good officer's email: the short answer first, then each cited passage as a
quote with its paper's title, committee, meeting date, page and a link that opens the page.
"""

from __future__ import annotations

import email.policy
import html
import textwrap
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from bot.channels.email.parse import IncomingQuestion, strip_prefixes
from bot.requests.model import Asker, InfoRequest, Logged
from bot.types import DISCUSSED, Answer, Citation

SENDER_NAME = "Clerk"
MAX_REFERENCES = 20  # keep the References header bounded on long threads
# Python folds long id lists badly ("References:" alone on a line); RFC 5322 allows 998 octets.
POLICY = email.policy.default.clone(max_line_length=998)
FOOTER = (
    "Clerk answers from published committee papers. Please check the quoted passages before "
    "relying on them."
)


@dataclass(frozen=True)
class Thread:
    """Where a reply goes and which conversation it joins."""

    to: str
    to_name: str
    message_id: str  # the message being replied to
    references: tuple[str, ...]  # that message's own References
    subject: str


def thread_of(incoming: IncomingQuestion) -> Thread:
    return Thread(
        incoming.sender,
        incoming.sender_name,
        incoming.message_id,
        incoming.references,
        incoming.subject,
    )


def thread_of_asker(asker: Asker) -> Thread:
    """The thread an email asker's question came in, from what was stored with the request."""
    reply_to = asker.reply_to or {}
    return Thread(
        asker.user_id,
        asker.display_name,
        reply_to.get("message_id", ""),
        tuple(reply_to.get("references", "").split()),
        reply_to.get("subject", ""),
    )


def asker_reply_to(incoming: IncomingQuestion) -> dict[str, str]:
    """What a follow-up request stores so the officer's answer can join this thread."""
    return {
        "message_id": incoming.message_id,
        "references": " ".join(incoming.references),
        "subject": incoming.subject,
    }


def reply_subject(subject: str) -> str:
    """`Re: <subject>` with exactly one Re: however many the thread has gathered."""
    return "Re: " + (strip_prefixes(subject) or "your question")


def envelope(thread: Thread, own_address: str) -> EmailMessage:
    """A reply's headers: From us, To the asker, threaded, marked as an automatic reply."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = formataddr((SENDER_NAME, own_address))
    msg["To"] = formataddr((thread.to_name, thread.to))
    msg["Subject"] = reply_subject(thread.subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=own_address.rpartition("@")[2] or "clerk.invalid")
    if thread.message_id:
        msg["In-Reply-To"] = thread.message_id
        refs = [*thread.references, thread.message_id][-MAX_REFERENCES:]
        msg["References"] = " ".join(refs)
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834: no one should auto-reply to this
    msg["X-Auto-Response-Suppress"] = "All"  # the same request, in Exchange's words
    return msg


def render_answer(
    incoming: IncomingQuestion, answer: Answer, own_address: str, logged: Logged | None = None
) -> EmailMessage:
    """The reply to a question: the answer with its citations, or an acknowledgement."""
    if answer.answered:
        text, body = _answered_parts(answer)
    else:
        text, body = _unanswered_parts(incoming.question, answer, logged)
    return _compose(envelope(thread_of(incoming), own_address), text, body)


def render_problem(incoming: IncomingQuestion, problem: str, own_address: str) -> EmailMessage:
    """A reply explaining that the message could not be asked as a question (too long...)."""
    text = (
        f"I could not look this up: {problem}\n\nPlease send the question again as a short email."
    )
    body = f"<p>I could not look this up: {_e(problem)}</p>"
    body += "<p>Please send the question again as a short email.</p>"
    return _compose(envelope(thread_of(incoming), own_address), text, body)


def render_officer_answer(request: InfoRequest, asker: Asker, own_address: str) -> EmailMessage:
    """An officer's answer to a follow-up request, as a reply in the asker's original thread."""
    who = request.answered_by or "an officer"
    when = _nice_date((request.answered_at or "")[:10]) or "today"
    intro = f"Officers have answered your question (request #{request.request_id})."
    text = "\n\n".join(
        [
            intro,
            "You asked:\n" + _indent(request.question),
            f"Answer from {who}, {when}:\n" + (request.answer or "").strip(),
        ]
    )
    body = (
        f"<p>{_e(intro)}</p><p>You asked:</p><blockquote>{_lines(request.question)}</blockquote>"
        f"<p>Answer from {_e(who)}, {_e(when)}:</p><p>{_lines(request.answer or '')}</p>"
    )
    return _compose(envelope(thread_of_asker(asker), own_address), text, body)


def _compose(msg: EmailMessage, text: str, body: str) -> EmailMessage:
    msg.set_content(f"{text}\n\n-- \n{FOOTER}\n")
    msg.add_alternative(
        "<!DOCTYPE html><html><body>"
        f'{body}<hr><p style="color:#666;font-size:small">{_e(FOOTER)}</p>'
        "</body></html>\n",
        subtype="html",
    )
    return msg


def _answered_parts(answer: Answer) -> tuple[str, str]:
    text = [answer.text.strip(), ""]
    body = [f"<p>{_lines(answer.text)}</p>"]
    if answer.citations:
        text.append("Passages from the papers:")
        body.append("<p><strong>Passages from the papers:</strong></p><ol>")
        for number, citation in enumerate(answer.citations, 1):
            text.append(_citation_text(number, citation))
            body.append(_citation_html(citation))
        body.append("</ol>")
    return "\n".join(text).rstrip(), "".join(body)


def _unanswered_parts(question: str, answer: Answer, logged: Logged | None) -> tuple[str, str]:
    said = (
        answer.text
        if answer.kind == DISCUSSED
        else "The committee papers I can search do not answer this question."
    )
    if logged is None:
        follow = "Officers have been told and will reply to you in this email thread."
    else:
        number = logged.request.request_id
        already = "" if logged.created else " (someone has already asked the same thing)"
        follow = (
            f"I have passed it to officers as request #{number}{already}. "
            "They will reply to you in this email thread."
        )
    text = [f"{said}\n\nYou asked:\n{_indent(question)}\n\n{follow}"]
    body = [
        f"<p>{_e(said)}</p><p>You asked:</p><blockquote>{_lines(question)}</blockquote>"
        f"<p>{_e(follow)}</p>"
    ]
    if answer.kind == DISCUSSED and answer.nearest:
        text.append("\nClosest passages (they do not answer it):")
        body.append("<p><strong>Closest passages</strong> (they do not answer it):</p><ol>")
        for number, citation in enumerate(answer.nearest[:2], 1):
            text.append(_citation_text(number, citation))
            body.append(_citation_html(citation))
        body.append("</ol>")
    return "\n".join(text).rstrip(), "".join(body)


def page_link(citation: Citation) -> str | None:
    """The paper's URL, opening at the cited page for PDFs; only http(s) links are given."""
    url = (citation.url or "").strip()
    if not url.lower().startswith(("https://", "http://")):
        return None
    is_pdf = citation.source.lower().endswith(".pdf") or url.lower().split("#")[0].endswith(".pdf")
    if is_pdf and citation.page and "#" not in url:
        return f"{url}#page={citation.page}"
    return url


def _where(citation: Citation) -> str:
    parts = [citation.committee, citation.council, _nice_date(citation.meeting_date)]
    if citation.page:
        parts.append(f"page {citation.page}")
    return ", ".join(p for p in parts if p)


def _citation_text(number: int, citation: Citation) -> str:
    link = page_link(citation) or citation.source
    return f"\n[{number}] {citation.title}\n    {_where(citation)}\n    {link}\n" + _indent(
        citation.quote, prefix="    | "
    )


def _citation_html(citation: Citation) -> str:
    link = page_link(citation)
    title = _e(citation.title)
    title = f'<a href="{_e(link)}">{title}</a>' if link else title
    return (
        f'<li><blockquote style="border-left:3px solid #ccc;margin:0 0 4px;padding-left:8px">'
        f"{_lines(citation.quote)}</blockquote>"
        f"<p>{title}<br><small>{_e(_where(citation))}</small></p></li>"
    )


def _nice_date(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        day = date.fromisoformat(iso[:10])
    except ValueError:
        return iso
    return f"{day.day} {day:%B %Y}"


def _indent(text: str, prefix: str = "    ") -> str:
    lines: list[str] = []
    for paragraph in text.strip().splitlines() or [""]:
        wrapped = textwrap.wrap(paragraph, 72) or [""]
        lines.extend(prefix + line for line in wrapped)
    return "\n".join(lines)


def _e(text: str) -> str:
    return html.escape(text or "", quote=True)


def _lines(text: str) -> str:
    """Escaped text with its line breaks kept."""
    return "<br>".join(_e(line) for line in (text or "").strip().splitlines())
