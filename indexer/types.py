"""Clerk's domain values: plain frozen dataclasses that flow one way through the pipeline.

Paper (a file with its meeting's metadata) -> Page (text of one PDF page, or a whole web page)
-> Chunk (a passage with its heading context) -> Hit (a chunk found for a question, with scores).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Meeting:
    """What a folder's meeting.json says about the papers beside it."""

    council: str
    committee: str
    meeting_date: str | None  # ISO date, or None when the paper is undated
    site: str | None = None
    # source file name -> published URL, when a ModernGov sync recorded it
    document_urls: dict[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Paper:
    """One document on disk, ready to read."""

    source: str  # path relative to the indexed folder, with forward slashes
    path: Path
    title: str
    meeting: Meeting
    kind: str  # "pdf", "html" or "text"
    url: str | None = None  # where the published paper can be opened


@dataclass(frozen=True)
class Page:
    """The text of one page; number is 1-based for PDFs and None for unpaged documents."""

    number: int | None
    text: str


@dataclass(frozen=True)
class Chunk:
    """A passage cut along the paper's structure, carrying the heading it sits under."""

    chunk_id: str
    page: int | None
    heading: str
    text: str

    @property
    def embed_text(self) -> str:
        """What the model reads: the heading context, then the passage."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def chunk_id(doc_id: str, page: int | None, text: str) -> str:
    """A chunk's id comes from its content, so re-indexing the same text gives the same id."""
    digest = hashlib.sha256(f"{doc_id}\x00{page}\x00{text}".encode()).hexdigest()
    return digest[:20]


@dataclass(frozen=True)
class Hit:
    """A passage found for a question, with the document it came from."""

    chunk_id: str
    doc_id: str
    title: str
    council: str
    committee: str
    meeting_date: str | None
    page: int | None
    source: str
    url: str | None
    heading: str
    text: str
    score: float  # fused rank score, higher is better
    dense: float = 0.0  # cosine similarity of question and passage
    lexical: float = 0.0  # BM25 score
    root: str = ""  # the indexed folder the source path is relative to


@dataclass(frozen=True)
class SearchFilters:
    """Restrict a search to a committee and a meeting date range (ISO dates, inclusive)."""

    committee: str | None = None
    since: str | None = None
    until: str | None = None

    def admits(self, committee: str, meeting_date: str | None) -> bool:
        if self.committee and self.committee.casefold() not in committee.casefold():
            return False
        if self.since and (meeting_date is None or meeting_date < self.since):
            return False
        return not (self.until and (meeting_date is None or meeting_date > self.until))

    @property
    def empty(self) -> bool:
        return not (self.committee or self.since or self.until)


@dataclass(frozen=True)
class IndexSummary:
    """What one `clerk index` run did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: int = 0
    chunks: int = 0
    failed: tuple[dict, ...] = ()
    published: bool = False

    def to_dict(self) -> dict:
        data = asdict(self)
        data["failed"] = list(self.failed)
        return data


FLAT, HNSW = "flat", "hnsw"


@dataclass(frozen=True)
class DenseSpec:
    """How a build's vectors are indexed and searched."""

    kind: str = FLAT
    m: int = 0  # HNSW: neighbours per node
    ef_construction: int = 0  # HNSW: candidates weighed while linking a new node
    ef_search: int = 0  # HNSW: candidates weighed per query (recall against speed)

    @classmethod
    def choose(cls, passages: int, flat_max: int, m: int, ef_construction: int, ef_search: int):
        """Exact while a scan is fast enough, HNSW above `flat_max` passages."""
        if passages <= flat_max:
            return cls()
        return cls(HNSW, m, ef_construction, ef_search)
