"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates fused by reciprocal rank.

Dense search finds paraphrases; BM25 finds names, figures and decision numbers ("24/00109",
"LEVI") that embeddings blur. The index is reloaded when a new build is published, so a running
bot answers from last night's papers without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from scipy import sparse

from indexer.embed import Embedder
from indexer.errors import IndexMissingError
from indexer.lexical import BM25Index
from indexer.store import BuildContents, Params, build_dir_of, lexical_index, read_build
from indexer.types import Hit, SearchFilters

log = logging.getLogger(__name__)

CANDIDATES = 50  # per retriever, before fusion
NEAR_DUPLICATE = 0.95  # cosine above which two passages say the same thing
SAME_DOCUMENT_DISCOUNT = 0.9
RRF_K = 60  # the usual reciprocal-rank constant: damps the gap between rank 1 and rank 2


@dataclass
class LoadedIndex:
    """One published build, held in memory for serving."""

    build: Path
    contents: BuildContents
    faiss_index: faiss.Index
    bm25: BM25Index
    committees: list[str]
    meeting_dates: list[str | None]
    text_keys: list[str]  # normalised-text hash per chunk, to fold repeated passages
    rows_by_doc: dict[str, list[int]] = field(default_factory=dict)
    _document_terms: dict[str, frozenset[str]] = field(default_factory=dict)
    _terms_by_chunk: sparse.csr_matrix | None = None
    _term_names: list[str] = field(default_factory=list)
    _row_of: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, index_link: Path, expected: Params | None = None) -> LoadedIndex:
        # resolve the link once: everything below reads this one build, even if a newer one
        # is published meanwhile (never new passages with old BM25 rows)
        build = build_dir_of(index_link)
        if build is None:
            raise IndexMissingError(f"no index published in {index_link.parent}; run `clerk index`")
        build = build.resolve()
        contents = read_build(build, expected)
        index = faiss.IndexFlatIP(contents.params.dimension)
        if len(contents.vectors):
            index.add(contents.vectors)
        docs = contents.documents
        return cls(
            build=build,
            contents=contents,
            faiss_index=index,
            bm25=BM25Index.load(build) or lexical_index(contents),
            committees=[docs[c.doc_id].committee for c in contents.chunks],
            meeting_dates=[docs[c.doc_id].meeting_date for c in contents.chunks],
            text_keys=[_text_key(c.text) for c in contents.chunks],
            rows_by_doc=_rows_by_doc(contents),
        )

    def document_terms(self, doc_id: str) -> frozenset[str]:
        """Every token of a document, computed once per document on first use."""
        cached = self._document_terms.get(doc_id)
        if cached is None:
            if self._terms_by_chunk is None:  # chunk -> term ids: the BM25 matrix transposed
                self._terms_by_chunk = self.bm25.weights.T.tocsr()
                self._term_names = self.bm25.term_names()
            rows = self.rows_by_doc.get(doc_id, [])
            ids = np.unique(self._terms_by_chunk[rows].indices) if rows else ()
            cached = frozenset(self._term_names[i] for i in ids)
            self._document_terms[doc_id] = cached
        return cached

    def around(self, chunk_id: str) -> str:
        """A passage with its neighbours on the same page: a fact cut off by a chunk boundary
        (a table row, the second half of a form) is read whole."""
        if not self._row_of:
            self._row_of = {c.chunk_id: row for row, c in enumerate(self.contents.chunks)}
        row = self._row_of.get(chunk_id)
        if row is None:
            return ""
        chunks = self.contents.chunks
        here = chunks[row]
        parts = [
            chunks[r].text
            for r in (row - 1, row, row + 1)
            if 0 <= r < len(chunks)
            and chunks[r].doc_id == here.doc_id
            and chunks[r].page == here.page
        ]
        return "\n".join(parts)

    def mask(self, filters: SearchFilters | None) -> np.ndarray | None:
        """Boolean mask of chunks the filters admit, or None for all."""
        if filters is None or filters.empty:
            return None
        return np.fromiter(
            (
                filters.admits(c, d)
                for c, d in zip(self.committees, self.meeting_dates, strict=True)
            ),
            dtype=bool,
            count=len(self.committees),
        )


def _rows_by_doc(contents: BuildContents) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(contents.chunks):
        rows.setdefault(chunk.doc_id, []).append(row)
    return rows


def _text_key(text: str) -> str:
    normal = re.sub(r"\W+", " ", text.lower()).strip()
    return hashlib.blake2b(normal.encode(), digest_size=8).hexdigest()


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
        if not index.contents.chunks:
            return []
        query = self.embedder.embed([question])[0]
        mask = index.mask(filters)
        dense_rank = self._dense_candidates(index, query, mask) if mode != "bm25" else []
        lexical = index.bm25.scores(question)
        lexical_rank = _top(lexical, mask) if mode != "dense" else []
        fused: dict[int, float] = {}
        for ranking in (dense_rank, lexical_rank):
            for rank, row in enumerate(ranking):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        order = sorted(fused, key=fused.__getitem__, reverse=True)
        rows = _fold_repeats(order, fused, index, k)
        dense = index.contents.vectors[rows] @ query if rows else np.zeros(0)
        return [
            _hit(index, row, fused[row], float(d), float(lexical[row]))
            for row, d in zip(rows, dense, strict=True)
        ]

    def _dense_candidates(self, index: LoadedIndex, query: np.ndarray, mask) -> list[int]:
        params = None
        if mask is not None:
            allowed = np.flatnonzero(mask).astype(np.int64)
            if not len(allowed):
                return []
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorBatch(allowed)
        k = min(CANDIDATES, index.faiss_index.ntotal)
        _, ids = index.faiss_index.search(query[None, :], k, params=params)
        return [int(i) for i in ids[0] if i >= 0]


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
    chunks, vectors = index.contents.chunks, index.contents.vectors
    seen: set[str] = set()
    per_doc: dict[str, int] = {}
    adjusted: dict[int, float] = {}
    for row in order:
        key = index.text_keys[row]
        kept = list(adjusted)
        if key in seen or (kept and float(np.max(vectors[kept] @ vectors[row])) >= NEAR_DUPLICATE):
            continue
        seen.add(key)
        doc = chunks[row].doc_id
        adjusted[row] = scores[row] * SAME_DOCUMENT_DISCOUNT ** per_doc.get(doc, 0)
        per_doc[doc] = per_doc.get(doc, 0) + 1
    return sorted(adjusted, key=adjusted.__getitem__, reverse=True)[:k]


def _hit(index: LoadedIndex, row: int, score: float, dense: float, lexical: float) -> Hit:
    chunk = index.contents.chunks[row]
    doc = index.contents.documents[chunk.doc_id]
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
