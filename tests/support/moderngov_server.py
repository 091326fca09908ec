"""A loopback HTTP server that plays a ModernGov site from fixture files.

Serves the web service's HTTP GET binding (`/mgWebService.asmx/{Op}`) from
tests/fixtures/moderngov/*.xml (with `{{BASE}}` replaced by the server's own URL), documents
(`/mgConvert2PDF.aspx?ID=`, `/documents/s{id}/{name}.pdf`) from real PDFs in the repository's
corpus/ named in attachments.json, and simple meeting and agenda-item pages. `Quirks` switches
reproduce what real installs do wrong (and what a council does: withdraw a paper); `log` records
every request so tests can assert what was fetched. With `tls=(cert, key)` it serves HTTPS.
"""

from __future__ import annotations

import copy
import hashlib
import html
import json
import re
import ssl
import threading
import urllib.parse
import xml.etree.ElementTree as ET  # noqa: S405 - parses our own trusted fixture files
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paths

FIXTURES = paths.FIXTURES / "moderngov"
REPO_CORPUS = paths.CORPUS
LAST_MODIFIED = "Wed, 05 Mar 2025 09:00:00 GMT"

HTML_ERROR = b"""<!DOCTYPE html><html><head><title>Runtime Error</title></head>
<body><h1>Server Error in '/' Application.</h1><p>Runtime Error</p></body></html>"""
WAF_PAGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body></body></html>"
BILLION_LAUGHS = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<getmeetings><meetingscount>&lol4;</meetingscount></getmeetings>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE meeting [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<meeting><meetingid>&xxe;</meetingid></meeting>"""


@dataclass
class Quirks:
    """Switches for what real installs do. Keys: 'GetMeeting:9801', 'GetCommittees', 'doc:50011'."""

    tidy: bool = False  # True: no padded counts, no whitespace-only elements, titles escaped once
    hidden_meetings: set[int] = field(default_factory=lambda: {9902})  # not yet published
    ignore_range: bool = False  # return every meeting whatever the dates (seen with ISO dates)
    html_ok: set[str] = field(default_factory=set)  # 200 with an HTML error page instead of XML
    evil: dict[str, str] = field(default_factory=dict)  # key -> "billion" | "xxe"
    fail_500: set[str] = field(default_factory=set)  # always 500
    flaky_500: dict[str, int] = field(default_factory=dict)  # key -> 500s before it works
    slow: set[str] = field(default_factory=set)  # wait slow_seconds before answering
    slow_seconds: float = 1.0
    truncated: set[int] = field(default_factory=set)  # attachment ids served cut in half
    html_as_pdf: set[int] = field(default_factory=set)  # HTML error page as application/pdf
    validators: bool = True  # send ETag/Last-Modified and answer 304 to conditional GETs
    strip_links: set[int] = field(default_factory=set)  # meetings served without linkeddocuments
    # key -> Location of a redirect answered instead (`{{BASE}}` is this server's URL)
    redirects: dict[str, str] = field(default_factory=dict)
    redirect_status: int = 302
    redirect_once: bool = False  # True: each redirect is answered once, then the page itself
    pages: dict[str, bytes] = field(default_factory=dict)  # path -> HTML page served with 200
    withdrawn: set[int] = field(default_factory=set)  # attachment ids the council took down
    withdrawn_items: set[int] = field(default_factory=set)  # agenda item ids taken down


@dataclass
class Logged:
    path: str
    query: dict[str, str]
    user_agent: str
    conditional: bool
    status: int


class ModernGovServer:
    """Start with `with ModernGovServer() as site:`; `site.base_url`, `site.log`, `site.quirks`."""

    def __init__(
        self,
        fixtures: Path = FIXTURES,
        corpus: Path = REPO_CORPUS,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.fixtures, self.corpus, self.tls = fixtures, corpus, tls
        self.quirks = Quirks()
        self.log: list[Logged] = []
        self.attachments: dict[int, Path] = {
            int(k): corpus / v
            for k, v in json.loads((fixtures / "attachments.json").read_text()).items()
        }
        self.extra: dict[str, bytes] = {}  # fixture name -> XML added by a test or benchmark
        self._extra_meetings: dict[int, list[tuple[int, str]]] = {}  # committee -> (id, date)
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle

    def __enter__(self) -> ModernGovServer:
        handler = type("Handler", (_Handler,), {"site": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self.wake.set()
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    # -- what tests use

    def publish_meeting(self, meeting_id: int) -> None:
        self.quirks.hidden_meetings.discard(meeting_id)

    def requests_to(self, fragment: str) -> list[Logged]:
        return [r for r in self.log if fragment.casefold() in r.path.casefold()]

    def document_requests(self) -> list[Logged]:
        return [r for r in self.log if not r.path.casefold().startswith("/mgwebservice.asmx")]

    def add_meeting(
        self, committee_id: int, meeting_id: int, day: str, docs: list[tuple[int, str, Path]]
    ) -> None:
        """Add a meeting (dd/mm/yyyy) with one agenda item per (attachment id, title, PDF)."""
        items = []
        for n, (aid, title, path) in enumerate(docs, 1):
            self.attachments[aid] = path
            items.append(_item_xml(meeting_id * 100 + n, n, title, aid, day))
        self.extra[f"GetMeeting_{meeting_id}.xml"] = (
            f'<?xml version="1.0" encoding="utf-8"?>\n<meeting><meetingid>{meeting_id}</meetingid>'
            f"<meetingdate>{day}</meetingdate><meetingstatus>Confirmed</meetingstatus>"
            f"<agendaitems>{''.join(items)}</agendaitems></meeting>\n"
        ).encode()
        self._extra_meetings.setdefault(committee_id, []).append((meeting_id, day))

    # -- building responses

    def fixture(self, name: str) -> ET.Element | None:
        raw = self.extra.get(name)
        if raw is None:
            path = self.fixtures / name
            if not path.is_file():
                return None
            raw = path.read_bytes()
        raw = raw.replace(b"{{BASE}}", self.base_url.encode())
        return ET.fromstring(raw)  # noqa: S314 - trusted fixture

    def render(self, root: ET.Element) -> bytes:
        if self.quirks.tidy:
            _tidy(root)
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")

    def meetings_xml(self, committee_id: int, since: str, until: str) -> bytes | None:
        root = self.fixture(f"GetMeetings_{committee_id}.xml")
        if root is None:
            return None
        start, end = _dmy(since), _dmy(until)
        use_range = start is not None and end is not None and not self.quirks.ignore_range
        holder = root.find("committee/committeemeetings")
        for mid, day in self._extra_meetings.get(committee_id, []):
            row = ET.SubElement(holder, "meeting")
            for tag, text in (("meetingid", str(mid)), ("meetingdate", day)):
                ET.SubElement(row, tag).text = text
        for row in list(holder):
            mid, day = int(row.findtext("meetingid")), _dmy(row.findtext("meetingdate"))
            out_of_range = use_range and not (start <= day <= end)
            if mid in self.quirks.hidden_meetings or out_of_range:
                holder.remove(row)
        count = f" {len(holder)}"
        root.find("meetingscount").text = count
        root.find("committee/committeemeetingcount").text = count
        return self.render(root)

    def meeting_xml(self, meeting_id: int) -> bytes | None:
        root = self.fixture(f"GetMeeting_{meeting_id}.xml")
        if root is None or meeting_id in self.quirks.hidden_meetings:
            return None
        if meeting_id in self.quirks.strip_links:
            for item in root.iter("agendaitem"):
                for linked in item.findall("linkeddocuments"):
                    item.remove(linked)
        self._take_down(root)
        return self.render(root)

    def _take_down(self, root: ET.Element) -> None:
        """Leave out the agenda items and documents the council has withdrawn."""
        q = self.quirks
        for agenda in root.iter("agendaitems"):
            for item in list(agenda):
                if item.findtext("agendaitemid", "").strip() in {str(i) for i in q.withdrawn_items}:
                    agenda.remove(item)
        for linked in root.iter("linkeddocuments"):
            for doc in list(linked):
                if doc.findtext("attachmentid", "").strip() in {str(i) for i in q.withdrawn}:
                    linked.remove(doc)

    def find_doc(self, attachment_id: int) -> ET.Element | None:
        names = sorted(p.name for p in self.fixtures.glob("GetMeeting_*.xml")) + list(self.extra)
        for name in names:
            root = self.fixture(name)
            for doc in root.iter("linkeddoc") if root is not None else []:
                if doc.findtext("attachmentid", "").strip() == str(attachment_id):
                    return doc
        return None

    def attachment_xml(self, attachment_id: int) -> bytes | None:
        doc = self.find_doc(attachment_id)
        if doc is None or attachment_id in self.quirks.withdrawn:
            return None
        root = ET.Element("attachment")
        details = ET.SubElement(root, "attachmentdetails")
        details.extend(copy.deepcopy(list(doc)))
        return self.render(root)

    def meeting_page(self, meeting_id: int) -> bytes | None:
        root = self.fixture(f"GetMeeting_{meeting_id}.xml")
        if root is None:
            return None
        rows = []
        for item in root.iter("agendaitem"):
            title = html.escape(html.unescape(item.findtext("agendaitemtitle", "").strip()))
            number = html.escape(item.findtext("fulldisplaynumberformat", "").strip())
            links = "".join(
                f'<li><a href="documents/s{d.findtext("attachmentid").strip()}/'
                f'{html.escape(d.findtext("title", "").strip())}.pdf">'
                f"{html.escape(d.findtext('title', '').strip())}</a></li>"
                for d in item.iter("linkeddoc")
            )
            rows.append(
                f'<tr><td class="mgItemNumberCell">{number}</td><td>'
                f'<p class="mgAiTitleTxt">{title}</p>'
                f'<ul class="mgBulletList">{links}</ul></td></tr>'
            )
        return (
            '<!DOCTYPE html><html><body><table class="mgItemTable">'
            + "".join(rows)
            + "</table></body></html>"
        ).encode()

    def item_page(self, item_id: int) -> bytes | None:
        for path in sorted(self.fixtures.glob("GetMeeting_*.xml")):
            for item in self.fixture(path.name).iter("agendaitem"):
                if item.findtext("agendaitemid", "").strip() == str(item_id):
                    title = html.escape(html.unescape(item.findtext("agendaitemtitle", "").strip()))
                    text = item.findtext("agendatext", "").strip()
                    return (
                        f'<!DOCTYPE html><html><body><h2 class="mgSubTitleTxt">{title}</h2>'
                        f'<div class="mgWordPara">{text}</div></body></html>'
                    ).encode()
        return None


def _dmy(text: str | None):
    try:
        return datetime.strptime((text or "").strip(), "%d/%m/%Y").date()
    except ValueError:
        return None


def _tidy(root: ET.Element) -> None:
    """What a tidier install would send: the same content without the padding and double escape."""
    for el in root.iter():
        if el.text is not None and not el.text.strip() and len(el) == 0:
            el.text = None
        elif el.tag.endswith("count") and el.text:
            el.text = el.text.strip()
        elif el.tag in ("agendaitemtitle", "title", "committeetitle") and el.text:
            el.text = html.unescape(el.text)


def _item_xml(item_id: int, number: int, title: str, aid: int, day: str) -> str:
    esc = html.escape(title, quote=False)
    return (
        f"<agendaitem><agendaitemid>{item_id}</agendaitemid><agendaitemtitle>{esc}</agendaitemtitle>"
        f"<fulldisplaynumberformat>{number}.</fulldisplaynumberformat>"
        "<isrestricted>False</isrestricted><isdisplayallowed>True</isdisplayallowed>"
        f"<linkeddocuments><linkeddoc><attachmentid>{aid}</attachmentid><title>{esc}</title>"
        "<isurl>False</isurl><url>{{BASE}}/mgConvert2PDF.aspx?ID=" + str(aid) + "</url>"
        f"<isrestricted>False</isrestricted><publicationdate>{day}</publicationdate>"
        "</linkeddoc></linkeddocuments></agendaitem>"
    )


class _Handler(BaseHTTPRequestHandler):
    site: ModernGovServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = urllib.parse.urlsplit(self.path)
        query = {k.casefold(): v for k, v in urllib.parse.parse_qsl(parts.query)}
        try:
            status, ctype, body, extra = self._route(parts.path, query)
        except Exception as exc:  # a bug in the fixture server must show, not hang the client
            status, ctype, body, extra = 500, "text/plain", repr(exc).encode(), {}
        with self.site._lock:
            self.site.log.append(
                Logged(
                    parts.path,
                    query,
                    self.headers.get("User-Agent", ""),
                    bool(
                        self.headers.get("If-None-Match") or self.headers.get("If-Modified-Since")
                    ),
                    status,
                )
            )
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def _route(self, path: str, query: dict[str, str]):
        site, q = self.site, self.site.quirks
        ua = self.headers.get("User-Agent", "")
        if not ua or "python-requests" in ua.casefold():
            return 403, "text/html", WAF_PAGE, {}
        key = self._key(path, query)
        if key in q.slow:
            site.wake.wait(q.slow_seconds)
        if key in q.fail_500:
            return 500, "text/html", HTML_ERROR, {}
        if q.flaky_500.get(key, 0) > 0:
            q.flaky_500[key] -= 1
            return 500, "text/html", HTML_ERROR, {}
        if key in q.html_ok:
            return 200, "text/html; charset=utf-8", HTML_ERROR, {}
        if key in q.evil:
            body = BILLION_LAUGHS if q.evil[key] == "billion" else EXTERNAL_ENTITY
            return 200, "text/xml; charset=utf-8", body, {}
        if key in q.redirects:
            target = q.redirects.pop(key) if q.redirect_once else q.redirects[key]
            location = target.replace("{{BASE}}", site.base_url)
            return q.redirect_status, "text/html", b"", {"Location": location}
        if path in q.pages:
            return 200, "text/html; charset=utf-8", q.pages[path], {}
        lower = path.casefold()
        if lower.startswith("/mgwebservice.asmx/"):
            return self._service(path.split("/")[-1], query)
        if lower == "/mgconvert2pdf.aspx":
            return self._pdf(_int(query.get("id")))
        match = re.fullmatch(r"/documents/s(\d+)/[^/]+\.pdf", urllib.parse.unquote(path))
        if match:
            return self._pdf(int(match.group(1)))
        if lower == "/ielistdocuments.aspx":
            return self._page(site.meeting_page(_int(query.get("mid"))))
        if lower == "/mgai.aspx":
            return self._page(site.item_page(_int(query.get("id"))))
        return 404, "text/html", b"<html><body>Not found</body></html>", {}

    @staticmethod
    def _key(path: str, query: dict[str, str]) -> str:
        lower = path.casefold()
        if lower.startswith("/mgwebservice.asmx/"):
            op = path.split("/")[-1]
            ident = (
                query.get("lcommitteeid") or query.get("lmeetingid") or query.get("lattachmentid")
            )
            return f"{op}:{ident}" if ident else op
        if lower == "/mgconvert2pdf.aspx":
            return f"doc:{query.get('id')}"
        match = re.fullmatch(r"/documents/s(\d+)/.*", path)
        return f"doc:{match.group(1)}" if match else path

    def _service(self, op: str, query: dict[str, str]):
        site = self.site
        if op == "GetCommittees":
            body = site.render(site.fixture("GetCommittees.xml"))
        elif op == "GetMeetings":
            if not all(k in query for k in ("lcommitteeid", "sfromdate", "stodate")):
                return 500, "text/plain", b"Missing parameter.", {}
            body = site.meetings_xml(
                _int(query["lcommitteeid"]), query["sfromdate"], query["stodate"]
            )
        elif op == "GetMeeting":
            body = site.meeting_xml(_int(query.get("lmeetingid")))
        elif op == "GetAttachment":
            body = site.attachment_xml(_int(query.get("lattachmentid")))
        else:
            body = None
        if body is None:
            return 500, "text/plain", f"System.ArgumentException: {op}".encode(), {}
        return 200, "text/xml; charset=utf-8", body, {}

    def _pdf(self, attachment_id: int):
        q = self.site.quirks
        path = self.site.attachments.get(attachment_id)
        if path is None or attachment_id in q.withdrawn:
            return 302, "text/html", b"", {"Location": "/mgError.aspx"}
        if attachment_id in q.html_as_pdf:
            return 200, "application/pdf", HTML_ERROR, {}
        data = path.read_bytes()
        if attachment_id in q.truncated:
            data = data[: len(data) // 2]
        extra = {}
        if q.validators:
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            extra = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
            if self.headers.get("If-None-Match") == etag:
                return 304, "application/pdf", b"", extra
        return 200, "application/pdf", data, extra

    @staticmethod
    def _page(body: bytes | None):
        if body is None:
            return 302, "text/html", b"", {"Location": "/mgError.aspx"}
        return 200, "text/html; charset=utf-8", body, {}


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return -1
