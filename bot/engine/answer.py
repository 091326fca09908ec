"""Question -> passages -> an honest reply: the fact, quoted and cited; "discussed but not found";
or "not in the papers".

Retrieval finds candidate passages. For each, `bot.engine.features` gathers the evidence that it
answers (meaning, rank, coverage of the question's terms, the typed slot checks at sentence,
passage and paper level), and `bot.engine.combiner` turns it into a chance. Clerk answers from the
passage with the best chance when it reaches the answer threshold, leading with the sentence that
states the asked fact. Otherwise the reply says plainly that the papers do not answer, and
whether they at least discuss the topic (the nearest passages are shown and a request is logged).
`Answer.kind` is the decision; the text never decides anything.
"""

from __future__ import annotations

import logging
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path

from bot.engine.combiner import Combiner, fitted_path
from bot.engine.features import (
    FEATURES,
    READER,
    READER_BELOW_BEST,
    READER_FEATURES,
    Context,
    Evidence,
    gather,
)
from bot.engine.slots import AMOUNT, COUNT, DATE, DECISION, PERSON, VOTE, read_question
from bot.errors import QuestionError
from bot.reader.cross import CrossReader
from bot.reader.score import Reader, load_reader
from bot.settings import Settings
from bot.types import ANSWERED, DISCUSSED, Answer, Citation
from indexer.embed import Embedder, embedder_for, is_tuned
from indexer.lexical import tokenize
from indexer.search import Searcher
from indexer.store import Params
from indexer.types import Hit, SearchFilters

log = logging.getLogger(__name__)
NOT_FOUND_TEXT = "I could not find the answer to this in the committee papers."
CANDIDATES = 15  # passages weighed for each question
READ = 8  # of those, the most likely the reader (when on) reads, to keep each question quick
MAX_ANSWER_WORDS = 60  # the fact sentence
MAX_QUOTE_WORDS = 300  # the passage and its neighbours on the page, quoted under it
CITE_FRACTION = 0.8  # further passages are cited when nearly as likely to answer as the best
_MISSING = {
    COUNT: "the number you asked for",
    AMOUNT: "the figure you asked for",
    DATE: "the date you asked for",
    PERSON: "who it was",
    VOTE: "a recorded vote",
    DECISION: "a recorded decision",
}


@dataclass(frozen=True)
class Judged:
    """One passage weighed for a question: its evidence and its chance of answering."""

    evidence: Evidence
    chance: float

    @property
    def hit(self) -> Hit:
        return self.evidence.hit


class Answerer:
    """Answers questions from the published index."""

    def __init__(
        self,
        settings: Settings,
        searcher: Searcher,
        combiner: Combiner | None = None,
        reader: Reader | CrossReader | None = None,
    ):
        self.settings = settings
        self.searcher = searcher
        self.reader = reader
        tuned = is_tuned(settings.index.model)
        self.shortlist = _fitted(None, tuned)  # which passages the reader reads
        self.combiner = combiner or (
            _fitted(reader.manifest.recipe, tuned) if reader else self.shortlist
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, embedder: Embedder | None = None, fitting: bool = False
    ) -> Answerer:
        """Load the model; the index loads on the first question and again when republished.

        The reader is used when switched on, built, and (unless `fitting` it) a combiner was
        fitted with it; otherwise Clerk decides as before, and the log says why."""
        model = embedder or embedder_for(settings.index)
        expected = Params(model.name, model.dimension, settings.index.chunk_words)
        reader = load_reader(settings, model)
        tuned = is_tuned(settings.index.model)
        fitted = fitted_path(reader.manifest.recipe, tuned) if reader is not None else None
        if fitted is not None and not fitting and not fitted.is_file():
            log.warning("no combiner fitted with the reader (%s): deciding without it", fitted)
            reader = None
        combiner = _fitted(None, tuned) if reader is not None and fitting else None
        return cls(settings, Searcher(settings.index.index_dir, model, expected), combiner, reader)

    @property
    def features(self) -> tuple[str, ...]:
        """The evidence this answerer weighs for each passage."""
        return (*FEATURES, *READER_FEATURES) if self.reader is not None else FEATURES

    @property
    def threshold(self) -> float:
        configured = self.settings.engine.answer_threshold
        return self.combiner.answer_threshold if configured is None else configured

    def answer(
        self, question: str, filters: SearchFilters | None = None, mode: str = "hybrid"
    ) -> Answer:
        question = clean_question(question, self.settings.engine.max_question_chars)
        judged = self.assess(question, filters, mode)
        return self.decide(question, judged)

    def decide(self, question: str, judged: list[Judged]) -> Answer:
        """The reply for passages already weighed (best chance first)."""
        top_k = self.settings.index.top_k
        best = judged[0] if judged else None
        if best is None or best.chance < self.threshold:
            nearest = tuple(self.citation(j) for j in judged[:top_k])
            topical = max((j.evidence.values["dense"] for j in judged), default=0.0)
            if best is not None and topical >= self.combiner.discussed_threshold:
                text = discussed_text(question, best.hit)
                return Answer(question, False, text, nearest=nearest, kind=DISCUSSED,
                              confidence=round(best.chance, 4))  # fmt: skip
            chance = round(best.chance, 4) if best else 0.0
            return Answer(question, False, NOT_FOUND_TEXT, nearest=nearest, confidence=chance)
        others = [j for j in judged[1:top_k] if j.chance >= best.chance * CITE_FRACTION]
        citations = tuple(self.citation(j) for j in [best, *others])
        text = compose(best.evidence.sentence, best.evidence.text, best.hit, 1)
        return Answer(question, True, text, citations=citations, kind=ANSWERED,
                      confidence=round(best.chance, 4))  # fmt: skip

    def assess(
        self, question: str, filters: SearchFilters | None = None, mode: str = "hybrid"
    ) -> list[Judged]:
        """Candidate passages with their evidence and chance of answering, best first."""
        hits = self.searcher.search(question, filters, k=CANDIDATES, mode=mode)
        evidence = gather(read_question(question), hits, self._context())
        if self.reader is not None:
            evidence = self.read(question, evidence)
        judged = [Judged(e, self.combiner.chance(e.values)) for e in evidence]
        return sorted(judged, key=lambda j: j.chance, reverse=True)

    def read(self, question: str, evidence: list[Evidence]) -> list[Evidence]:
        """The reader's evidence for the READ passages the combiner alone finds likeliest (the
        rest, never read, get chance 0 and the largest shortfall)."""
        assert self.reader is not None
        likeliest = sorted(
            range(len(evidence)), key=lambda i: self.shortlist.chance(evidence[i].values)
        )[::-1][:READ]
        chances = self.reader.score(question, [evidence[i].hit for i in likeliest])
        scores = dict(zip(likeliest, chances, strict=True))
        top = max(chances, default=0.0)
        return [
            replace(
                e,
                values={
                    **e.values,
                    READER: scores.get(i, 0.0),
                    READER_BELOW_BEST: top - scores[i] if i in scores else 1.0,
                },
            )
            for i, e in enumerate(evidence)
        ]

    def _context(self) -> Context:
        index = self.searcher.index
        bm25 = index.bm25
        unseen = float(bm25.idf.max()) if len(bm25.idf) else 1.0
        return Context(
            # a term the papers never use is as telling as the rarest term they do use
            weight=lambda term: bm25.term_idf(bm25.spelled(term)) or unseen,
            paper_terms=index.document_terms,
            council_terms=_meeting_words,
            around=lambda hit: index.around(hit.chunk_id),
        )

    def citation(self, judged: Judged) -> Citation:
        """A cited passage, quoted with its neighbours on the page as the evidence was read."""
        hit = judged.hit
        cited = Citation.from_hit(hit, judged.chance, quote=judged.evidence.text)
        return replace(cited, url=citation_url(hit, self.settings))


@lru_cache(maxsize=1)
@lru_cache(maxsize=4)
def _fitted(recipe: str | None, tuned: bool) -> Combiner:
    """The combiner fitted for this reader and encoder; for a tuned encoder not yet fitted, the
    bundled encoder's, with a warning (its cosines read differently, so it decides less well)."""
    path = fitted_path(recipe, tuned)
    if tuned and not path.is_file():
        log.warning("no combiner fitted for a tuned encoder (%s): using the bundled one's", path)
        path = fitted_path(recipe)
    return Combiner.load(path)


def _meeting_words(hit: Hit) -> set[str]:
    """Words that come with the passage's meeting: council (and its initials, 'KCC'),
    committee, meeting date."""
    words = set(tokenize(f"{hit.council} {hit.committee} {initials(hit.council)}"))
    return words | meeting_terms(hit.meeting_date)


def discussed_text(question: str, nearest: Hit) -> str:
    """The middle reply: the topic is in the papers, the asked fact is not."""
    missing = _MISSING.get(read_question(question).asks or "", "the answer to this")
    return (
        f"The papers discuss this (nearest: {describe_source(nearest)}), but I could not find "
        f"{missing} in them."
    )


def compose(sentence: str, passage: str, hit: Hit, number: int) -> str:
    """The short answer: the sentence stating the asked fact first, then the passage it comes
    from, quoted, with where it was published."""
    fact = _shorten(" ".join((sentence or passage).split()), MAX_ANSWER_WORDS)
    quote = _shorten(" ".join(passage.split()), MAX_QUOTE_WORDS)
    if fact.rstrip(" …") == quote.rstrip(" …"):
        return f"“{quote}” ({describe_source(hit)}) [{number}]"
    return f"{fact}\n\nFrom {describe_source(hit)}: “{quote}” [{number}]"


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
