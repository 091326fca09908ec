"""A polite client for the ModernGov web service (`mgWebService.asmx`, HTTP GET binding).

Every response is untrusted: XML is parsed with defusedxml (no DTDs, so no external entities and no
entity bombs), a body that is not XML with the expected root is a failure whatever the status,
downloads are capped in size, and a PDF must say application/pdf and start with `%PDF-`.
Redirects are followed only inside the configured site (or to an allow-listed host), never from
https to http and never out of http(s); a refused redirect fetches nothing from its target.
Shapes and quirks follow shared/moderngov.md: dd/mm/yyyy dates, counts with a leading space,
whitespace-only empty elements, titles escaped twice, escaped Word HTML in agenda text.
"""

from __future__ import annotations

import html
import http.client
import re
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from html.parser import HTMLParser
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from indexer.errors import SyncError
from indexer.moderngov.settings import SyncSettings

SERVICE = "mgWebService.asmx"
MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Committee:
    """One committee from GetCommittees."""

    committee_id: int
    title: str
    deleted: bool = False
    expired: bool = False
    category: str = ""


@dataclass(frozen=True)
class MeetingSummary:
    """One meeting from GetMeetings, carrying the committee it belongs to."""

    meeting_id: int
    committee_id: int
    committee_title: str
    meeting_date: date
    status: str = ""
    time: str = ""

    @property
    def cancelled(self) -> bool:
        return "cancel" in self.status.casefold()


@dataclass(frozen=True)
class LinkedDocument:
    """A document attached to an agenda item (`linkeddoc`), keyed on its attachment id."""

    attachment_id: int
    title: str
    url: str
    is_url: bool = False
    restricted: bool = False
    publication_date: str = ""  # as published, dd/mm/yyyy
    item_number: int = 0


@dataclass(frozen=True)
class AgendaItem:
    """One public agenda item, keyed on its agendaitemid; HTML fields are fragments."""

    item_id: int
    number: str  # fulldisplaynumberformat: the number people see
    title: str
    agenda_html: str = ""
    minutes_html: str = ""
    decision_html: str = ""
    documents: tuple[LinkedDocument, ...] = ()


@dataclass(frozen=True)
class MeetingDetail:
    """GetMeeting, with the committee carried over from GetMeetings (GetMeeting has none)."""

    meeting_id: int
    committee_id: int
    committee_title: str
    meeting_date: date
    status: str
    items: tuple[AgendaItem, ...]
    skipped_restricted: int = 0  # items and documents left out as restricted or not displayable


@dataclass(frozen=True)
class Fetched:
    """One HTTP response that passed the transport checks."""

    url: str
    status: int  # 200, or 304 for a conditional GET that found nothing new
    body: bytes
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


# ---------------------------------------------------------------- text helpers


def clean(text: str | None) -> str:
    """Element text without the padding ModernGov puts in counts and empty elements."""
    return (text or "").strip()


def unescape_title(text: str | None) -> str:
    """Titles can be escaped twice (`Members&amp;#39;`): XML parsing undid one, undo the other."""
    return re.sub(r"\s+", " ", html.unescape(clean(text))).strip()


def unescape_fragment(text: str | None) -> str:
    """Agenda text after XML parsing is HTML; undo a second escape when no tag survived it."""
    fragment = clean(text)
    if "&lt;" in fragment and "<" not in fragment:
        fragment = html.unescape(fragment)
    return fragment


def parse_date(text: str | None) -> date | None:
    """A dd/mm/yyyy date (the only format ModernGov uses), or None."""
    value = clean(text)
    for fmt in ("%d/%m/%Y", "%d/%m/%Y %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    return None


def format_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _child(el: Element, name: str) -> str:
    found = el.find(name)
    return clean(found.text) if found is not None else ""


def _flag(el: Element, name: str, default: bool = False) -> bool:
    value = _child(el, name)
    return value.casefold() == "true" if value else default


def _int(el: Element, name: str) -> int | None:
    value = _child(el, name)
    try:
        return int(value)
    except ValueError:
        return None


# Tags kept when agenda HTML is re-emitted; everything else (script, style, iframe, forms,
# event attributes) is dropped so a written .html file is inert.
_KEEP = {
    "p", "div", "span", "br", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "table",
    "thead", "tbody", "tr", "td", "th", "b", "strong", "i", "em", "u", "sup", "sub", "a",
}  # fmt: skip
_DROP_CONTENT = {"script", "style", "iframe", "object", "embed", "template", "head", "title"}
_VOID = {"br"}


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.text: list[str] = []
        self._dropping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _DROP_CONTENT:
            self._dropping += 1
        elif not self._dropping and tag in _KEEP:
            self.out.append(f"<{tag}>")
        if tag in {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4"}:
            self.text.append("\n")

    def handle_endtag(self, tag):
        if tag in _DROP_CONTENT:
            self._dropping = max(0, self._dropping - 1)
        elif not self._dropping and tag in _KEEP and tag not in _VOID:
            self.out.append(f"</{tag}>")

    def handle_data(self, data):
        if not self._dropping:
            self.out.append(html.escape(data, quote=False))
            self.text.append(data)


def sanitise_html(fragment: str) -> str:
    """Re-emit an untrusted HTML fragment with only harmless tags and no attributes."""
    parser = _Sanitiser()
    parser.feed(fragment)
    parser.close()
    return "".join(parser.out)


def html_text(fragment: str) -> str:
    """The readable text of an HTML fragment, entities (`&nbsp;`, `&rsquo;`) resolved."""
    parser = _Sanitiser()
    parser.feed(fragment)
    parser.close()
    text = "".join(parser.text).replace("\xa0", " ")
    lines = (re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------- parsing (pure)


def _excerpt(raw: bytes, limit: int) -> str:
    """A short, single-line, printable excerpt of a body from the site, for a failure reason."""
    text = raw[: limit * 4].decode("utf-8", "replace")
    text = re.sub(r"\s+", " ", "".join(ch if ch.isprintable() else " " for ch in text)).strip()
    return text[:limit]


def parse_xml(body: bytes, root: str) -> Element:
    """Parse a web-service body safely; anything but XML with the expected root is a SyncError."""
    head = body[:200].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        title = re.search(rb"<title>(.*?)</title>", body[:2000], re.IGNORECASE | re.DOTALL)
        shown = _excerpt(title.group(1), 80) if title else "untitled"
        raise SyncError(f"not XML: an HTML page ({shown!r})")
    try:
        element = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise SyncError(f"refused unsafe XML ({type(exc).__name__})") from exc
    except ParseError as exc:
        start = _excerpt(body, 60)
        raise SyncError(f"not XML ({exc}); body starts {start!r}") from exc
    if element.tag != root:
        raise SyncError(f"expected <{root}>, got <{element.tag}>")
    return element


def parse_committees(root: Element) -> list[Committee]:
    out = []
    for el in root.iter("committee"):
        cid = _int(el, "committeeid")
        if cid is None:
            continue
        out.append(
            Committee(
                committee_id=cid,
                title=unescape_title(_child(el, "committeetitle")),
                deleted=_flag(el, "committeedeleted"),
                expired=_flag(el, "committeeexpired"),
                category=unescape_title(_child(el, "committeecategory")),
            )
        )
    return out


def parse_meetings(root: Element) -> list[MeetingSummary]:
    """Meetings of every committee in a GetMeetings body, each carrying its committee."""
    out = []
    for committee in root.findall("committee"):
        cid = _int(committee, "committeeid")
        title = unescape_title(_child(committee, "committeetitle"))
        for el in committee.iter("meeting"):
            mid, day = _int(el, "meetingid"), parse_date(_child(el, "meetingdate"))
            if mid is None or day is None or cid is None:
                continue
            out.append(
                MeetingSummary(
                    mid, cid, title, day, _child(el, "meetingstatus"), _child(el, "meetingtime")
                )
            )
    return out


def parse_document(el: Element) -> LinkedDocument | None:
    aid = _int(el, "attachmentid")
    if aid is None:
        return None
    return LinkedDocument(
        attachment_id=aid,
        title=unescape_title(_child(el, "title")),
        url=_child(el, "url"),
        is_url=_flag(el, "isurl"),
        restricted=_flag(el, "isrestricted"),
        publication_date=_child(el, "publicationdate"),
        item_number=_int(el, "itemnum") or 0,
    )


def _public(el: Element) -> bool:
    return not _flag(el, "isrestricted") and _flag(el, "isdisplayallowed", default=True)


def parse_meeting(root: Element, summary: MeetingSummary) -> MeetingDetail:
    """A GetMeeting body as public agenda items; restricted items and documents are left out."""
    items, skipped = [], 0
    agenda = root.find("agendaitems")
    for el in agenda.findall("agendaitem") if agenda is not None else []:
        iid = _int(el, "agendaitemid")
        if iid is None:
            continue
        if not _public(el):
            skipped += 1
            continue
        docs = []
        linked = el.find("linkeddocuments")
        for doc_el in linked.findall("linkeddoc") if linked is not None else []:
            doc = parse_document(doc_el)
            if doc is None or doc.restricted:
                skipped += doc is not None
                continue
            docs.append(doc)
        items.append(
            AgendaItem(
                item_id=iid,
                number=_child(el, "fulldisplaynumberformat") or _child(el, "agendaitemnumber"),
                title=unescape_title(_child(el, "agendaitemtitle")),
                agenda_html=unescape_fragment(_child(el, "agendatext")),
                minutes_html=unescape_fragment(_child(el, "minutesnonemptyhtmlbody")),
                decision_html=unescape_fragment(_child(el, "decisionnonemptyhtmlbody")),
                documents=tuple(docs),
            )
        )
    return MeetingDetail(
        meeting_id=summary.meeting_id,
        committee_id=summary.committee_id,
        committee_title=summary.committee_title,
        meeting_date=parse_date(_child(root, "meetingdate")) or summary.meeting_date,
        status=_child(root, "meetingstatus") or summary.status,
        items=tuple(items),
        skipped_restricted=skipped,
    )


def check_pdf(fetched: Fetched) -> None:
    """A PDF must be labelled application/pdf AND start with %PDF- (error pages are neither)."""
    kind = fetched.content_type.split(";")[0].strip().casefold()
    if kind != "application/pdf":
        raise SyncError(f"expected application/pdf, got {kind or 'no content type'}")
    if fetched.body.lstrip()[:5] != b"%PDF-":
        head = _excerpt(fetched.body, 40)
        raise SyncError(f"served as a PDF but is not one (starts {head!r})")


# ---------------------------------------------------------------- transport


def normalise_site(site: str) -> str:
    """The install root without a trailing slash or a trailing mgWebService.asmx."""
    site = site.strip().rstrip("/")
    if site.casefold().endswith("/" + SERVICE.casefold()):
        site = site[: -len(SERVICE) - 1]
    parts = urllib.parse.urlsplit(site)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SyncError(f"not a ModernGov site URL: {site!r}")
    return site


def same_site(url: str, base: str) -> bool:
    """Does url point into the install? Hosts differ in case and scheme, so compare loosely."""
    a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base)
    if a.scheme not in ("http", "https") or not a.hostname or not b.hostname:
        return False
    return a.hostname.casefold() == b.hostname.casefold()


def redirect_refusal(
    source: str, location: str, base: str, allowed_hosts: tuple[str, ...] = ()
) -> str | None:
    """Why a redirect from source to location must not be followed, or None to follow it.

    Followed: the site's own scheme, host and port (host case aside), an upgrade from http to
    https on the site's host, or a host named in allowed_hosts. Never from https to http, never
    to anything but http(s), never with credentials in the address. The reason names at most the
    target's scheme and host (for the allow-list), never its path or query."""
    target = urllib.parse.urlsplit(urllib.parse.urljoin(source, location))
    home = urllib.parse.urlsplit(base)
    scheme = target.scheme.casefold()
    if scheme not in ("http", "https"):
        return f"to a {_shown_scheme(scheme)}: address, not http(s)"
    if scheme == "http" and "https" in (urllib.parse.urlsplit(source).scheme, home.scheme):
        return "from https to http"
    if target.username is not None or target.password is not None:
        return "to an address with credentials in it"
    host, port = (target.hostname or "").casefold(), _port(target)
    allowed = {h.strip().casefold() for h in allowed_hosts}
    if host in allowed or f"{host}:{port}" in allowed:
        return None
    if host == (home.hostname or "").casefold() and (scheme != home.scheme or port == _port(home)):
        return None
    return f"to another site ({_shown_host(host, target)}); allow it with CLERK_SYNC_ALLOWED_HOSTS"


def _port(parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme.casefold())
    except ValueError:  # a port that is not a number
        return None


def _shown_scheme(scheme: str) -> str:
    return scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else "non-web"


def _shown_host(host: str, parts: urllib.parse.SplitResult) -> str:
    """host[:port] when it looks like a host name or address; nothing else of the target."""
    if not re.fullmatch(r"[a-z0-9._-]{1,253}|[0-9a-f:.]{2,45}", host):
        return "an unreadable host name"
    shown = f"[{host}]" if ":" in host else host
    try:
        return f"{shown}:{parts.port}" if parts.port else shown
    except ValueError:
        return shown


class ModernGovClient:
    """Talks to one ModernGov install: rate-limited, retried, size-capped, named."""

    def __init__(
        self,
        base_url: str,
        *,
        user_agent: str,
        timeout: float = 60.0,
        retries: int = 3,
        delay: float = 1.0,
        max_bytes: int = 100 * 1024 * 1024,
        allowed_hosts: tuple[str, ...] = (),
        opener: urllib.request.OpenerDirector | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not user_agent.strip():
            raise SyncError("a User-Agent naming Clerk is required (CLERK_USER_AGENT)")
        self.base = normalise_site(base_url)
        self.user_agent = user_agent
        self.timeout, self.retries, self.delay = timeout, max(1, retries), delay
        self.max_bytes = max_bytes
        self.allowed_hosts = allowed_hosts
        # redirects are followed here, one hop at a time, so each hop is checked before it is asked
        self._opener = opener or urllib.request.build_opener()
        self._opener.add_handler(_NoRedirects())
        self._sleep, self._clock = sleep, clock
        self._last: float | None = None

    @classmethod
    def from_settings(
        cls, settings: SyncSettings, site: str, opener: urllib.request.OpenerDirector | None = None
    ) -> ModernGovClient:
        return cls(
            site,
            user_agent=settings.user_agent,
            timeout=settings.timeout,
            retries=settings.retries,
            delay=settings.delay,
            max_bytes=int(settings.max_mb * 1024 * 1024),
            allowed_hosts=settings.allowed_hosts,
            opener=opener,
        )

    # -- web service operations

    def service_url(self, op: str, **params) -> str:
        query = urllib.parse.urlencode(params)
        return f"{self.base}/{SERVICE}/{op}" + (f"?{query}" if query else "")

    def call(self, op: str, root: str, **params) -> Element:
        """GET one operation and return its root element, checked."""
        url = self.service_url(op, **params)
        fetched = self.get(url)
        try:
            return parse_xml(fetched.body, root)
        except SyncError as exc:
            raise SyncError(f"{op}: {exc}") from exc

    def committees(self) -> list[Committee]:
        return parse_committees(self.call("GetCommittees", "committees"))

    def meetings(self, committee_id: int, since: date, until: date) -> list[MeetingSummary]:
        """Meetings in [since, until]; filtered here too, as some installs ignore the range."""
        root = self.call(
            "GetMeetings",
            "getmeetings",
            lCommitteeId=committee_id,
            sFromDate=format_date(since),
            sToDate=format_date(until),
        )
        return [
            m
            for m in parse_meetings(root)
            if since <= m.meeting_date <= until and m.committee_id == committee_id
        ]

    def meeting(self, summary: MeetingSummary) -> MeetingDetail:
        root = self.call("GetMeeting", "meeting", lMeetingId=summary.meeting_id)
        return parse_meeting(root, summary)

    def attachment(self, attachment_id: int) -> LinkedDocument:
        root = self.call("GetAttachment", "attachment", lAttachmentId=attachment_id)
        details = root.find("attachmentdetails")
        doc = parse_document(details) if details is not None else None
        if doc is None:
            raise SyncError(f"GetAttachment: no details for attachment {attachment_id}")
        return doc

    def document_url(self, doc: LinkedDocument) -> str:
        """Where to fetch a document: always inside the install, built from its integer id."""
        return f"{self.base}/mgConvert2PDF.aspx?ID={doc.attachment_id}"

    def published_url(self, doc: LinkedDocument) -> str:
        """The link citations show: the published <url> when it points into the install."""
        return doc.url if same_site(doc.url, self.base) else self.document_url(doc)

    def meeting_page(self, summary: MeetingSummary) -> str:
        return (
            f"{self.base}/ieListDocuments.aspx?CId={summary.committee_id}&MId={summary.meeting_id}"
        )

    def item_page(self, item: AgendaItem) -> str:
        return f"{self.base}/mgAi.aspx?ID={item.item_id}"

    def download_pdf(self, url: str, etag: str = "", last_modified: str = "") -> Fetched:
        """GET a document (conditionally when validators are known) and check it is a PDF."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        fetched = self.get(url, headers=headers)
        if not fetched.not_modified:
            check_pdf(fetched)
        return fetched

    # -- HTTP

    def get(self, url: str, headers: dict[str, str] | None = None) -> Fetched:
        """GET with the polite pause, retries with backoff on timeouts and 5xx, and a size cap."""
        last_error = "no attempt"
        for attempt in range(self.retries):
            if attempt:
                self._sleep(max(self.delay, 0.0) * 2**attempt)
            try:
                return self._follow(url, headers or {})
            except _Retryable as exc:
                last_error = str(exc)
        raise SyncError(f"{url}: {last_error} (after {self.retries} tries)")

    def _follow(self, url: str, headers: dict[str, str]) -> Fetched:
        """GET url, following only the redirects `redirect_refusal` allows, up to MAX_REDIRECTS."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            fetched = self._get_once(current, headers)
            if not isinstance(fetched, _Redirect):
                return fetched if current == url else replace(fetched, url=url)
            refused = redirect_refusal(current, fetched.location, self.base, self.allowed_hosts)
            if refused:
                raise SyncError(f"{url}: redirect refused: {refused}")
            current = _quote_url(urllib.parse.urljoin(current, fetched.location))
        raise SyncError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _pause(self) -> None:
        if self._last is not None and self.delay > 0:
            wait = self.delay - (self._clock() - self._last)
            if wait > 0:
                self._sleep(wait)
        self._last = self._clock()

    def _get_once(self, url: str, headers: dict[str, str]) -> Fetched | _Redirect:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise SyncError(f"refused to fetch {url!r}: not http(s)")
        self._pause()
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, headers={"User-Agent": self.user_agent, **headers}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return self._read(url, response, response.status)
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code == 304:
                    return Fetched(url, 304, b"", etag=exc.headers.get("ETag", ""))
                if exc.code in REDIRECT_CODES:
                    location = (exc.headers.get("Location") or "").strip()
                    if not location:
                        raise SyncError(
                            f"{url}: HTTP {exc.code} redirect without a Location"
                        ) from None
                    return _Redirect(location)
                if exc.code >= 500:
                    raise _Retryable(f"HTTP {exc.code} {exc.reason}") from exc
                hint = (
                    " (the site refused Clerk; check CLERK_USER_AGENT)" if exc.code == 403 else ""
                )
                raise SyncError(f"{url}: HTTP {exc.code} {exc.reason}{hint}") from exc
        except TimeoutError as exc:
            raise _Retryable(f"timed out after {self.timeout:g} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise _Retryable(f"timed out after {self.timeout:g} s") from exc
            raise _Retryable(f"connection failed ({exc.reason})") from exc
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection broke ({type(exc).__name__}: {exc})") from exc

    def _read(self, url: str, response, status: int) -> Fetched:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise SyncError(f"{url}: {int(declared)} bytes is over the {self.max_bytes} cap")
        chunks, size = [], 0
        while chunk := response.read(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise SyncError(f"{url}: more than the {self.max_bytes} byte cap")
            chunks.append(chunk)
        body = b"".join(chunks)
        if declared and declared.isdigit() and int(declared) != len(body):
            raise _Retryable(f"truncated: {len(body)} of {declared} bytes")
        return Fetched(
            url=url,
            status=status,
            body=body,
            content_type=response.headers.get("Content-Type", ""),
            etag=response.headers.get("ETag", ""),
            last_modified=response.headers.get("Last-Modified", ""),
        )


class _Retryable(Exception):
    """A failure worth another try: timeout, 5xx, dropped connection."""


@dataclass(frozen=True)
class _Redirect:
    """A 3xx answer: where it points, not yet checked or followed."""

    location: str


class _NoRedirects(urllib.request.BaseHandler):
    """Hand every 3xx back to the client as an HTTPError, ahead of urllib's own redirect handler
    (which follows any host, https to http, and ftp)."""

    handler_order = 100  # before HTTPRedirectHandler (500), even in an opener passed in

    def http_error_302(self, req, fp, code, msg, headers):
        raise urllib.error.HTTPError(req.full_url, code, msg, headers, fp)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _quote_url(url: str) -> str:
    """Percent-encode what a Location may carry unencoded (spaces), as urllib does."""
    return urllib.parse.quote(url, safe=string.punctuation)
