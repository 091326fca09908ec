"""Measure retrieval and abstention on a question set with expected sources.

A question set is JSON lines: {"id", "question", "answerable", "expected": [{"source", "page"}],
"answer_contains": [...], "kind", "filters": {...}}. Expected sources are matched by document
content, so a byte-identical copy under another name counts as the same paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bot.engine.answer import Answerer, Support, clean_question
from indexer.errors import ClerkError
from indexer.types import SearchFilters


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answerable: bool
    expected: tuple[tuple[str, int | None], ...] = ()
    answer_contains: tuple[str, ...] = ()
    kind: str = ""
    filters: SearchFilters | None = None


@dataclass
class Outcome:
    question: Question
    rank: int | None  # 1-based rank of the first expected passage among the top 5
    best_score: float
    answered: bool = False
    contains_ok: bool | None = None
    extra: dict = field(default_factory=dict)


def load_questions(path: Path) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            filters = raw.get("filters")
            questions.append(
                Question(
                    qid=str(raw.get("id", number)),
                    question=raw["question"],
                    answerable=bool(raw["answerable"]),
                    expected=tuple((e["source"], e.get("page")) for e in raw.get("expected", [])),
                    answer_contains=tuple(raw.get("answer_contains") or ()),
                    kind=raw.get("kind", ""),
                    filters=SearchFilters(**filters) if filters else None,
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ClerkError(f"{path}:{number}: not a question ({exc})") from exc
    return questions


def evaluate(answerer: Answerer, questions: list[Question], mode: str = "hybrid") -> dict:
    """Hit-rate at 1/3/5, MRR, and abstention precision/recall for one retrieval mode."""
    outcomes = [_run(answerer, q, mode) for q in questions]
    threshold = answerer.settings.engine.answer_threshold
    for outcome in outcomes:
        outcome.answered = outcome.best_score >= threshold
    return summarise(outcomes) | {"mode": mode, "threshold": threshold}


def _run(answerer: Answerer, question: Question, mode: str) -> Outcome:
    text = clean_question(question.question, answerer.settings.engine.max_question_chars)
    supports = answerer.assess(text, question.filters, mode)
    by_source = _doc_ids(answerer)
    wanted = {(by_source.get(src, src), page) for src, page in question.expected}
    rank = next((i for i, s in enumerate(supports, 1) if _matches(s, wanted)), None)
    strongest = max(supports, key=lambda s: s.score, default=None)
    best = strongest.score if strongest else 0.0
    contains_ok = None
    if question.answer_contains and strongest:
        top = strongest.hit.text.casefold()  # the passage the answer is composed from
        contains_ok = all(
            " ".join(c.split()).casefold() in " ".join(top.split())
            for c in question.answer_contains
        )
    return Outcome(question, rank, best, contains_ok=contains_ok)


def _matches(support: Support, wanted: set) -> bool:
    hit = support.hit
    return (hit.doc_id, hit.page) in wanted or (hit.doc_id, None) in wanted


def _doc_ids(answerer: Answerer) -> dict[str, str]:
    """Indexed file source -> document id, duplicates included."""
    files = answerer.searcher.index.contents.files
    return {f.source: f.doc_id for f in files if f.doc_id}


def summarise(outcomes: list[Outcome]) -> dict:
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    declined = [o for o in outcomes if not o.answered]
    correct_declines = [o for o in declined if not o.question.answerable]

    def rate(items, pred) -> float:
        return round(sum(1 for o in items if pred(o)) / len(items), 3) if items else 0.0

    checked = [o for o in answerable if o.contains_ok is not None and o.answered]
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit@1": rate(answerable, lambda o: o.rank is not None and o.rank <= 1),
        "hit@3": rate(answerable, lambda o: o.rank is not None and o.rank <= 3),
        "hit@5": rate(answerable, lambda o: o.rank is not None and o.rank <= 5),
        "mrr": round(sum(1 / o.rank for o in answerable if o.rank) / max(1, len(answerable)), 3),
        "answered_rate_answerable": rate(answerable, lambda o: o.answered),
        "declined_rate_unanswerable": rate(unanswerable, lambda o: not o.answered),
        "abstention_precision": round(len(correct_declines) / len(declined), 3)
        if declined
        else 0.0,
        "abstention_recall": rate(unanswerable, lambda o: not o.answered),
        "answer_contains_rate": rate(checked, lambda o: o.contains_ok),
        "misses": [o.question.qid for o in answerable if not o.rank],
        "wrongly_declined": [o.question.qid for o in answerable if not o.answered],
        "wrongly_answered": [o.question.qid for o in unanswerable if o.answered],
    }


def calibrate(answerer: Answerer, questions: list[Question]) -> dict:
    """The threshold that best separates answerable from unanswerable questions on this set.

    Chooses the threshold maximising the worse of the two rates (answered-when-answerable,
    declined-when-unanswerable), placed midway between neighbouring scores; leave-one-out
    accuracy shows how much of that fit would carry to unseen questions.
    """
    outcomes = [_run(answerer, q, "hybrid") for q in questions]
    scored = [(o.best_score, o.question.answerable) for o in outcomes]
    best = _best_threshold(scored)
    held_out = 0
    for i, (score, answerable) in enumerate(scored):
        threshold = _best_threshold(scored[:i] + scored[i + 1 :])["threshold"]
        held_out += (score >= threshold) == answerable
    return best | {"leave_one_out_accuracy": round(held_out / max(1, len(scored)), 3)}


def _best_threshold(scored: list[tuple[float, bool]]) -> dict:
    values = sorted({s for s, _ in scored})
    candidates = [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)] or values
    pos = [s for s, a in scored if a]
    neg = [s for s, a in scored if not a]

    def fitness(t: float) -> tuple[float, float]:
        answered = sum(s >= t for s in pos) / max(1, len(pos))
        declined = sum(s < t for s in neg) / max(1, len(neg))
        return (min(answered, declined), answered + declined)

    threshold = max(candidates, key=fitness)
    answered = sum(s >= threshold for s in pos) / max(1, len(pos))
    declined = sum(s < threshold for s in neg) / max(1, len(neg))
    return {
        "threshold": round(threshold, 4),
        "answered_rate": round(answered, 3),
        "declined_rate": round(declined, 3),
    }


def render_report(reports: dict) -> str:
    lines = []
    for name, r in reports.items():
        if name == "calibration":
            lines.append(
                f"calibration: threshold {r['threshold']} answers {r['answered_rate']:.0%} of "
                f"answerable, declines {r['declined_rate']:.0%} of unanswerable; "
                f"leave-one-out accuracy {r['leave_one_out_accuracy']:.0%}"
            )
            continue
        lines.append(
            f"{name:7} hit@1 {r['hit@1']:.3f}  hit@3 {r['hit@3']:.3f}  hit@5 {r['hit@5']:.3f}  "
            f"MRR {r['mrr']:.3f}  answered {r['answered_rate_answerable']:.0%} of "
            f"{r['answerable']} answerable, declined {r['declined_rate_unanswerable']:.0%} of "
            f"{r['unanswerable']} unanswerable (abstention precision "
            f"{r['abstention_precision']:.2f}, recall {r['abstention_recall']:.2f}); "
            f"answer text right {r['answer_contains_rate']:.0%}"
        )
        for key in ("misses", "wrongly_declined", "wrongly_answered"):
            if r[key]:
                lines.append(f"        {key}: {' '.join(r[key])}")
    return "\n".join(lines)
