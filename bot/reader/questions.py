"""Questions written from the papers' own sentences, for training the reader.

A sentence that states a figure, a count, a date, a person, a vote or a decision becomes a
wh-question about it by template ("How much ...?", "When ...?", "Who ...?", "What did Cabinet
decide about ...?"): the stated fact is cut out, the rest is thinned and partly reworded the way
councillors write, and sometimes the meeting is named. `near_miss` changes one constraint of such a
question (another year, month, place, council body or number) so that the original passage no
longer answers it. No question set is read here: only the indexed papers.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date

from indexer.lexical import STOPWORDS

AMOUNT, COUNT, DATE, PERSON, VOTE, DECISION = (
    "amount",
    "count",
    "date",
    "person",
    "vote",
    "decision",
)

_MONTHS = (
    "January February March April May June July August September October November December".split()
)
_MONEY = r"£\s?\d[\d,]*(?:\.\d+)?\s?(?:bn|m|k|million|billion)?\b|\d+(?:\.\d+)?\s?(?:%|per ?cent)"
_FACTS = (
    (VOTE, re.compile(r"\bFor\s*\(?\d+\)?.{0,40}?Against\s*\(?\d+\)?", re.IGNORECASE)),
    (AMOUNT, re.compile(_MONEY)),
    (DATE, re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:{'|'.join(_MONTHS)})(?:\s+20\d\d)?\b")),
    (PERSON, re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Councillor|Cllr)\.?\s+[A-Z][a-zA-Z'’-]+")),
    (COUNT, re.compile(r"\b(?<![£./-])\d{1,3}(?:,\d{3})*(?![\d./%-])\s+(?=[a-z]{4,})")),
    (DECISION, re.compile(r"\b(?:RESOLVED|[Rr]esolved|[Aa]greed|[Aa]pproved|[Ee]ndorsed)\b")),
)
_TEMPLATES = {
    AMOUNT: ("How much {t}?", "What figure is given for {t}?", "What was the amount for {t}?",
             "how much money {t}", "What is the cost of {t}?", "What sum {t}?"),
    COUNT: ("How many {n} {t}?", "What number of {n} {t}?", "how many {n} were there {t}"),
    DATE: ("When {t}?", "On what date {t}?", "By when {t}?", "when is {t}"),
    PERSON: ("Who {t}?", "Which councillor {t}?", "Who was it that {t}?", "who {t}"),
    VOTE: ("What was the vote on {t}?", "How did members vote on {t}?",
           "How many voted for and against {t}?"),
    DECISION: ("What did {body} decide about {t}?", "What was resolved on {t}?",
               "Did {body} agree {t}?", "what was agreed about {t}"),
}  # fmt: skip
# Councillors' words for the papers' words (applied to some questions only).
_REWORDS = (
    ("increase", "rise"), ("reduction", "cut"), ("additional", "extra"), ("funding", "money"),
    ("expenditure", "spending"), ("councillors", "members"), ("Kent County Council", "KCC"),
    ("approximately", ""), ("per cent", "%"), ("proposed", "suggested"), ("agreed", "approved"),
    ("children and young people", "children"), ("Members", "councillors"), ("budget", "budget"),
    ("Government", "govt"), ("allocation", "share"), ("financial year", "year"),
)  # fmt: skip
PLACES = (
    "Ashford", "Canterbury", "Dartford", "Dover", "Folkestone", "Gravesham", "Maidstone",
    "Sevenoaks", "Swale", "Thanet", "Tonbridge", "Tunbridge Wells", "Medway", "Keighley",
    "Shipley", "Bingley", "Ilkley", "Bradford", "Sussex", "Essex", "Surrey", "Margate",
)  # fmt: skip
BODIES = (
    "Cabinet", "County Council", "Scrutiny Committee", "Medway Council",
    "Governance and Audit Committee",
)  # fmt: skip


@dataclass(frozen=True)
class Generated:
    """A question written from one sentence, and the fact it asks for."""

    question: str
    kind: str
    answer: str  # the text the answer must hold (the fact cut out of the sentence)


def facts(sentence: str) -> list[tuple[str, str]]:
    """(kind, fact text) pairs a sentence states, the most specific kind first."""
    found = []
    for kind, pattern in _FACTS:
        match = pattern.search(sentence)
        if match:
            found.append((kind, match.group().strip()))
    return found


def write_question(
    sentence: str,
    kind: str,
    fact: str,
    committee: str,
    meeting_date: str | None,
    rng: random.Random,
    paper: str = "",
) -> Generated | None:
    """A wh-question asking for `fact`, from the rest of `sentence` and sometimes the words of
    the paper's title or heading (`paper`), as councillors name a report's subject rather than
    its sentence; None if too little is left."""
    if not _prose(sentence):
        return None
    words = _topic_words(_around(sentence, fact, kind), rng)
    if len(words) < 3:
        return None
    topic = " ".join(words)
    subject = [w for w in re.findall(r"[A-Za-z]{4,}", paper) if w.lower() not in STOPWORDS]
    if subject and rng.random() < 0.5:
        start = rng.randrange(len(subject))
        named = " ".join(subject[start : start + rng.randint(1, 3)])
        topic = " ".join(words[: max(3, 2 * len(words) // 3)])
        topic = f"{topic}{rng.choice([' in the ', ' under ', ' for ', ' on '])}{named}"
    noun = ""
    if kind == COUNT:
        after = sentence[sentence.find(fact) + len(fact) :].split()
        noun = after[0].strip(",.;:()") if after else "items"
    body = committee if committee else "the council"
    template = rng.choice(_TEMPLATES[kind])
    question = template.format(t=topic, n=noun, body=body)
    if rng.random() < 0.5:
        question = _reword(question, rng)
    if meeting_date and rng.random() < 0.3:
        question = _name_meeting(question, committee, meeting_date, rng)
    question = re.sub(r"\s+", " ", question).strip()
    if kind != DECISION:
        question = question.replace(fact, "")
    answer = sentence if kind == DECISION else fact
    return Generated(question[0].upper() + question[1:] if rng.random() < 0.8 else question,
                     kind, answer)  # fmt: skip


def _prose(sentence: str) -> bool:
    """A sentence of words, not a table row of figures."""
    words = sentence.split()
    figures = sum(1 for w in words if re.search(r"\d", w))
    return len(words) >= 6 and figures <= max(3, len(words) // 5)


def _around(sentence: str, fact: str, kind: str) -> str:
    """The words near the fact (its subject and what it is about), the fact left out."""
    where = sentence.find(fact)
    before, after = sentence[:where].split(), sentence[where + len(fact) :].split()
    if kind == DECISION:  # a resolution's subject follows the verb
        return " ".join(after[:14])
    return " ".join(before[-9:] + after[:6])


def _topic_words(text: str, rng: random.Random, most: int = 14) -> list[str]:
    """The sentence's words, thinned: most stop words and some content words dropped."""
    words = re.findall(r"[A-Za-z£][\w’'£.,/-]*[\w%]|\d[\d,./-]*[\w%]*|\w", text)
    kept = []
    for word in words:
        lowered = word.lower().strip(".,")
        if lowered in {"resolved", "that", "the", "a", "an"} or not lowered:
            continue
        if re.search(r"\d", lowered) and not re.fullmatch(
            r"(20\d\d(-\d\d)?|q[1-4]|\d\d/\d{5})", lowered
        ):
            continue  # other figures in a question are rare: years, quarters, decision numbers stay
        keep = 0.4 if lowered in STOPWORDS else 0.85
        if rng.random() < keep:
            kept.append(word.strip(".,"))
    if len(kept) > most:
        start = rng.randrange(0, len(kept) - most + 1)
        kept = kept[start : start + most]
    return kept


def _reword(question: str, rng: random.Random) -> str:
    for papers, councillors in _REWORDS:
        if papers in question and rng.random() < 0.7:
            question = question.replace(papers, councillors)
    return question.lower() if rng.random() < 0.3 else question


def _name_meeting(question: str, committee: str, meeting_date: str, rng: random.Random) -> str:
    try:
        day = date.fromisoformat(meeting_date)
    except ValueError:
        return question
    when = rng.choice([f"{day:%B}", f"{day.day} {day:%B}", f"{day:%B} {day.year}"])
    return rng.choice(
        [f"At the {when} {committee}, {question[0].lower()}{question[1:]}",
         f"{question.rstrip('?')} at the {when} {committee} meeting?"]
    )  # fmt: skip


def near_miss(question: str, passage: str, rng: random.Random) -> tuple[str, str] | None:
    """The question with one constraint changed (or a false one added) so that `passage` no
    longer answers it: (new question, what changed). None if no change could be checked."""
    folded = passage.lower()
    changes = []
    for year in re.findall(r"\b20\d\d(?:-\d\d)?\b", question):
        first = int(year[:4]) + rng.choice([-3, -2, -1, 1, 2])
        other = f"{first}-{(first + 1) % 100:02d}" if "-" in year else str(first)
        changes.append((year, other, "year"))
    for month in _MONTHS:
        if month in question:
            changes.append((month, rng.choice([m for m in _MONTHS if m != month]), "month"))
    for place in PLACES:
        if place in question:
            changes.append((place, rng.choice([p for p in PLACES if p != place]), "place"))
    for body in BODIES:
        if body in question:
            changes.append((body, rng.choice([b for b in BODIES if b != body]), "body"))
    for number in re.findall(r"\b\d\d/\d{5}\b|\bQ[1-4]\b", question):
        if number.startswith("Q"):
            other = rng.choice([q for q in ("Q1", "Q2", "Q3", "Q4") if q != number])
        else:
            other = f"{number[:3]}{int(number[3:]) + rng.choice([-7, -3, 2, 5, 11]):05d}"
        changes.append((number, other, "number"))
    rng.shuffle(changes)
    for old, new, what in changes:
        if new.lower() not in folded:
            return re.sub(rf"\b{re.escape(old)}\b", new, question, count=1), what
    year = rng.randint(2015, 2022)
    added = rng.choice(
        [f" in {rng.choice(PLACES)}", f" for {year}-{(year + 1) % 100:02d}",
         f" at {rng.choice(BODIES)}"]
    )  # fmt: skip
    if added.split(" ", 2)[-1].lower() in folded:
        return None
    return question.rstrip("?").rstrip() + added + "?", "added"
