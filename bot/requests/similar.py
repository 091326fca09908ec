"""Is a new question the same as one already waiting for officers?

`Similarity.similar(question_a, question_b) -> bool` is the seam the request store uses to link a
second asker to an open request instead of logging a new one. Two implementations:

- `TokenSimilarity` (default, no model): Jaccard overlap of content words.
- `EmbeddingSimilarity(embedder)`: cosine of sentence embeddings from `indexer.embed`.

Both are deliberately strict and both are vetoed by `names_agree`: a false link sends one
councillor the answer to another councillor's question, while a missed link only costs an officer
a second request to mark as duplicate.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

# Jaccard over content words. 0.75 links rewordings that keep the nouns ("When will the Dover
# bypass consultation close?" / "When does the consultation on the Dover bypass close?" = 1.0)
# but not questions differing in one content word out of four ("potholes repaired in 2023" /
# "potholes reported in 2023" = 0.5).
TOKEN_THRESHOLD = 0.75
# Cosine with all-MiniLM-L6-v2, measured on council questions: paraphrases scored 0.94-0.98
# ("What is the cost of the new school ..." / "How much will the new ... school cost?" = 0.967),
# while different questions on the same subject reached 0.92 ("potholes repaired" / "potholes
# reported" = 0.919) and a different opening of the same school 0.78. Place and year changes
# scored up to 0.976 and are caught by `names_agree`, not by this number.
EMBEDDING_THRESHOLD = 0.93

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
_STOP_TEXT = """a about above after again all also am an and any are as at be been before being
below between both but by can could did do does doing done during each few for from further had
has have having he her here hers him his how i if in into is it its itself just many may me might
more most much my no nor not now of off on once only or other our out over own please same shall
she should so some such tell than that the their them then there these they this those through to
too under until up us very was we were what when where which while who whom why will with would
you your know let like get got"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


class Similarity(Protocol):
    """Decides whether two questions ask the same thing."""

    def similar(self, question_a: str, question_b: str) -> bool: ...


class Embedder(Protocol):
    """What `indexer.embed.Embedder` offers: one normalised vector per text."""

    def embed(self, texts: Sequence[str]): ...  # -> numpy array (n, dim)


def normalise_question(question: str) -> str:
    """Case, spacing and punctuation folded away: equal strings are the same question."""
    return features(question).normalised


def content_words(question: str) -> frozenset[str]:
    """Words that carry the question's meaning: stop-words dropped, plural 's' folded."""
    return features(question).content


@dataclass(frozen=True)
class Features:
    """What the comparisons need from one question, worked out once per text."""

    normalised: str
    words: frozenset[str]
    content: frozenset[str]
    names: frozenset[str]


@lru_cache(maxsize=8192)  # a new question is compared with every pending one: tokenise each once
def features(question: str) -> Features:
    raw = _WORD.findall(question)
    words = [w.casefold() for w in raw]
    content = set()
    for word in words:
        if word in STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        content.add(word)
    names = {
        w.casefold()
        for i, w in enumerate(raw)
        if any(ch.isdigit() for ch in w) or (i > 0 and w[0].isupper() and w != "I")
    }
    return Features(" ".join(words), frozenset(words), frozenset(content), frozenset(names))


def names_agree(question_a: str, question_b: str) -> bool:
    """No place, name or number in one question that the other lacks.

    Both scores below rate "road repairs in Canterbury" and "road repairs in Dover" as close;
    linking them would send one town's answer to the other town's councillor.
    """
    a, b = features(question_a), features(question_b)
    return a.names <= b.words and b.names <= a.words


class TokenSimilarity:
    """Content-word overlap; needs no model."""

    def __init__(self, threshold: float = TOKEN_THRESHOLD):
        self.threshold = threshold

    def score(self, question_a: str, question_b: str) -> float:
        a, b = features(question_a).content, features(question_b).content
        return len(a & b) / len(a | b) if a and b else 0.0

    def similar(self, question_a: str, question_b: str) -> bool:
        if normalise_question(question_a) == normalise_question(question_b):
            return True
        return names_agree(question_a, question_b) and (
            self.score(question_a, question_b) >= self.threshold
        )


class EmbeddingSimilarity:
    """Cosine of question embeddings, remembering recent vectors so pending questions are
    embedded once, not on every new question."""

    def __init__(
        self, embedder: Embedder, threshold: float = EMBEDDING_THRESHOLD, cache: int = 4096
    ):
        self.embedder = embedder
        self.threshold = threshold
        self._cache: OrderedDict[str, object] = OrderedDict()
        self._cache_size = cache

    def score(self, question_a: str, question_b: str) -> float:
        va, vb = self._vectors([question_a, question_b])
        return float(va @ vb)

    def similar(self, question_a: str, question_b: str) -> bool:
        if normalise_question(question_a) == normalise_question(question_b):
            return True
        return names_agree(question_a, question_b) and (
            self.score(question_a, question_b) >= self.threshold
        )

    def _vectors(self, texts: list[str]) -> list:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self._cache[text] = vector
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return [self._cache[t] for t in texts]
