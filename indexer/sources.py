"""Find the papers in corpus folders and give each its meeting's metadata.

A meeting folder holds documents and a meeting.json (council, committee, meeting_date, site, and
optionally `documents: {file name: {"url": ...}}` written by the ModernGov sync). A folder without
one takes the nearest meeting.json above it.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from indexer.errors import MetadataError
from indexer.types import Meeting, Paper

KINDS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".txt": "text"}
METADATA_FILE = "meeting.json"
# A corpus folder's own notes (attribution, licence) are not committee papers.
NOT_PAPERS = frozenset({"readme", "licence", "license", "attribution", "notice"})


@dataclass(frozen=True)
class Skipped:
    """A file that will not be indexed, and why."""

    source: str
    path: Path
    reason: str


def discover(root: Path) -> Iterator[Paper | Skipped]:
    """Every document under root, in a stable order, as a Paper or a Skipped with the reason."""
    root = root.resolve()
    meetings: dict[Path, Meeting | MetadataError] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if path.name == METADATA_FILE or any(part.startswith(".") for part in rel.parts):
            continue
        if path.stem.lower() in NOT_PAPERS:
            continue
        source = rel.as_posix()
        kind = KINDS.get(path.suffix.lower())
        if kind is None:
            yield Skipped(source, path, f"unknown file type {path.suffix or '(none)'!r}")
            continue
        meeting = _meeting_for(path.parent, root, meetings)
        if isinstance(meeting, MetadataError):
            yield Skipped(source, path, str(meeting))
            continue
        yield Paper(
            source=source,
            path=path,
            title=title_from_filename(path.name),
            meeting=meeting,
            kind=kind,
            url=_document_url(meeting, path.name),
        )


def _meeting_for(
    folder: Path, root: Path, cache: dict[Path, Meeting | MetadataError]
) -> Meeting | MetadataError:
    if folder in cache:
        return cache[folder]
    meta = folder / METADATA_FILE
    if meta.is_file():
        try:
            result: Meeting | MetadataError = read_meeting(meta)
        except MetadataError as exc:
            result = exc
    elif folder != root and root in folder.parents:
        result = _meeting_for(folder.parent, root, cache)
    else:
        result = _meeting_from_path(folder, root)
    cache[folder] = result
    return result


def read_meeting(path: Path) -> Meeting:
    """Parse one meeting.json, raising MetadataError with the reason when it is unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{path.name}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise MetadataError(f"{path.name}: expected a JSON object")
    missing = [k for k in ("council", "committee") if not isinstance(data.get(k), str)]
    if missing:
        raise MetadataError(f"{path.name}: missing {', '.join(missing)}")
    meeting_date = data.get("meeting_date")
    if meeting_date is not None:
        try:
            meeting_date = date.fromisoformat(str(meeting_date)).isoformat()
        except ValueError as exc:
            raise MetadataError(f"{path.name}: meeting_date {meeting_date!r} is not ISO") from exc
    documents = data.get("documents") or {}
    urls = (
        {
            name: info["url"]
            for name, info in documents.items()
            if isinstance(info, dict) and isinstance(info.get("url"), str)
        }
        if isinstance(documents, dict)
        else {}
    )
    site = data.get("site") if isinstance(data.get("site"), str) else None
    return Meeting(data["council"], data["committee"], meeting_date, site, urls)


def _meeting_from_path(folder: Path, root: Path) -> Meeting:
    """Without meeting.json, read council/committee/date from the folder names."""
    parts = folder.relative_to(root).parts if folder != root else ()
    council = parts[0].replace("_", " ").title() if parts else "Unknown council"
    committee = parts[1].replace("_", " ").replace("-", " ").title() if len(parts) > 1 else "Papers"
    meeting_date = None
    if len(parts) > 2 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", parts[2]):
        meeting_date = parts[2]
    return Meeting(council, committee, meeting_date)


def _document_url(meeting: Meeting, file_name: str) -> str | None:
    return meeting.document_urls.get(file_name)


def title_from_filename(name: str) -> str:
    """A readable title from a file name ('Budget%20Amendments_1.pdf' -> 'Budget Amendments')."""
    stem = urllib.parse.unquote(Path(name).stem)
    stem = re.sub(r"_\d+$", "", stem)  # download-copy suffix
    stem = re.sub(r"[_\s]+", " ", stem).strip(" -")
    return stem or name
