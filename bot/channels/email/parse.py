"""Read an incoming email: who asked, what they asked, and whether Clerk may answer (pure).

The question is the subject (without Re:/Fwd:) and the new text of the body: plain text when the
message has it, else its HTML as text; quoted earlier messages, signatures and attachments are
left out. The screening functions keep Clerk out of mail loops (RFC 3834) and away from senders
it does not serve.
"""

from __future__ import annotations

import email.policy
import hashlib
import re
from dataclasses import dataclass
from email.errors import ObsoleteHeaderDefect
from email.message import EmailMessage, Message
from email.parser import BytesParser

from bs4 import BeautifulSoup

from bot.channels.email.authresults import authentication_failure
from indexer.errors import ClerkError


class ParseError(ClerkError):
    """An email cannot be read as a question (no single clean From address, a missing or
    malformed Message-ID, no text, broken or too deeply nested MIME)."""


@dataclass(frozen=True)
class IncomingQuestion:
    """One councillor's emailed question and what a reply needs to join its thread."""

    message_id: str  # with angle brackets, as in the header
    sender: str  # bare address, lower case
    sender_name: str
    subject: str  # as sent
    question: str  # what is asked of the answerer
    body: str  # the new text of the body (may be empty)
    references: tuple[str, ...] = ()
    in_reply_to: str | None = None
    # why the receiving server's Authentication-Results say the sender is not who From names
    auth_failure: str | None = None


MAX_BODY_CHARS = 20_000  # a question longer than this is not a question; keep parsing bounded
# Real mail nests a few levels (a forward of a reply with attachments); the email package
# recurses once per level, so a message nested a thousand deep would exhaust the stack.
MAX_MIME_DEPTH = 30
_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|antw)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]+>")
# RFC 5322 msg-id (dots allowed anywhere, as real Message-IDs have them): what a reply may quote.
_ID_TEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+"
_VALID_MSGID = re.compile(rf"<{_ID_TEXT}@(?:{_ID_TEXT}|\[[!-Z^-~]*\])>")
_MESSAGE_ID_FIELD = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.M)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_AUTOMATED_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)([+\-_.].*)?@", re.IGNORECASE
)


def read_question(raw: bytes, own_address: str) -> IncomingQuestion | str:
    """The question in a raw message, or why it must not be answered (automatic mail: a reply
    could start a loop); ParseError when it cannot be read, whatever the email package raised."""
    try:
        msg = read_message(raw)
        reason = automated_reason(msg, own_address)
        return reason if reason else parse_question(msg, raw)
    except (ParseError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the email package's bugs on hostile input
        raise ParseError(f"unreadable message ({type(exc).__name__})") from exc


def read_message(raw: bytes) -> EmailMessage:
    """Parse raw bytes with the modern email policy; ParseError when MIME nests too deeply."""
    try:
        msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    except RecursionError as exc:
        raise ParseError(f"MIME parts nested more than {MAX_MIME_DEPTH} deep") from exc
    if mime_depth(msg) > MAX_MIME_DEPTH:
        raise ParseError(f"MIME parts nested more than {MAX_MIME_DEPTH} deep")
    return msg


def mime_depth(msg: Message) -> int:
    """How deeply the message's parts nest (1 for a single part), counted without recursion."""
    deepest = 0
    waiting: list[tuple[Message, int]] = [(msg, 1)]
    while waiting:
        part, depth = waiting.pop()
        deepest = max(deepest, depth)
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list) and depth <= MAX_MIME_DEPTH:
            waiting.extend((c, depth + 1) for c in payload if isinstance(c, Message))
    return deepest


def message_key(raw: bytes) -> str:
    """The id Clerk records a message under: its Message-ID, or a digest when it has none.

    Read from the raw header lines, not the email package, so that any message, even one it
    cannot parse (or only the start of its header, for one too large to fetch), has a key."""
    found = _HEADER_END.search(raw)
    field = _MESSAGE_ID_FIELD.search(raw[: found.start()] if found else raw)
    if field:
        message_id = _MSGID.search(field.group(1).decode("ascii", "replace"))
        if message_id:
            return message_id.group(0)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def sender_of(msg: EmailMessage) -> tuple[str, str]:
    """(display name, lower-case address) of the From header; ("", "") when it names no one."""
    try:
        return from_address(msg)
    except Exception:  # noqa: BLE001 - ParseError, or a header so broken the parser gives up
        return "", ""


def from_address(msg: EmailMessage) -> tuple[str, str]:
    """(display name, lower-case address) of the one mailbox in the one From header.

    ParseError when there is none, several, or the header has parse defects: a header such as
    `smith@kent.gov.uk <a@evil.com>` is not read as any address. Obsolete but valid syntax
    (`J. Smith <j@kent.gov.uk>`, which RFC 5322 says must be accepted) is not a defect."""
    headers = msg.get_all("From") or []
    if len(headers) != 1:
        raise ParseError("several From headers" if headers else "no From header")
    header = headers[0]
    defects = [d for d in header.defects if not isinstance(d, ObsoleteHeaderDefect)]
    if defects:
        raise ParseError(f"From header has parse defects ({defects[0]})")
    addresses = header.addresses
    if len(addresses) != 1 or not (addresses[0].username and addresses[0].domain):
        raise ParseError("From header does not name exactly one address")
    return addresses[0].display_name.strip(), addresses[0].addr_spec.strip().lower()


def automated_reason(msg: EmailMessage, own_address: str) -> str | None:
    """Why this message must not be answered to avoid a mail loop, or None when it may be."""
    auto = str(msg.get("Auto-Submitted", "") or "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = str(msg.get("Precedence", "") or "").strip().lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("List-Id", "List-Unsubscribe", "List-Post", "X-Autoreply", "X-Autorespond"):
        if msg.get(header) is not None:
            return f"{header} header"
    if str(msg.get("X-Auto-Response-Suppress", "")).strip().lower() == "all":
        return "X-Auto-Response-Suppress: All"
    _, sender = sender_of(msg)
    if sender and _AUTOMATED_SENDERS.match(sender):
        return "automated sender address"
    if sender and own_address and sender == own_address.strip().lower():
        return "sent by Clerk itself"
    if msg.get_content_type() == "multipart/report":
        return "delivery or read report"
    return None


def is_allowed(sender: str, allowed: tuple[str, ...]) -> bool:
    """Whether an address matches the allowed list (addresses or @domains, any case)."""
    sender = sender.strip().lower()
    domain = sender.rpartition("@")[2]
    for item in (a.lower() for a in allowed):
        if item.startswith("@") and domain == item[1:]:
            return True
        if item == sender:
            return True
    return False


def parse_question(msg: EmailMessage, raw: bytes = b"") -> IncomingQuestion:
    """The question in a message (raw: the bytes it was read from); ParseError says why when
    there is none."""
    if msg.defects and not msg.keys():
        raise ParseError("no headers could be read")
    name, sender = from_address(msg)
    message_id = message_key(raw or msg.as_bytes())
    if message_id.startswith("sha256:"):
        raise ParseError("no Message-ID header")
    if not _VALID_MSGID.fullmatch(message_id):
        raise ParseError("malformed Message-ID")
    try:
        subject = " ".join(str(msg.get("Subject", "") or "").split())
    except Exception as exc:  # noqa: BLE001 - undecodable encoded words
        raise ParseError(f"unreadable Subject: {exc}") from exc
    body = new_text(body_text(msg))
    topic = strip_prefixes(subject)
    question = f"{topic}\n\n{body}".strip() if body else topic
    if not question:
        raise ParseError("no subject and no text in the body")
    auth = [str(value) for value in msg.get_all("Authentication-Results") or []]
    return IncomingQuestion(
        message_id=message_id,
        sender=sender,
        sender_name=name,
        subject=subject,
        question=question,
        body=body,
        references=tuple(_MSGID.findall(str(msg.get("References", "") or ""))),
        in_reply_to=_first_id(msg.get("In-Reply-To")),
        auth_failure=authentication_failure(auth, sender.rpartition("@")[2]),
    )


def _first_id(value) -> str | None:
    found = _MSGID.search(str(value or ""))
    return found.group(0) if found else None


def strip_prefixes(subject: str) -> str:
    """The subject without any run of Re:/Fwd:/Fw:/AW: prefixes."""
    return _PREFIX.sub("", subject).strip()


def body_text(msg: EmailMessage) -> str:
    """The message's own text: text/plain preferred, else HTML as text; attachments ignored."""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
    except Exception as exc:  # noqa: BLE001 - malformed MIME structure
        raise ParseError(f"unreadable MIME structure: {exc}") from exc
    if part is None:
        if msg.get_content_maintype() in ("text", "multipart"):
            return ""
        raise ParseError(f"no text part (only {msg.get_content_type()})")
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError) as exc:
        raise ParseError(f"undecodable {part.get_content_type()} part: {exc}") from exc
    if not isinstance(content, str):
        raise ParseError(f"{part.get_content_type()} part is not text")
    content = content[: MAX_BODY_CHARS * 5]
    if part.get_content_subtype() == "html":
        return html_to_text(content)
    return content


# Elements that hold quoted history or signatures in common mail clients' HTML.
_HTML_QUOTES = (
    "blockquote",
    "div.gmail_quote",
    "div.gmail_signature",
    "div.moz-cite-prefix",
    "div.moz-signature",
    "div#appendonsend",
    "div#divRplyFwdMsg",
    "div#Signature",
    "div.yahoo_quoted",
)


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one block per line, with quoted history removed."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "head", "title"]):
        tag.decompose()
    for selector in _HTML_QUOTES:
        for tag in soup.select(selector):
            tag.decompose()
    # Outlook puts everything after its reply separator in siblings of an <hr>.
    for rule in soup.find_all("hr"):
        for sibling in list(rule.find_next_siblings()):
            sibling.decompose()
        rule.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    blocks = ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table")
    for tag in soup.find_all(blocks):
        tag.insert_before("\n")
        tag.insert_after("\n")
    text = soup.get_text()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


_WROTE = re.compile(r"^\s*(On|Le|Am|El)\b.{0,300}\b(wrote|a écrit|schrieb|escribió)\s*:\s*$", re.I)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}", re.I)
_OUTLOOK_FROM = re.compile(r"^\s*\*?From:\*?\s+\S")
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(Sent|Date|To|Subject):\*?\s", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_MOBILE = re.compile(r"^\s*(Sent from my \w+|Get Outlook for \w+)", re.I)
_SIGN_OFF = re.compile(
    r"^\s*(kind(est)? regards|best regards|warm(est)? regards|regards|best wishes|best|"
    r"many thanks|thanks( again)?|thank you|cheers|all the best|yours (sincerely|faithfully)|"
    r"sincerely)\s*[,.!]?\s*$",
    re.I,
)
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening))\b[\w .'-]{0,30}[,!]?\s*$", re.I
)
SIGNATURE_LINES = 6  # a sign-off is a signature only when at most this many short lines follow


def new_text(text: str) -> str:
    """The text a person just wrote: quoted history, '>' lines and signatures removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")[:MAX_BODY_CHARS].split("\n")
    lines = lines[: _history_start(lines)]
    lines = [line for line in lines if not line.lstrip().startswith(">")]
    lines = lines[: _signature_start(lines)]
    lines = _without_greeting(lines)
    cleaned = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", cleaned).strip()


def _history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history, or len(lines)."""
    for i, line in enumerate(lines):
        joined = f"{line} {lines[i + 1]}" if i + 1 < len(lines) else line
        if _WROTE.match(line) or (line.strip().startswith("On ") and _WROTE.match(joined)):
            return i
        if _ORIGINAL.match(line):
            return i
        if _UNDERSCORES.match(line) and any(_OUTLOOK_FROM.match(x) for x in lines[i + 1 : i + 3]):
            return i
        if _OUTLOOK_FROM.match(line) and any(_OUTLOOK_NEXT.match(x) for x in lines[i + 1 : i + 4]):
            return i
    return len(lines)


def _without_greeting(lines: list[str]) -> list[str]:
    """Drop an opening "Hello," or "Dear Clerk," line: it is not part of the question."""
    for i, line in enumerate(lines):
        if line.strip():
            return lines[i + 1 :] if _GREETING.match(line) else lines
    return lines


def _signature_start(lines: list[str]) -> int:
    """Index where the signature begins, or len(lines) when there is no clear signature."""
    for i, line in enumerate(lines):
        if line in ("-- ", "--") or _MOBILE.match(line):
            lines = lines[:i]
            break
    for i, line in enumerate(lines):
        if _SIGN_OFF.match(line) and any(x.strip() for x in lines[:i]):
            rest = [x.strip() for x in lines[i + 1 :] if x.strip()]
            short = all(len(x) <= 60 and not x.endswith("?") for x in rest)
            if len(rest) <= SIGNATURE_LINES and short:
                return i
    return len(lines)
