"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates fused by reciprocal rank.

Dense search finds paraphrases; BM25 finds names, figures and decision numbers ("24/00109",
"LEVI") that embeddings blur. The index is reloaded when a new build is published, so a running
bot answers from last night's papers without a restart.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer import dense
from indexer.embed import Embedder
from indexer.errors import IndexMissingError
from indexer.store import ChunkRow, Params, Served, build_dir_of, open_served
from indexer.types import Hit, SearchFilters

log = logging.getLogger(__name__)

CANDIDATES = 50  # per retriever, before fusion
NEAR_DUPLICATE = 0.95  # cosine above which two passages say the same thing
SAME_DOCUMENT_DISCOUNT = 0.9
RRF_K = 60  # the usual reciprocal-rank constant: damps the gap between rank 1 and rank 2


@dataclass
class LoadedIndex:
    """One published build, opened for serving: vectors, FAISS storage and BM25 postings are
    memory-mapped and passages are read from SQLite when found, so memory stays well under the
    size of the build."""

    served: Served
    doc_number: dict[str, int]  # doc_id -> its number in passage_docs
    meetings: list[tuple[str, str | None]]  # distinct (committee, meeting date): what filters see
    passage_meetings: np.ndarray  # each row's number in meetings
    _document_terms: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, index_link: Path, expected: Params | None = None) -> LoadedIndex:
        # resolve the link once: everything below reads this one build, even if a newer one
        # is published meanwhile (never new passages with old BM25 rows)
        build = build_dir_of(index_link)
        if build is None:
            raise IndexMissingError(f"no index published in {index_link.parent}; run `clerk index`")
        served = open_served(build.resolve(), expected)
        numbers: dict[tuple[str, str | None], int] = {}
        meeting_of_doc = np.array(
            [
                numbers.setdefault((d.committee, d.meeting_date), len(numbers))
                for d in (served.documents[doc_id] for doc_id in served.doc_ids)
            ],
            dtype=np.int32,
        )
        return cls(
            served,
            {doc_id: i for i, doc_id in enumerate(served.doc_ids)},
            list(numbers),
            meeting_of_doc[served.passage_docs] if len(meeting_of_doc) else served.passage_docs,
        )

    @property
    def build(self) -> Path:
        return self.served.build

    @property
    def bm25(self):
        return self.served.bm25

    @property
    def size(self) -> int:
        """Passages in the build."""
        return len(self.served.passage_docs)

    def doc_of(self, source: str) -> str | None:
        """The document a file was indexed as (itself or the copy it duplicates)."""
        return next((f.doc_id for f in self.served.files if f.source == source), None)

    def document_terms(self, doc_id: str) -> frozenset[str]:
        """Every token of a document, computed once per document on first use."""
        cached = self._document_terms.get(doc_id)
        if cached is None:
            rows = np.flatnonzero(self.served.passage_docs == self.doc_number.get(doc_id, -1))
            cached = self.bm25.passage_terms(int(r) for r in rows)
            self._document_terms[doc_id] = cached
        return cached

    def around(self, chunk_id: str) -> str:
        """A passage with its neighbours on the same page: a fact cut off by a chunk boundary
        (a table row, the second half of a form) is read whole."""
        row = self.served.passages.row_of(chunk_id)
        if row is None:
            return ""
        found = self.served.passages.get([r for r in (row - 1, row, row + 1) if r >= 0])
        here = found[row]
        return "\n".join(
            c.text
            for _, c in sorted(found.items())
            if c.doc_id == here.doc_id and c.page == here.page
        )

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Boolean mask of chunks the filters admit, or None for all."""
        if filters is None or filters.empty:
            return None
        admitted = np.fromiter(
            (filters.admits(committee, day) for committee, day in self.meetings),
            dtype=bool,
            count=len(self.meetings),
        )
        return admitted[self.passage_meetings]


class Searcher:
    """Finds the passages that best match a question."""

    def __init__(self, index_link: Path, embedder: Embedder, expected: Params | None = None):
        self.index_link = index_link
        self.embedder = embedder
        self.expected = expected
        self._lock = threading.Lock()
        self._loaded: LoadedIndex | None = None

    @property
    def index(self) -> LoadedIndex:
        """The published build, reloaded when the index link has moved to a newer one."""
        current = build_dir_of(self.index_link)
        loaded = self._loaded
        if loaded is None or loaded.build != current:
            with self._lock:
                if self._loaded is None or self._loaded.build != build_dir_of(self.index_link):
                    self._loaded = LoadedIndex.load(self.index_link, self.expected)
                    log.info("serving index %s", self._loaded.build)
                loaded = self._loaded
        return loaded

    def search(
        self, question: str, filters: SearchFilters | None = None, k: int = 5, mode: str = "hybrid"
    ) -> list[Hit]:
        """Best passages first; mode 'dense' or 'bm25' for baselines."""
        index = self.index
        if not index.size:
            return []
        query = self.embedder.embed([question])[0]
        return rank(index, question, query, filters, k, mode)


def rank(
    index: LoadedIndex,
    question: str,
    query: np.ndarray,
    filters: SearchFilters | None = None,
    k: int = 5,
    mode: str = "hybrid",
) -> list[Hit]:
    """The retrieval after the question is embedded: dense and BM25 candidates, fused."""
    served = index.served
    mask = index.mask(filters)
    dense_rank = []
    if mode != "bm25":
        dense_rank = dense.search(served.dense_index, served.params.dense, query, CANDIDATES, mask)
    lexical = served.bm25.scores(question)
    lexical_rank = _top(lexical, mask) if mode != "dense" else []
    fused: dict[int, float] = {}
    for ranking in (dense_rank, lexical_rank):
        for position, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + position + 1)
    order = sorted(fused, key=fused.__getitem__, reverse=True)
    rows = _fold_repeats(order, fused, index, k)
    similarity = dense.vectors_of(served.dense_index, rows) @ query
    chunks = served.passages.get(rows)
    return [
        _hit(index, chunks[row], fused[row], float(d), float(lexical[row]))
        for row, d in zip(rows, similarity, strict=True)
    ]


def _top(scores: np.ndarray, mask: np.ndarray | None) -> list[int]:
    if mask is not None:
        scores = np.where(mask, scores, 0.0)
    k = min(CANDIDATES, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [int(i) for i in top if scores[i] > 0]


def _fold_repeats(
    order: list[int], scores: dict[int, float], index: LoadedIndex, k: int
) -> list[int]:
    """The best k rows, skipping repeats and spreading over documents.

    Report packs repeat whole reports with different page furniture, so near-identical vectors
    count as repeats. Each further passage of a paper already listed has its score discounted,
    because the next-best paper is more often the answer than a fourth passage of the same one.
    """
    served = index.served
    candidates = dense.vectors_of(served.dense_index, order)
    seen: set[int] = set()
    per_doc: dict[int, int] = {}
    adjusted: dict[int, float] = {}
    kept: list[int] = []  # positions in order
    for position, row in enumerate(order):
        key = int(served.passage_keys[row])
        if key in seen or (
            kept and float(np.max(candidates[kept] @ candidates[position])) >= NEAR_DUPLICATE
        ):
            continue
        seen.add(key)
        kept.append(position)
        doc = int(served.passage_docs[row])
        adjusted[row] = scores[row] * SAME_DOCUMENT_DISCOUNT ** per_doc.get(doc, 0)
        per_doc[doc] = per_doc.get(doc, 0) + 1
    return sorted(adjusted, key=adjusted.__getitem__, reverse=True)[:k]


def _hit(index: LoadedIndex, chunk: ChunkRow, score: float, dense: float, lexical: float) -> Hit:
    doc = index.served.documents[chunk.doc_id]
    return Hit(
        chunk_id=chunk.chunk_id,
        doc_id=doc.doc_id,
        title=doc.title,
        council=doc.council,
        committee=doc.committee,
        meeting_date=doc.meeting_date,
        page=chunk.page,
        source=doc.source,
        url=doc.url,
        heading=chunk.heading,
        text=chunk.text,
        score=score,
        dense=dense,
        lexical=lexical,
        root=doc.root,
    )
