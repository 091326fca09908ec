"""Sync a ModernGov site into corpus folders: `<council>/<committee>/<date>/` with meeting.json.

Incremental and resumable: a state file in the data directory records, per meeting, each
attachment's file, sha256 and HTTP validators, so a second run downloads nothing and a run that
stopped half-way carries on. Every write is atomic (a hidden temp file, then os.replace), so the
indexer never sees half a file. Each failure is recorded in the summary and the rest continues.

Withdrawn papers: when a meeting the run fetched (so inside its window, and answered without
error) no longer lists a document or an agenda item's text that an earlier run filed, the file
is moved out of the corpus into `<CLERK_HOME>/withdrawn/` (same relative path) and a JSON line
recording it is appended to `withdrawn/withdrawn.jsonl`; the next index run, which mirrors the
corpus, drops it. Meetings outside the window, meetings whose fetch failed, cancelled meetings
and meetings missing from the list are left alone: only a meeting's own document list withdraws.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import unicodedata
import urllib.parse
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from pathlib import Path

from pypdf import PdfReader

from indexer.errors import SyncError
from indexer.files import write_atomic
from indexer.moderngov.client import (
    AgendaItem,
    LinkedDocument,
    MeetingDetail,
    MeetingSummary,
    ModernGovClient,
    normalise_site,
    sanitise_html,
)
from indexer.moderngov.settings import SyncSettings
from indexer.settings import IndexSettings

log = logging.getLogger(__name__)

STATE_FILE = "moderngov-sync.json"
WITHDRAWN_DIR = "withdrawn"  # under CLERK_HOME: files taken out of the corpus, and their records
WITHDRAWN_LOG = "withdrawn.jsonl"
STATE_VERSION = 1
FIRST_RUN_DAYS = 365  # how far back a first sync looks without --since
LOOKBACK_DAYS = 60  # later runs revisit recent meetings: minutes and late papers arrive after
AHEAD_DAYS = 60  # agendas are published before the meeting
NAME_BYTES = 150  # longest file or folder name written (most file systems allow 255)

# Councils whose folder and name are known from the site's host.
KNOWN_COUNCILS = {
    "democracy.kent.gov.uk": ("Kent County Council", "kent"),
    "bradford.moderngov.co.uk": ("City of Bradford Metropolitan District Council", "bradford"),
}
# Names Windows refuses, in case a corpus is copied there.
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class SyncFailure:
    """One thing that could not be synced, and why."""

    kind: str  # "site", "committee", "meeting", "document", "withdrawal"
    ref: str  # URL or id
    reason: str
    meeting: str = ""  # the meeting folder, when known


@dataclass(frozen=True)
class SyncSummary:
    """What one sync of one site did."""

    site: str
    council: str
    committees: int = 0
    meetings: int = 0
    new_meetings: int = 0
    downloaded: int = 0
    not_modified: int = 0  # conditional GET answered 304
    unchanged: int = 0  # known and unchanged: no request at all
    items_written: int = 0  # agenda-item .html files written or rewritten
    skipped: int = 0  # restricted, not displayable, external links
    withdrawn: int = 0  # files moved out of the corpus: no longer published with their meeting
    folders: tuple[str, ...] = ()  # meeting folders with new, changed or withdrawn files
    failures: tuple[SyncFailure, ...] = ()
    error: str | None = None  # the site could not be synced at all

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failures

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failures"] = [asdict(f) for f in self.failures]
        data["folders"] = list(self.folders)
        return data


@dataclass
class _Tally:
    committees: int = 0
    meetings: int = 0
    new_meetings: int = 0
    downloaded: int = 0
    not_modified: int = 0
    unchanged: int = 0
    items_written: int = 0
    skipped: int = 0
    withdrawn: int = 0
    folders: list[str] = field(default_factory=list)
    failures: list[SyncFailure] = field(default_factory=list)


# ---------------------------------------------------------------- names


def safe_name(text: str, fallback: str, max_bytes: int = NAME_BYTES) -> str:
    """One safe path component from an untrusted title: no separators, dots-only, controls."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = re.sub(r'[\\/:*?"<>|]+', " ", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    while len(text.encode("utf-8")) > max_bytes:
        text = text[:-1]
    text = text.strip(" .")
    if not text or text.split(".")[0].casefold() in _RESERVED:
        return fallback
    return text


def slug(text: str, fallback: str = "unnamed") -> str:
    """A folder name: lower case, hyphens, ASCII."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")
    return text[:80].strip("-") or fallback


def council_for(site: str, council: str | None = None) -> tuple[str, str]:
    """(council name, folder) from --council, the known sites, or the host name."""
    host = (urllib.parse.urlsplit(site).hostname or "").casefold()
    known = KNOWN_COUNCILS.get(host)
    if council:
        return council, known[1] if known else slug(council)
    if known:
        return known
    return host, slug(host.split(".")[0] if host else "", "council")


def _inside(root: Path, path: Path) -> Path:
    resolved_root, resolved = root.resolve(), path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise SyncError(f"refused to write outside the corpus: {path}")
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str | None:
    try:
        return sha256(path.read_bytes())
    except OSError:
        return None


def check_pdf_opens(data: bytes) -> int:
    """Pages in a downloaded PDF; SyncError when it is truncated or pypdf cannot open it."""
    if b"%%EOF" not in data[-2048:]:
        raise SyncError("truncated PDF (no %%EOF at the end)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pages = len(PdfReader(io.BytesIO(data), strict=False).pages)
    except Exception as exc:  # pypdf raises many kinds on broken files
        raise SyncError(f"PDF does not open ({type(exc).__name__}: {exc})") from exc
    if pages < 1:
        raise SyncError("PDF has no pages")
    return pages


# ---------------------------------------------------------------- state


class SyncState:
    """Per site and meeting: folder, documents (by attachment id) and items (by item id)."""

    def __init__(self, path: Path, data: dict) -> None:
        self.path, self.data = path, data

    @classmethod
    def load(cls, path: Path) -> SyncState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError("other version")
        except FileNotFoundError:
            data = {"version": STATE_VERSION, "sites": {}}
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("sync state %s unreadable (%s); starting afresh", path, exc)
            data = {"version": STATE_VERSION, "sites": {}}
        return cls(path, data)

    def site(self, base: str) -> dict:
        return self.data["sites"].setdefault(base, {"meetings": {}, "last_sync": None})

    def save(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode())


# ---------------------------------------------------------------- sync


def sync_moderngov(
    index: IndexSettings,
    settings: SyncSettings,
    site: str,
    since: date | None = None,
    committees: list[int] | None = None,
    dest: Path | None = None,
    council: str | None = None,
    opener: urllib.request.OpenerDirector | None = None,
    today: date | None = None,
) -> SyncSummary:
    """Fetch what is new or changed on one site into dest (default: the corpus folder)."""
    dest = Path(dest or index.corpus)
    council_name, council_folder = council_for(site, council)
    tally = _Tally()
    try:
        base = normalise_site(site)
        client = ModernGovClient.from_settings(settings, base, opener)
    except SyncError as exc:
        return _summary(site, council_name, tally, str(exc))
    state = SyncState.load(index.home / STATE_FILE)
    site_state = state.site(base)
    today = today or date.today()
    since = since or _default_since(site_state, today)
    until = today + timedelta(days=AHEAD_DAYS)
    try:
        targets = _committees(client, committees)
    except SyncError as exc:
        return _summary(base, council_name, tally, str(exc))
    run = _Run(
        client, state, site_state, dest, dest / council_folder, council_name, tally,
        index.home / WITHDRAWN_DIR,
    )  # fmt: skip
    for committee_id in targets:
        try:
            meetings = client.meetings(committee_id, since, until)
        except SyncError as exc:
            tally.failures.append(SyncFailure("committee", str(committee_id), str(exc)))
            continue
        tally.committees += 1
        for summary in meetings:
            run.meeting(summary)
    if not tally.failures:
        site_state["last_sync"] = today.isoformat()
    state.save()
    return _summary(base, council_name, tally)


def _default_since(site_state: dict, today: date) -> date:
    last = site_state.get("last_sync")
    if last:
        return date.fromisoformat(last) - timedelta(days=LOOKBACK_DAYS)
    return today - timedelta(days=FIRST_RUN_DAYS)


def _committees(client: ModernGovClient, wanted: list[int] | None) -> list[int]:
    if wanted:
        return list(dict.fromkeys(wanted))
    return [c.committee_id for c in client.committees() if not (c.deleted or c.expired)]


def _summary(site: str, council: str, t: _Tally, error: str | None = None) -> SyncSummary:
    return SyncSummary(
        site=site,
        council=council,
        committees=t.committees,
        meetings=t.meetings,
        new_meetings=t.new_meetings,
        downloaded=t.downloaded,
        not_modified=t.not_modified,
        unchanged=t.unchanged,
        items_written=t.items_written,
        skipped=t.skipped,
        withdrawn=t.withdrawn,
        folders=tuple(t.folders),
        failures=tuple(t.failures),
        error=error,
    )


@dataclass
class _Run:
    """One site's sync in progress."""

    client: ModernGovClient
    state: SyncState
    site_state: dict
    dest: Path
    council_dir: Path
    council: str
    tally: _Tally
    withdrawn_dir: Path

    def meeting(self, summary: MeetingSummary) -> None:
        if summary.cancelled:
            return
        try:
            detail = self.client.meeting(summary)
        except SyncError as exc:  # never withdraw on an error: the meeting is left as it was
            self.tally.failures.append(SyncFailure("meeting", str(summary.meeting_id), str(exc)))
            return
        self.tally.meetings += 1
        self.tally.skipped += detail.skipped_restricted
        key = str(summary.meeting_id)
        known = key in self.site_state["meetings"]
        if not known and not any(item.documents or _item_html(item) for item in detail.items):
            return  # nothing published yet; the next run looks again
        record = self.site_state["meetings"].setdefault(
            key, {"folder": self._new_folder(detail), "documents": {}, "items": {}}
        )
        folder = _inside(self.dest, self.dest / record["folder"])
        changed = self._write_meeting(detail, record, folder)
        if not known:
            self.tally.new_meetings += 1
        if changed:
            self.tally.folders.append(record["folder"])
        self.state.save()  # resumable: a later crash keeps this meeting's work

    def _new_folder(self, detail: MeetingDetail) -> str:
        committee = self.council_dir / slug(detail.committee_title, f"c{detail.committee_id}")
        taken = {m["folder"] for m in self.site_state["meetings"].values()}
        rel = (committee / detail.meeting_date.isoformat()).relative_to(self.dest).as_posix()
        if rel in taken:  # two meetings of one committee on one day
            rel = f"{rel}-{detail.meeting_id}"
        return rel

    def _write_meeting(self, detail: MeetingDetail, record: dict, folder: Path) -> bool:
        documents: dict[str, dict] = {}
        changed = False
        used = {d["name"] for d in record["documents"].values()}
        used |= {i["name"] for i in record["items"].values()}
        for item in detail.items:
            label = f"{item.number} {item.title}".strip()
            html_doc = _item_html(item)
            if html_doc:
                name = self._item_name(item, record, used)
                changed |= self._write_item(item, html_doc, record, folder / name)
                documents[name] = {"url": self.client.item_page(item), "agenda_item": label}
            for doc in item.documents:
                if doc.is_url:
                    self.tally.skipped += 1
                    continue
                name = self._doc_name(doc, record, used)
                got = self._document(doc, record, folder / name, folder)
                changed |= got == "downloaded"
                if (folder / name).is_file():
                    documents[name] = {
                        "url": self.client.published_url(doc),
                        "attachment_id": doc.attachment_id,
                        "agenda_item": label,
                    }
        changed |= self._withdraw_unlisted(detail, record, folder, documents)
        changed |= self._write_metadata(detail, folder, documents)
        return changed

    def _withdraw_unlisted(
        self, detail: MeetingDetail, record: dict, folder: Path, listed: dict
    ) -> bool:
        """Move out what an earlier run filed and this meeting no longer publishes."""
        published_docs = {str(d.attachment_id) for i in detail.items for d in i.documents}
        with_text = {str(i.item_id) for i in detail.items if _item_html(i)}
        gone = [
            ("documents", key, "attachment_id", "no longer published with the meeting")
            for key in record["documents"]
            if key not in published_docs
        ] + [
            ("items", key, "agenda_item_id", "agenda item text no longer published")
            for key in record["items"]
            if key not in with_text
        ]
        moved = 0
        for kind, key, id_field, why in gone:
            entry = record[kind][key]
            if entry["name"] not in listed:  # else the name now belongs to a published file
                try:
                    moved += self._withdraw(detail, folder, entry, {id_field: int(key)}, why)
                except OSError as exc:  # kept, and in the state: the next run tries again
                    rel = folder.relative_to(self.dest).as_posix()
                    reason = f"could not withdraw {entry['name']!r}: {exc.strerror or exc}"
                    self.tally.failures.append(SyncFailure("withdrawal", key, reason, rel))
                    continue
            del record[kind][key]
        if moved:
            log.info("meeting %s: %d files withdrawn", detail.meeting_id, moved)
        return moved > 0

    def _withdraw(
        self, detail: MeetingDetail, folder: Path, entry: dict, ident: dict, why: str
    ) -> int:
        """Record, then move one file out of the corpus; 0 when there was no file to move."""
        path = _inside(self.dest, folder / entry["name"])
        if not path.is_file():
            return 0
        rel = path.relative_to(self.dest)
        target = _withdrawn_target(self.withdrawn_dir / rel, path)
        record = {
            "site": self.client.base,
            "meeting": detail.meeting_id,
            "meeting_date": detail.meeting_date.isoformat(),
            "file": rel.as_posix(),
            "moved_to": target.relative_to(self.withdrawn_dir.parent).as_posix(),
            **ident,
            "sha256": _file_sha(path),
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "why": why,
        }
        # the record first: a crash before the move repeats the record, never loses one
        _append_line(self.withdrawn_dir / WITHDRAWN_LOG, json.dumps(record, ensure_ascii=False))
        _move(path, target)
        self.tally.withdrawn += 1
        return 1

    def _item_name(self, item: AgendaItem, record: dict, used: set[str]) -> str:
        entry = record["items"].get(str(item.item_id))
        if entry:
            return entry["name"]
        stem = safe_name(f"{item.number} {item.title}", f"item {item.item_id}")
        name = _unique(stem, ".html", str(item.item_id), used)
        record["items"][str(item.item_id)] = {"name": name, "sha256": ""}
        return name

    def _doc_name(self, doc: LinkedDocument, record: dict, used: set[str]) -> str:
        entry = record["documents"].get(str(doc.attachment_id))
        if entry:
            return entry["name"]
        title = re.sub(r"\.pdf$", "", doc.title, flags=re.IGNORECASE)
        stem = safe_name(title, f"document {doc.attachment_id}", NAME_BYTES - 20)
        name = _unique(stem, ".pdf", str(doc.attachment_id), used)
        record["documents"][str(doc.attachment_id)] = {"name": name, "sha256": ""}
        return name

    def _write_item(self, item: AgendaItem, html_doc: str, record: dict, path: Path) -> bool:
        data = html_doc.encode("utf-8")
        entry = record["items"][str(item.item_id)]
        if entry.get("sha256") == sha256(data) and _file_sha(path) == entry["sha256"]:
            return False
        write_atomic(_inside(self.dest, path), data)
        entry["sha256"] = sha256(data)
        self.tally.items_written += 1
        return True

    def _document(self, doc: LinkedDocument, record: dict, path: Path, folder: Path) -> str:
        entry = record["documents"][str(doc.attachment_id)]
        intact = bool(entry.get("sha256")) and _file_sha(path) == entry["sha256"]
        if intact and entry.get("publication_date") == doc.publication_date:
            self.tally.unchanged += 1
            return "unchanged"
        url = self.client.document_url(doc)
        try:
            fetched = self.client.download_pdf(
                url,
                etag=entry.get("etag", "") if intact else "",
                last_modified=entry.get("last_modified", "") if intact else "",
            )
            if fetched.not_modified:
                entry["publication_date"] = doc.publication_date
                self.tally.not_modified += 1
                return "not_modified"
            check_pdf_opens(fetched.body)
            write_atomic(_inside(self.dest, path), fetched.body)
        except (SyncError, OSError) as exc:
            rel = folder.relative_to(self.dest).as_posix()
            self.tally.failures.append(SyncFailure("document", url, str(exc), rel))
            return "failed"
        entry.update(
            sha256=sha256(fetched.body),
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            publication_date=doc.publication_date,
        )
        self.tally.downloaded += 1
        return "downloaded"

    def _write_metadata(self, detail: MeetingDetail, folder: Path, documents: dict) -> bool:
        meta = {
            "council": self.council,
            "committee": detail.committee_title,
            "meeting_date": detail.meeting_date.isoformat(),
            "site": self.client.base,
            "meeting_url": self.client.meeting_page(
                MeetingSummary(detail.meeting_id, detail.committee_id, "", detail.meeting_date)
            ),
            "meeting_id": detail.meeting_id,
            "committee_id": detail.committee_id,
            "documents": dict(sorted(documents.items())),
        }
        data = (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        path = _inside(self.dest, folder / "meeting.json")
        if _file_sha(path) == sha256(data):
            return False
        write_atomic(path, data)
        return True


def _withdrawn_target(target: Path, source: Path) -> Path:
    """Where a withdrawn file goes: its corpus path under withdrawn/, or beside it when another
    file with other bytes was withdrawn there before (the same bytes: the same place)."""
    if not target.exists() or _file_sha(target) == _file_sha(source):
        return target
    digest = (_file_sha(source) or "")[:12]
    return target.with_name(f"{target.stem} ({digest}){target.suffix}")


def _move(source: Path, target: Path) -> None:
    """Move a file, across file systems too, without a moment where neither copy is whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomic(target, source.read_bytes())
        source.unlink()


def _append_line(path: Path, line: str) -> None:
    """Append one line and make it durable before anything that depends on it happens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _unique(stem: str, suffix: str, ident: str, used: set[str]) -> str:
    name = stem + suffix
    if name.casefold() in {u.casefold() for u in used}:
        name = f"{stem} ({ident}){suffix}"
    used.add(name)
    return name


def _item_html(item: AgendaItem) -> str:
    """The agenda item as a small ModernGov-like page; empty when the item has no text."""
    parts = [
        (None, item.agenda_html),
        ("Minutes:", item.minutes_html),
        ("Decision:", item.decision_html),
    ]
    body = []
    for heading, fragment in parts:
        clean = sanitise_html(fragment).strip() if fragment else ""
        if not clean:
            continue
        if heading:
            body.append(f'<p class="mgSubItemTitleTxt">{heading}</p>')
        body.append(f'<div class="mgWordPara">{clean}</div>')
    if not body:
        return ""
    title = escape(f"{item.number} {item.title}".strip())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n"
        f'<h2 class="mgSubTitleTxt">{title}</h2>\n' + "\n".join(body) + "\n</body></html>\n"
    )
