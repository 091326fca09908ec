"""What a question asks for, and whether a sentence could be the answer: typed slot checks.

A question carries constraints (figures, years, quarters, decision numbers, names and places:
what the answer must be about) and asks for a kind of thing (a count, an amount, a date, a
person, a recorded vote, a decision). A passage answers only if one of its sentences holds the
asked kind of thing together with the question's subject, and the constraints hold in that
sentence, its passage or its paper. These are checks of English grammar and of the papers' own
conventions (how minutes record a vote or a resolution), not lists fitted to any question set;
how much each check counts is learnt by `bot.engine.combiner` on the dev set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexer.lexical import tokenize

COUNT, AMOUNT, DATE, PERSON, VOTE, DECISION = (
    "count",
    "amount",
    "date",
    "person",
    "vote",
    "decision",
)

# Where a question's asking words can start: the question itself, or the clause after what sets
# the scene ("At the 4 March Cabinet, how many KPIs ...", "Q3 monitoring: what is ...").
_CLAUSE = r"(?:^|[,:;–—]\s|\s-\s)\W*"
# What the question asks for, from its grammar (first match wins: "how many voted" is a count).
_ASKS = (
    (COUNT, re.compile(rf"{_CLAUSE}(in total )?how many\b|\bnumber of\b|\bhow often\b")),
    (VOTE, re.compile(r"\bvot(e|es|ed|ing)\b")),
    (
        AMOUNT,
        re.compile(
            rf"{_CLAUSE}((in total|roughly|about) )?how much\b|\bhow (large|big|high|low)\b"
            rf"|\bby how much\b|{_CLAUSE}(what|what'?s|which)\b.*\b(cost|costs|amount|value|sum"
            r"|budget|figure|price|spend|share|returns?"
            r"|spending|savings?|overspend|underspend|allocation|rise|increase|reduction|cut"
            r"|charge|deficit|surplus|balance|rate|percentage|proportion|total|funding|grant"
            # what money is called in council papers: pay, taxes, fees, borrowing, reserves
            r"|salary|salaries|wages?|pay award|rent|fees?|tax|precept|income|borrowing|debt"
            r"|loans?|reserves?|investment|contributions?|uplift|subsidy|levy|payments?|award)\b"
        ),
    ),
    (
        DATE,
        re.compile(rf"{_CLAUSE}when\b|\bwhat (date|day|year|month)\b|\bby when\b|\bdeadline\b"),
    ),
    (
        PERSON,
        re.compile(
            rf"{_CLAUSE}who\b|\b(which|what)\s+"
            # up to two words naming the role ("which planning inspector"), not a verb phrase
            # ("what did the Leader say" asks what was said, not who)
            r"((?!(did|does|do|is|was|were|are|has|have|had|will|would|can|could|should)\b)"
            r"[\w'’-]+\s+){0,2}"
            # the people council papers name by their role
            r"(councillors?|members?|officers?|persons?|people|inspectors?|chair(man|woman|person)?s?"
            r"|leaders?|ministers?|directors?|managers?|mayors?|clerks?|mps?|chief executives?"
            r"|spokes(man|woman|person)|portfolio holders?|auditors?|commissioners?"
            r"|representatives?|proposers?|seconders?|secretar(y|ies))\b"
        ),
    ),
    # a decision is asked for when deciding is the question's verb ("what did Cabinet agree",
    # "was it adopted"), not when "decision 24/00093" or "the changes agreed" only name a thing
    (
        DECISION,
        re.compile(
            r"\b(did|does|do|will|would|was|were|has|have|to)\b(\s+[\w'’-]+){0,6}?\s+"
            r"(decide|resolve|agree|approve|adopt|endorse)\b"
            r"|\bwhat (was|were|has been|have been) (decided|resolved|agreed|approved|adopted"
            r"|endorsed)\b|\boutcome\b|\bwhat happened (to|with|at)\b"
        ),
    ),
)

# What a sentence holding each kind of answer looks like in committee papers.
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_HOLDS = {
    COUNT: re.compile(
        r"\b\d[\d,]*(\.\d+)?\b|\b(one|two|three|four|five|six|seven|eight|nine|ten"
        r"|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|dozen)\b"
    ),
    AMOUNT: re.compile(r"£\s?\d|\d\s?(%|per ?cent|m\b|bn\b|k\b|million|billion)|\d[\d,]{3,}"),
    DATE: re.compile(
        rf"\b\d{{1,2}}(st|nd|rd|th)?\s+({_MONTHS})\b|\b({_MONTHS})\s+(\d{{1,2}}|(19|20)\d\d)\b"
        r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(19|20)\d\d\b"
        # a time given as a span ("in 12 months", "within six weeks")
        r"|\b(\d+|one|two|three|four|six|twelve)\s+(days?|weeks?|months?|years?)\b"
    ),
    PERSON: re.compile(
        r"\b(Mr|Mrs|Ms|Miss|Dr|Cllr|Councillor|Sir|Dame|Lord|Lady)\.?\s+[A-Z]"
        r"|\b[A-Z][a-z]+\s+[A-Z][a-z]+(-[A-Z][a-z]+)?\b"
    ),
    VOTE: re.compile(
        r"\bvot(e|es|ed|ing)\b|\b(for|against|abstain\w*)\s*[:(-]\s*\d|\bcarried\b|\blost\b"
        r"|\bunanimous(ly)?\b|\bdefeated\b",
        re.IGNORECASE,
    ),
    DECISION: re.compile(
        r"\bRESOLVED\b|\b(resolved|agreed|approved|decided|adopted|endorsed|noted|carried)\b"
        r"|\bdecision (was|has been) (taken|made)\b",
        re.IGNORECASE,
    ),
}
_WORD = re.compile(r"[A-Za-z][\w'’.-]*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+(?=[A-Z0-9(£•\"'‘“])|\s+•\s+|\n{2,}")


@dataclass(frozen=True)
class QuestionSlots:
    """The typed reading of one question."""

    terms: tuple[str, ...]  # content tokens (stemmed, canonical figures)
    figures: frozenset[str]  # tokens with a digit: amounts, years, quarters, decision numbers
    names: frozenset[str]  # capitalised words after the first: places, people, bodies
    asks: str | None  # COUNT, AMOUNT, DATE, PERSON, VOTE, DECISION, or None

    @property
    def constraints(self) -> frozenset[str]:
        return self.figures | self.names


def read_question(question: str) -> QuestionSlots:
    """Constraints and asked kind of a question."""
    terms = tuple(dict.fromkeys(tokenize(question)))
    figures = frozenset(t for t in terms if any(ch.isdigit() for ch in t) and _whole(t, terms))
    words = _WORD.findall(question)
    names = frozenset(
        token
        for word in words[1:]
        if word[0].isupper() and not word.isupper() or len(word) > 1 and word.isupper()
        for token in tokenize(word)
    )
    lowered = question.lower()
    asks = next((kind for kind, pattern in _ASKS if pattern.search(lowered)), None)
    return QuestionSlots(terms, figures, names - figures, asks)


def _whole(token: str, terms: tuple[str, ...]) -> bool:
    """A figure as written, not a part split from a compound ("24" from "2023-24")."""
    return not any(token != other and token in re.split(r"[./-]", other) for other in terms)


def holds_kind(kind: str | None, sentence: str, known: frozenset[str] = frozenset()) -> bool:
    """Whether a sentence could state the asked kind of answer: something of that kind which
    the question did not already say (`known`, its terms). A year the question names is not
    the amount it asks for, nor "a Planning Inspector" the inspector's name."""
    if kind is None:
        return True
    for match in _HOLDS[kind].finditer(sentence):
        start, end = _whole_words(sentence, match.start(), match.end())
        said = set(tokenize(sentence[start:end]))
        if not said or said - known:
            return True
    return False


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """A match widened to the whole words it touches ("£2" in "£2.1m" -> "£2.1m")."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


def sentences(text: str) -> list[str]:
    """A passage cut into sentences (bullets and numbered points count as sentences)."""
    parts = [s.strip() for s in _SENTENCE.split(text)]
    return [s for s in parts if len(s) > 2] or [text.strip()]
