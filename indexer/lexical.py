"""BM25 over chunk texts, stored as plain arrays (no pickle) and scored with a sparse product.

Tokens keep what councillors type: decision numbers ("24/00109"), money ("2.149m"), years
("2025-26") and acronyms ("LEVI"), alongside their parts, so "24/00109" and "00109" both match.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import snowballstemmer
from scipy import sparse

K1, B = 1.2, 0.75
# Bumped whenever tokenize() changes: a stored BM25 index with another version is rebuilt from
# the chunk texts on load (seconds), without re-embedding anything.
TOKENIZER_VERSION = 3
# Words, numbers with thousands separators, and compounds such as 24/00109, 2025-26, 2.149m.
_TOKEN = re.compile(r"[a-z0-9]+(?:[./-][a-z0-9]+|,[0-9]{3}(?![0-9]))*")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "whats",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "tell",
        "please",
        "know",
        "aren",
        "couldn",
        "didn",
        "doesn",
        "don",
        "hadn",
        "hasn",
        "haven",
        "isn",
        "mustn",
        "shan",
        "shouldn",
        "wasn",
        "weren",
        "won",
        "wouldn",
    ]
)


@lru_cache(maxsize=200_000)
def _stem(token: str) -> str:
    # Snowball (Porter 2) folds "funded"/"funding", "resolve"/"resolved"; numbers pass through.
    return _stemmer().stemWord(token) if token.isalpha() and len(token) > 3 else token


_STEMMERS = threading.local()


def _stemmer():
    """This thread's Snowball stemmer: one keeps the word it is stemming in itself, so threads
    sharing one (the Slack workers answering at once) mangle each other's words."""
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = snowballstemmer.stemmer("english")
    return stemmer


def canonical(token: str) -> str:
    """One spelling for a figure written several ways: 2025/2026 -> 2025-26; 27,000 -> 27000."""
    token = token.replace(",", "")
    ordinal = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)", token)
    if ordinal:
        return ordinal.group(1)
    years = re.fullmatch(r"(20\d\d|19\d\d)[-/](\d{4}|\d{2})", token)
    if years:
        first, second = years.groups()
        return f"{first}-{second[-2:]}"
    decision = re.fullmatch(r"(\d{2})[-/](\d{5})", token)
    return f"{decision.group(1)}/{decision.group(2)}" if decision else token


# Councillors' shorthand, spelled out so that it meets the papers' wording.
_SHORTHAND = (
    (re.compile(r"\blib ?dems?\b"), "liberal democrats"),
    (re.compile(r"\bcllrs?\b"), "councillor"),
    (re.compile(r"\bquarter ([1-4])\b"), r"q\1"),
)


def tokenize(text: str) -> list[str]:
    """Lower-case, stemmed tokens without stop words; compounds also give their parts."""
    text = text.lower().replace("£", " ")
    for pattern, replacement in _SHORTHAND:
        text = pattern.sub(replacement, text)
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        token = canonical(match.group())
        if token in STOPWORDS or len(token) < 2 and not token.isdigit():
            continue
        tokens.append(_stem(token))
        if re.fullmatch(r"\d+\.\d+[a-z]+", token):  # money such as 2.149m: also 2.149
            tokens.append(token.rstrip("abcdefghijklmnopqrstuvwxyz"))
        elif any(sep in token for sep in "./-"):
            parts = [p for p in re.split(r"[./-]", token) if p and p not in STOPWORDS]
            tokens.extend(_stem(p) for p in parts if len(parts) > 1)
    return tokens


class BM25Index:
    """Term-by-chunk matrix of precomputed BM25 weights; a query is a sum of rows."""

    def __init__(self, vocabulary: dict[str, int], weights: sparse.csr_matrix, idf: np.ndarray):
        self.vocabulary = vocabulary
        self.weights = weights  # shape (terms, chunks)
        self.idf = idf
        self._by_initial: dict[str, list[str]] | None = None

    @classmethod
    def build(cls, texts: list[str]) -> BM25Index:
        vocabulary: dict[str, int] = {}
        rows, cols, counts = [], [], []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for doc, text in enumerate(texts):
            tokens = tokenize(text)
            lengths[doc] = len(tokens)
            for term, n in _counts(tokens).items():
                rows.append(vocabulary.setdefault(term, len(vocabulary)))
                cols.append(doc)
                counts.append(n)
        shape = (len(vocabulary), len(texts))
        tf = sparse.csr_matrix((np.array(counts, np.float32), (rows, cols)), shape=shape)
        df = np.diff(tf.indptr).astype(np.float32)
        idf = np.log1p((len(texts) - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(lengths.mean()) if len(texts) else 1.0
        norm = K1 * (1 - B + B * lengths / max(avg, 1.0))
        tf = tf.tocoo()
        data = idf[tf.row] * tf.data * (K1 + 1) / (tf.data + norm[tf.col])
        weights = sparse.csr_matrix((data.astype(np.float32), (tf.row, tf.col)), shape=shape)
        return cls(vocabulary, weights, idf)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every chunk for the query."""
        ids = [self.vocabulary[t] for t in set(tokenize(query)) if t in self.vocabulary]
        if not ids:
            return np.zeros(self.weights.shape[1], dtype=np.float32)
        return np.asarray(self.weights[ids].sum(axis=0)).ravel()

    def spelled(self, term: str) -> str:
        """The term, or the indexed word it is a one-letter slip of ('forcast' -> 'forecast')."""
        if term in self.vocabulary or len(term) < 5 or not term.isalpha():
            return term
        if self._by_initial is None:
            self._by_initial = {}
            for word in self.vocabulary:
                if word.isalpha():
                    self._by_initial.setdefault(word[0], []).append(word)
        nearby = [w for w in self._by_initial.get(term[0], ()) if abs(len(w) - len(term)) <= 1]
        close = difflib.get_close_matches(term, nearby, n=1, cutoff=0.86)
        return close[0] if close else term

    def term_names(self) -> list[str]:
        """Terms in id order."""
        names = [""] * len(self.vocabulary)
        for term, index in self.vocabulary.items():
            names[index] = term
        return names

    def term_idf(self, term: str) -> float | None:
        index = self.vocabulary.get(term)
        return None if index is None else float(self.idf[index])

    def save(self, directory: Path) -> None:
        w = self.weights
        np.savez(
            directory / "bm25.npz",
            data=w.data,
            indices=w.indices,
            indptr=w.indptr,
            shape=np.array(w.shape),
            idf=self.idf,
            tokenizer=np.array(TOKENIZER_VERSION),
        )
        (directory / "bm25_vocab.json").write_text(json.dumps(self.vocabulary), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> BM25Index | None:
        """The stored index, or None when it was made by another tokenizer version."""
        with np.load(directory / "bm25.npz", allow_pickle=False) as f:
            if "tokenizer" not in f or int(f["tokenizer"]) != TOKENIZER_VERSION:
                return None
            weights = sparse.csr_matrix(
                (f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"])
            )
            idf = f["idf"]
        vocabulary = json.loads((directory / "bm25_vocab.json").read_text(encoding="utf-8"))
        return cls(vocabulary, weights, idf)


def passage_text(committee: str, heading: str, text: str) -> str:
    """What BM25 indexes for a passage: its committee and heading context count as its words."""
    return f"{committee} {heading} {text}"


def _counts(tokens: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
    return counts
