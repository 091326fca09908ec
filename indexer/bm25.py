"""BM25 over passages as sparse arrays on disk, memory-mapped when serving.

A build directory holds the table as plain `.npy` arrays (no pickle):

    bm25_terms.bin, bm25_term_starts.npy  the vocabulary, sorted, as one ASCII blob and offsets
    bm25_idf.npy                          idf per term
    bm25_postings.npy, bm25_passages.npy, bm25_weights.npy
                                          CSR by term: where each term's postings start, the
                                          passage rows, and each posting's BM25 weight (its term
                                          frequency already normalised by the passage's length)
    bm25_row_starts.npy, bm25_row_terms.npy, bm25_row_counts.npy
                                          CSR by passage: the term ids of each passage and their
                                          frequencies (a refresh re-counts only new passages)
    bm25.json                             tokenizer version, k1, b, counts

Serving maps the arrays (`numpy.load(mmap_mode="r")`): a query reads only the postings of its
own terms, so memory does not grow with the corpus; the kernel shares the pages between the
processes serving one build. Term ids are positions in the sorted vocabulary, found by bisection.
"""

from __future__ import annotations

import bisect
import difflib
import json
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import sparse

from indexer.lexical import TOKENIZER_VERSION, tokenize

K1, B = 1.2, 0.75
_ARRAYS = (
    "term_starts",
    "idf",
    "postings",
    "passages",
    "weights",
    "row_starts",
    "row_terms",
    "row_counts",
)
FORMAT = 2  # of the arrays: another one is rebuilt from the passages


class SortedTerms(Sequence[str]):
    """The vocabulary in sorted order, read from one blob of ASCII terms and their offsets."""

    def __init__(self, blob: np.ndarray, starts: np.ndarray):
        self._blob = blob  # uint8
        self._starts = starts  # int64, one more than there are terms

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        start, end = int(self._starts[index]), int(self._starts[index + 1])
        return self._blob[start:end].tobytes().decode("ascii")

    def find(self, term: str) -> int | None:
        """The term's id, or None when no passage uses it."""
        at = bisect.bisect_left(self, term)
        return at if at < len(self) and self[at] == term else None

    def span(self, low: str, high: str) -> range:
        """Ids of the terms t with low <= t < high."""
        return range(bisect.bisect_left(self, low), bisect.bisect_left(self, high))

    @staticmethod
    def pack(terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(blob, starts) for sorted terms."""
        encoded = [t.encode("ascii") for t in terms]
        starts = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=starts[1:])
        return np.frombuffer(b"".join(encoded), dtype=np.uint8), starts


class BM25Index:
    """Per-posting BM25 weights by term; a query's score is a sum of its terms' postings."""

    def __init__(self, terms: SortedTerms, arrays: dict[str, np.ndarray], passages: int):
        self.terms = terms
        self.idf = arrays["idf"]
        self.size = passages  # number of passages (rows) scored
        self._a = arrays
        self._by_initial: dict[str, list[str]] = {}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        previous: BM25Index | None = None,
        old_rows: Sequence[int] = (),
    ) -> BM25Index:
        """BM25 over the passages `texts`, in compact arrays (not a Python object per posting).

        With `previous`, a passage whose `old_rows` entry is a row of `previous` (not -1) takes
        its counted terms from there, so only new passages are tokenized; the result is the
        same as counting every passage again."""
        names: list[str] = list(previous.terms) if previous is not None else []
        vocabulary = {term: i for i, term in enumerate(names)}
        row_terms, counts, row_starts = array("i"), array("i"), array("q", [0])
        for row, text in enumerate(texts):
            old = old_rows[row] if previous is not None else -1
            if old >= 0 and previous is not None:
                terms, tf = previous.counted(old)
                row_terms.frombytes(terms.tobytes())
                counts.frombytes(tf.tobytes())
            else:
                for term, n in Counter(tokenize(text)).items():
                    if term not in vocabulary:
                        vocabulary[term] = len(names)
                        names.append(term)
                    row_terms.append(vocabulary[term])
                    counts.append(n)
            row_starts.append(len(row_terms))
        del vocabulary
        return cls._finish(names, row_terms, counts, row_starts)

    @classmethod
    def _finish(cls, names: list[str], row_terms: array, counts: array, row_starts: array):
        """Sort the vocabulary (dropping terms no passage uses any more), then weigh."""
        terms = np.frombuffer(row_terms, dtype=np.int32)
        tf = np.frombuffer(counts, dtype=np.int32)
        starts = np.frombuffer(row_starts, dtype=np.int64)
        passages = len(starts) - 1
        used = np.flatnonzero(np.bincount(terms, minlength=len(names)))
        order = sorted(used.tolist(), key=names.__getitem__)
        renumber = np.full(len(names), -1, dtype=np.int32)
        renumber[order] = np.arange(len(order), dtype=np.int32)
        by_row = sparse.csr_matrix(
            (tf.astype(np.float32), renumber[terms], starts), shape=(passages, len(order))
        )
        by_row.sort_indices()
        of_row = np.repeat(np.arange(passages), np.diff(starts))
        lengths = np.bincount(of_row, weights=tf, minlength=passages).astype(np.float32)
        arrays = _weights(by_row, lengths)
        blob, term_starts = SortedTerms.pack([names[i] for i in order])
        arrays["term_starts"] = term_starts
        return cls(SortedTerms(blob, term_starts), arrays, passages)

    def counted(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """A passage's term ids and how often each occurs (int32 arrays)."""
        lo, hi = int(self._a["row_starts"][row]), int(self._a["row_starts"][row + 1])
        terms = np.asarray(self._a["row_terms"][lo:hi], dtype=np.int32)
        return terms, np.asarray(self._a["row_counts"][lo:hi], dtype=np.int32)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage for the query."""
        out = np.zeros(self.size, dtype=np.float32)
        starts, rows, weights = self._a["postings"], self._a["passages"], self._a["weights"]
        for term in set(tokenize(query)):
            index = self.terms.find(term)
            if index is not None:
                lo, hi = int(starts[index]), int(starts[index + 1])
                out[rows[lo:hi]] += weights[lo:hi]  # a term's rows are distinct
        return out

    def term_idf(self, term: str) -> float | None:
        index = self.terms.find(term)
        return None if index is None else float(self.idf[index])

    def spelled(self, term: str) -> str:
        """The term, or the indexed word it is a one-letter slip of ('forcast' -> 'forecast')."""
        if len(term) < 5 or not term.isalpha() or self.terms.find(term) is not None:
            return term
        initial = term[0]
        if initial not in self._by_initial:  # terms are sorted: one initial is one span
            span = self.terms.span(initial, chr(ord(initial) + 1))
            self._by_initial[initial] = [
                w for w in self.terms[span.start : span.stop] if w.isalpha()
            ]
        nearby = [w for w in self._by_initial[initial] if abs(len(w) - len(term)) <= 1]
        close = difflib.get_close_matches(term, nearby, n=1, cutoff=0.86)
        return close[0] if close else term

    def passage_terms(self, rows: Iterable[int]) -> frozenset[str]:
        """Every term of these passages."""
        starts, terms = self._a["row_starts"], self._a["row_terms"]
        parts = [terms[int(starts[r]) : int(starts[r + 1])] for r in rows]
        ids = np.unique(np.concatenate(parts)) if parts else ()
        return frozenset(self.terms[int(i)] for i in ids)

    def save(self, directory: Path) -> None:
        blob = self.terms._blob
        (directory / "bm25_terms.bin").write_bytes(np.ascontiguousarray(blob).tobytes())
        for name in _ARRAYS:
            with open(directory / f"bm25_{name}.npy", "wb") as f:
                np.save(f, np.ascontiguousarray(self._a[name]), allow_pickle=False)
        header = {"format": FORMAT, "tokenizer": TOKENIZER_VERSION, "k1": K1, "b": B}
        header |= {"passages": self.size}
        (directory / "bm25.json").write_text(json.dumps(header | {"terms": len(self.terms)}))

    @classmethod
    def load(cls, directory: Path) -> BM25Index | None:
        """The stored table, memory-mapped; None when absent (an older build) or made by
        another tokenizer version (then it is rebuilt from the passages, without re-embedding)."""
        try:
            header = json.loads((directory / "bm25.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        if (header.get("tokenizer"), header.get("k1"), header.get("b")) != (
            TOKENIZER_VERSION,
            K1,
            B,
        ):
            return None
        arrays = {
            name: np.load(directory / f"bm25_{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in _ARRAYS
        }
        size = (directory / "bm25_terms.bin").stat().st_size
        blob = (
            np.memmap(directory / "bm25_terms.bin", dtype=np.uint8, mode="r")
            if size
            else (np.zeros(0, dtype=np.uint8))
        )
        if len(arrays["row_starts"]) != header["passages"] + 1:
            raise ValueError("BM25 arrays and header disagree")
        return cls(SortedTerms(blob, arrays["term_starts"]), arrays, int(header["passages"]))


def _weights(by_row: sparse.csr_matrix, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """idf, the by-term postings with their BM25 weights, and the by-passage term lists."""
    passages = len(lengths)
    by_term = by_row.tocsc()  # column j: the passages holding term j, in row order
    df = np.diff(by_term.indptr).astype(np.float32)
    idf = np.log1p((passages - df + 0.5) / (df + 0.5)).astype(np.float32)
    avg = float(lengths.mean()) if passages else 1.0
    norm = K1 * (1 - B + B * lengths / max(avg, 1.0))
    tf = by_term.data
    term_of = np.repeat(np.arange(len(idf), dtype=np.int32), np.diff(by_term.indptr))
    weights = idf[term_of] * tf * (K1 + 1) / (tf + norm[by_term.indices])
    return {
        "idf": idf,
        "postings": by_term.indptr.astype(np.int64),
        "passages": by_term.indices.astype(np.int32),
        "weights": weights.astype(np.float32),
        "row_starts": by_row.indptr.astype(np.int64),
        "row_terms": by_row.indices.astype(np.int32),
        "row_counts": by_row.data.astype(np.int32),
    }
