"""Question -> passages -> an honest, extractive, cited answer (or a plain "not in the papers").

Every sentence of an answer is copied from a retrieved passage and carries that passage's
citation number. Whether Clerk answers is decided by a support score on the best passages, not by
wording: the passage must be close in meaning (dense similarity) AND contain the question's
specific terms (names, places, years, figures), weighted by how rare they are in the papers.
A passage about the right topic that lacks the named town or year is a near-miss, not an answer.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from bot.errors import QuestionError
from bot.settings import Settings
from bot.types import Answer, Citation
from indexer.embed import Embedder, SentenceTransformerEmbedder
from indexer.lexical import tokenize
from indexer.search import Searcher
from indexer.store import Params
from indexer.types import Hit, SearchFilters

NOT_FOUND = "I could not find the answer to this in the committee papers."
# Words that frame a question rather than name what it is about; their absence from a passage
# says nothing about whether the passage answers it.
FRAMING_WORDS = frozenset(
    tokenize(
        """much many said say says agreed agree decided decide decision happen happened
        meeting meetings paper papers report reports mention mentioned council councils
        councillor councillors proposed propose give given cost costs
        total amount figure number current currently plan plans planned going will new
        latest recent recently cabinet committee explain details detail anything
        whether been being made make makes set sets says stated state roughly approximately
        exactly specifically actually overall according mr mrs ms dr councillor member members"""
    )
)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(£•\"'‘“])|\s+•\s+")
_FIGURE = re.compile(r"\d")  # figures, years and decision numbers must be matched exactly
_WORD = re.compile(r"[A-Za-z][\w'’./-]*")
MAX_ANSWER_SENTENCES = 2
MAX_ANSWER_WORDS = 70
RERANK_DEPTH = 3
CITE_FRACTION = 0.85  # further passages are cited when nearly as well supported as the best
MISSING_PENALTY = 0.5  # a name or figure the paper never mentions: a near-miss
NEAR_PENALTY = 0.75  # mentioned elsewhere in the same paper, not in this passage
MONTHS = frozenset(
    tokenize(
        "january february march april may june july august september october november december"
    )
)
DENSE_FLOOR, DENSE_SPAN = 0.15, 0.5  # cosine 0.15 counts as 0, 0.65 and above as 1


@dataclass(frozen=True)
class Support:
    """How well one passage supports answering the question, and why."""

    hit: Hit
    score: float
    coverage: float
    missing: tuple[str, ...]
    lacking: bool = False  # misses a name or figure the question gives


class Answerer:
    """Answers questions from the published index."""

    def __init__(self, settings: Settings, searcher: Searcher):
        self.settings = settings
        self.searcher = searcher

    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None) -> Answerer:
        """Load the model; the index loads on the first question and again when republished."""
        model = embedder or SentenceTransformerEmbedder(settings.index.model)
        expected = Params(model.name, model.dimension, settings.index.chunk_words)
        return cls(settings, Searcher(settings.index.index_dir, model, expected))

    def answer(
        self, question: str, filters: SearchFilters | None = None, mode: str = "hybrid"
    ) -> Answer:
        question = clean_question(question, self.settings.engine.max_question_chars)
        supports = self.assess(question, filters, mode)
        threshold = self.settings.engine.answer_threshold
        best = max(supports, key=lambda s: s.score, default=None)
        if best is None or best.score < threshold:
            nearest = tuple(self.citation(s.hit, s.score) for s in supports)
            return Answer(question, False, NOT_FOUND, nearest=nearest)
        others = [s for s in supports if s is not best and s.score >= threshold * CITE_FRACTION]
        citations = tuple(self.citation(s.hit, s.score) for s in [best, *others])
        return Answer(question, True, compose(question, best.hit, 1), citations=citations)

    def assess(
        self, question: str, filters: SearchFilters | None = None, mode: str = "hybrid"
    ) -> list[Support]:
        """The passages to cite, in retrieval order, with their support scores.

        Several times as many candidates as are cited are retrieved; those lacking a name or
        figure the question gives drop behind the rest, so a passage that holds them overtakes
        one that is merely close in meaning.
        """
        hits = self.searcher.search(
            question, filters, k=RERANK_DEPTH * self.settings.index.top_k, mode=mode
        )
        supports = sorted((self.support(question, h) for h in hits), key=lambda s: s.lacking)
        return supports[: self.settings.index.top_k]

    def support(self, question: str, hit: Hit) -> Support:
        """Score in 0..1: half meaning, half the question's terms found, weighted by rarity.

        A name, place, year or figure from the question that the passage (with its title,
        heading and meeting) does not contain halves the score: that is a near-miss.
        """
        bm25 = self.searcher.index.bm25
        terms, specific = question_terms(question)
        spelled = {t: bm25.spelled(t) for t in terms}
        terms = list(dict.fromkeys(spelled.values()))
        specific = {spelled[t] for t in specific}
        present = set(tokenize(f"{hit.title} {hit.heading} {hit.text}"))
        present |= self._document_terms(hit)
        in_document = self.searcher.index.document_terms(hit.doc_id)
        weights = {t: bm25.term_idf(t) or _unseen_weight(bm25.idf) for t in terms}
        total = sum(weights.values())
        missing = tuple(t for t in terms if t not in present)
        coverage = 1.0 if total == 0 else 1.0 - sum(weights[t] for t in missing) / total
        meaning = min(1.0, max(0.0, (hit.dense - DENSE_FLOOR) / DENSE_SPAN))
        score = 0.5 * meaning + 0.5 * coverage
        lacking = specific.intersection(missing)
        if lacking:
            # Named elsewhere in the same paper: perhaps context the passage leaves implicit.
            score *= NEAR_PENALTY if lacking <= in_document else MISSING_PENALTY
        if not answer_type_present(question, hit.text):
            score *= MISSING_PENALTY
        return Support(hit, round(score, 4), round(coverage, 4), missing, bool(lacking))

    def _document_terms(self, hit: Hit) -> set[str]:
        """Words that come with the passage's meeting: council (and its initials, 'KCC'),
        committee, meeting date."""
        words = set(tokenize(f"{hit.council} {hit.committee} {initials(hit.council)}"))
        return words | meeting_terms(hit.meeting_date)

    def citation(self, hit: Hit, score: float) -> Citation:
        return replace(Citation.from_hit(hit, score), url=citation_url(hit, self.settings))


def question_terms(question: str) -> tuple[list[str], set[str]]:
    """The question's content terms, and those that must be matched exactly: figures and names."""
    terms = [t for t in dict.fromkeys(tokenize(question)) if t not in FRAMING_WORDS]
    names = {
        t
        for word in _WORD.findall(question)
        if word[0].isupper()
        for t in tokenize(word)
        if t not in FRAMING_WORDS and t not in MONTHS
    }
    return terms, {t for t in terms if _FIGURE.search(t) or t in names}


# What kind of answer a question asks for, and what a passage holding one looks like: a passage
# that cannot contain the kind of answer asked for is not an answer, however close its topic.
ANSWER_TYPES = (
    # "How did members vote ...", "what was the vote ...": a recorded vote
    (
        re.compile(r"\bvot(e|es|ed|ing)\b", re.IGNORECASE),
        re.compile(
            r"\bvot(e|es|ed|ing)\b|\b(for|against|abstain\w*)\s*[:(]\s*\d|\bcarried\b"
            r"|\bunanimous(ly)?\b|\b(motion|amendment) (was )?(lost|defeated|agreed)\b",
            re.IGNORECASE,
        ),
    ),
    # "How many ...", "how much ...": a figure
    (re.compile(r"^\s*how (many|much)\b", re.IGNORECASE), re.compile(r"\d")),
)


def answer_type_present(question: str, passage: str) -> bool:
    """False when the question asks for a kind of answer the passage cannot hold."""
    return all(expected.search(passage) for asks, expected in ANSWER_TYPES if asks.search(question))


def initials(name: str) -> str:
    """'Kent County Council' -> 'KCC': how councillors write their council's name."""
    return "".join(w[0] for w in name.split() if w[0].isupper())


def meeting_terms(meeting_date: str | None) -> set[str]:
    """'2025-03-04' -> {'4', 'march', '2025', ...}: "the 4 March Cabinet" names the meeting."""
    if not meeting_date:
        return set()
    try:
        day = date.fromisoformat(meeting_date)
    except ValueError:
        return set()
    return set(tokenize(f"{day.day} {day:%B} {day.year}"))


def _unseen_weight(idf) -> float:
    # A term the papers never use is as telling as the rarest term they do use.
    return float(idf.max()) if len(idf) else 1.0


def clean_question(question: str, max_chars: int) -> str:
    """The question as searched: control characters gone, whitespace folded, length checked."""
    if not isinstance(question, str):
        raise QuestionError("a question must be text")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in question)
    text = re.sub(r"\s+", " ", text).strip()
    if not text or not re.search(r"\w", text):
        raise QuestionError("please ask a question about the committee papers")
    if len(text) > max_chars:
        raise QuestionError(
            f"that question is {len(text)} characters long; please keep it under {max_chars}"
        )
    return text


def compose(question: str, hit: Hit, number: int) -> str:
    """The short answer: the passage's sentences that best match the question, quoted and cited."""
    sentences = [s.strip() for s in _SENTENCE.split(hit.text) if len(s.strip()) > 2] or [hit.text]
    terms = {t for t in tokenize(question) if t not in FRAMING_WORDS}
    ranked = sorted(
        range(len(sentences)),
        key=lambda i: (len(terms & set(tokenize(sentences[i]))), -i),
        reverse=True,
    )
    chosen = sorted(ranked[:MAX_ANSWER_SENTENCES])
    joined = sentences[chosen[0]]
    for before, index in zip(chosen, chosen[1:], strict=False):
        joined += (" " if index == before + 1 else " … ") + sentences[index]
    quote = _shorten(joined, MAX_ANSWER_WORDS)
    return f"{describe_source(hit)}: “{quote}” [{number}]"


def _shorten(text: str, max_words: int) -> str:
    """At most max_words, cut with an ellipsis so the quote never pretends to be whole."""
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " …"


def describe_source(hit: Hit) -> str:
    """'Title (Committee, 2025-01-30, page 3)'."""
    parts = [hit.committee, hit.meeting_date or "", f"page {hit.page}" if hit.page else ""]
    return f"{hit.title} ({', '.join(p for p in parts if p)})"


def citation_url(hit: Hit, settings: Settings) -> str | None:
    """A link opening the cited page: the published paper, else the served corpus, else the file."""
    base: str | None
    if hit.url:
        base = hit.url
    elif settings.index.documents_url:
        base = settings.index.documents_url.rstrip("/") + "/" + urllib.parse.quote(hit.source)
    else:
        path = Path(hit.root) / hit.source
        base = path.as_uri() if hit.root and path.is_file() else None
    if base and hit.page and "#" not in base:
        return f"{base}#page={hit.page}"
    return base
