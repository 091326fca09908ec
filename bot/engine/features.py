"""The evidence that one retrieved passage answers one question, as numbers a combiner weighs.

Meaning (cosine), retrieval rank and BM25, coverage of the question's terms by the passage and by
its best sentence (each term weighted by its rarity in the papers), the typed slot checks of
`bot.engine.slots` at sentence, passage and paper level, and whether the meeting the question
names is the passage's meeting. Every feature is in 0..1 (or -1..1 for agreement).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from bot.engine.slots import QuestionSlots, holds_kind, sentences
from indexer.lexical import tokenize
from indexer.types import Hit

FEATURES = (
    "dense",
    "dense_below_best",
    "rank",
    "lexical",
    "coverage",
    "title_coverage",
    "sentence_coverage",
    "constraints_in_sentence",
    "constraints_in_passage",
    "constraints_in_paper",
    "kind_in_sentence",
    "kind_in_passage",
    "meeting_agrees",
)
# The learned reader's chance (bot.reader), when it is switched on, and how far it falls short
# of the best passage's: the reader is sharper at ranking a question's passages than at
# saying how likely any one of them is.
READER, READER_BELOW_BEST = "reader", "reader_below_best"
READER_FEATURES = (READER, READER_BELOW_BEST)
# Each month as the tokenizer spells it ("february" -> "februari"); None where it is a stop word.
_MONTHS = [
    next(iter(tokenize(m)), None)
    for m in "january february march april may june july august september october november "
    "december".split()
]


@dataclass(frozen=True)
class Evidence:
    """One passage's features, and the sentence that would state the answer."""

    hit: Hit
    values: dict[str, float]
    sentence: str
    text: str  # the passage read with its neighbours on the same page

    def vector(self, names: tuple[str, ...] = FEATURES) -> list[float]:
        return [self.values[name] for name in names]


@dataclass(frozen=True)
class Context:
    """What the features need from the index, beyond the passage itself."""

    weight: Callable[[str], float]  # rarity weight of a term in the papers (BM25 idf)
    paper_terms: Callable[[str], frozenset[str]]  # every term of a document
    council_terms: Callable[[Hit], set[str]]  # council, its initials, committee, meeting date
    around: Callable[[Hit], str]  # the passage with its neighbours on the same page


def gather(slots: QuestionSlots, hits: list[Hit], context: Context) -> list[Evidence]:
    """Evidence for each retrieved passage, in retrieval order."""
    top_lexical = max((h.lexical for h in hits), default=0.0) or 1.0
    top_dense = max((h.dense for h in hits), default=0.0)
    weights = {t: context.weight(t) for t in slots.terms}
    return [
        _evidence(slots, weights, hit, position, top_lexical, top_dense, context)
        for position, hit in enumerate(hits)
    ]


def _evidence(
    slots: QuestionSlots,
    weights: dict[str, float],
    hit: Hit,
    position: int,
    top_lexical: float,
    top_dense: float,
    context: Context,
) -> Evidence:
    title_terms = _terms(f"{hit.title} {hit.heading}")
    surroundings = title_terms | context.council_terms(hit)
    text = context.around(hit) or hit.text
    passage = _terms(text) | surroundings
    paper = context.paper_terms(hit.doc_id) | surroundings
    known = frozenset(slots.terms)
    best, best_terms = _best_sentence(slots, text, weights, surroundings, known)
    values = {
        "dense": max(0.0, hit.dense),
        "dense_below_best": top_dense - hit.dense,
        "rank": 1.0 / (1 + position),
        "lexical": max(0.0, hit.lexical) / top_lexical,
        "coverage": _coverage(weights, passage),
        "title_coverage": _coverage(weights, title_terms),
        "sentence_coverage": _coverage(weights, best_terms | surroundings),
        "constraints_in_sentence": _share(slots.constraints, best_terms | surroundings),
        "constraints_in_passage": _share(slots.constraints, passage),
        "constraints_in_paper": _share(slots.constraints, paper),
        "kind_in_sentence": float(holds_kind(slots.asks, best, known)),
        "kind_in_passage": float(holds_kind(slots.asks, text, known)),
        "meeting_agrees": _meeting_agrees(slots, hit),
    }
    return Evidence(hit, values, best, text)


def _best_sentence(
    slots: QuestionSlots,
    text: str,
    weights: dict[str, float],
    surroundings: AbstractSet[str],
    known: frozenset[str],
) -> tuple[str, frozenset[str]]:
    """The sentence that best holds the asked kind of thing with the question's subject."""
    best, best_terms, best_score = "", frozenset[str](), -1.0
    for sentence in sentences(text):
        terms = _terms(sentence)
        score = (
            _coverage(weights, terms | surroundings)
            + _share(slots.constraints, terms | surroundings)
            + float(holds_kind(slots.asks, sentence, known))
        )
        if score > best_score:
            best, best_terms, best_score = sentence, terms, score
    return best, best_terms


@lru_cache(maxsize=8192)
def _terms(text: str) -> frozenset[str]:
    """A text's terms; the same passages and sentences come back question after question."""
    return frozenset(tokenize(text))


def _coverage(weights: dict[str, float], present: AbstractSet[str]) -> float:
    total = sum(weights.values())
    if total == 0:
        return 1.0
    return sum(w for t, w in weights.items() if t in present) / total


def _share(wanted: frozenset[str], present: AbstractSet[str]) -> float:
    return 1.0 if not wanted else len(wanted & present) / len(wanted)


def _meeting_agrees(slots: QuestionSlots, hit: Hit) -> float:
    """+1 when a month the question names is the passage's meeting month, -1 when it is not."""
    named = {m for m in _MONTHS if m and m in slots.terms}
    if not named or not hit.meeting_date:
        return 0.0
    try:
        month = _MONTHS[date.fromisoformat(hit.meeting_date).month - 1]
    except ValueError:
        return 0.0
    return 1.0 if month in named else -1.0
