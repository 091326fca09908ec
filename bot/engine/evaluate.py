"""Measure what users see, and fit the combiner on the dev set.

A question set is JSON lines: {"id", "question", "answerable", "expected": [{"source", "page"}],
"answer_contains": [...], "kind", "filters": {...}} (see eval/dev/README.md). Each question ends as
one of four outcomes:

- fully right: answered, the right paper cited first, and every `answer_contains` string in the
  answer text itself (what a councillor reads first);
- wrong answer: answered, but not fully right (for an unanswerable question, any answer);
- false decline: an answerable question declined;
- right decline: an unanswerable question declined (as "discussed" or "not in the papers").

Expected sources are matched by document, so a copy of the paper under another name counts.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bot.engine.answer import Answerer, Judged, clean_question
from bot.engine.combiner import (
    Combiner,
    best_answer_threshold,
    best_separation,
    fit_logistic,
)
from bot.types import Answer
from indexer.errors import ClerkError
from indexer.types import SearchFilters

FULLY_RIGHT, WRONG, FALSE_DECLINE, RIGHT_DECLINE = (
    "fully_right", "wrong_answer", "false_decline", "right_decline",
)  # fmt: skip
OUTCOMES = (FULLY_RIGHT, WRONG, FALSE_DECLINE, RIGHT_DECLINE)
FOLDS = 5
CURVE_SEEDS = 5  # fold shuffles averaged for the budget curve: one shuffle moves it a point
BUDGETS = (0.03, 0.05, 0.10)  # wrong answers as a share of all questions


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    answerable: bool
    expected: tuple[tuple[str, int | None], ...] = ()
    answer_contains: tuple[str, ...] = ()
    kind: str = ""
    filters: SearchFilters | None = None


@dataclass(frozen=True)
class Trial:
    """One question put to the engine: the passages weighed, the reply, and how it went."""

    question: Question
    judged: tuple[Judged, ...]
    answer: Answer
    outcome: str
    rank: int | None  # 1-based rank of the first passage that answers, in the order weighed
    retrieval_rank: int | None  # the same in plain retrieval order
    page_rank: int | None  # 1-based rank of the first passage on an expected page (fact or not)
    right_if_answered: bool  # whether answering from the best passage would be fully right


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


# ---- running questions ---------------------------------------------------------------------


def run(answerer: Answerer, questions: list[Question], mode: str = "hybrid") -> list[Trial]:
    return [trial(answerer, q, mode) for q in questions]


def trial(answerer: Answerer, question: Question, mode: str = "hybrid") -> Trial:
    text = clean_question(question.question, answerer.settings.engine.max_question_chars)
    judged = answerer.assess(text, question.filters, mode)
    answer = answerer.decide(text, judged)
    wanted = wanted_places(answerer, question)
    retrieval = sorted(judged, key=lambda j: -j.evidence.values["rank"])
    right_if_answered = bool(judged) and _fully_right(question, wanted, answerer, judged)
    return Trial(
        question=question,
        judged=tuple(judged),
        answer=answer,
        outcome=_outcome(question, answer, right_if_answered),
        rank=_first(judged, question, wanted),
        retrieval_rank=_first(retrieval, question, wanted),
        page_rank=next((i for i, j in enumerate(judged, 1) if on_page(j, wanted)), None),
        right_if_answered=right_if_answered,
    )


def wanted_places(answerer: Answerer, question: Question) -> set[tuple[str, int | None]]:
    """Expected (document, page) pairs, copies of a paper resolved to the document indexed."""
    index = answerer.searcher.index
    return {(index.doc_of(src) or src, page) for src, page in question.expected}


def answers(judged: Judged, question: Question, wanted: set) -> bool:
    """Whether a passage answers: on an expected page, holding every expected string."""
    return on_page(judged, wanted) and holds(judged.evidence.text, question.answer_contains)


def on_page(judged: Judged, wanted: set) -> bool:
    hit = judged.hit
    return (hit.doc_id, hit.page) in wanted or (hit.doc_id, None) in wanted


def _fully_right(question: Question, wanted: set, answerer: Answerer, judged: list[Judged]) -> bool:
    """Answering from the best passage: the right paper first and the fact in the answer text."""
    if not question.answerable:
        return False
    best = judged[0]
    right_paper = any(best.hit.doc_id == doc for doc, _ in wanted)
    text = answerer.decide(question.question, [replace(best, chance=1.0)]).text
    return right_paper and holds(text, question.answer_contains)


def holds(text: str, strings: Iterable[str]) -> bool:
    folded = " ".join(text.split()).casefold()
    return all(" ".join(s.split()).casefold() in folded for s in strings)


def _outcome(question: Question, answer: Answer, right_if_answered: bool) -> str:
    if question.answerable:
        if not answer.answered:
            return FALSE_DECLINE
        return FULLY_RIGHT if right_if_answered else WRONG
    return WRONG if answer.answered else RIGHT_DECLINE


def _first(judged: Iterable[Judged], question: Question, wanted: set) -> int | None:
    return next((i for i, j in enumerate(judged, 1) if answers(j, question, wanted)), None)


# ---- figures -------------------------------------------------------------------------------


def summarise(trials: list[Trial]) -> dict:
    """Outcomes overall and per question kind, retrieval figures, the risk-coverage curve."""
    answerable = [t for t in trials if t.question.answerable]
    unanswerable = [t for t in trials if not t.question.answerable]
    near = [t for t in unanswerable if t.question.kind == "near_miss"]
    off = [t for t in unanswerable if t.question.kind == "off_topic"]

    def share(items: list[Trial], pred) -> float:
        return round(sum(1 for t in items if pred(t)) / len(items), 3) if items else 0.0

    def hit_at(k: int, attribute: str) -> float:
        return share(answerable, lambda t: (getattr(t, attribute) or 99) <= k)

    return {
        "questions": len(trials),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "fully_right_of_answerable": share(answerable, lambda t: t.outcome == FULLY_RIGHT),
        "wrong_answers_of_all": share(trials, lambda t: t.outcome == WRONG),
        "declined_of_answerable": share(answerable, lambda t: t.outcome == FALSE_DECLINE),
        # declined, but the passage holding the fact is among the nearest passages shown
        "declined_with_fact_shown_of_answerable": share(
            answerable,
            lambda t: t.outcome == FALSE_DECLINE and (t.rank or 99) <= len(t.answer.nearest),
        ),
        "near_misses_declined": share(near, lambda t: not t.answer.answered),
        "off_topic_declined": share(off, lambda t: not t.answer.answered),
        "unanswerable_shown_as_discussed": share(
            unanswerable, lambda t: t.answer.kind == "discussed"
        ),
        "hit@1": hit_at(1, "rank"),
        "hit@3": hit_at(3, "rank"),
        "hit@5": hit_at(5, "rank"),
        "page_hit@1": hit_at(1, "page_rank"),  # as the earlier engine was measured
        "page_hit@3": hit_at(3, "page_rank"),
        "retrieval_hit@1": hit_at(1, "retrieval_rank"),
        "retrieval_hit@3": hit_at(3, "retrieval_rank"),
        "mrr": round(sum(1 / t.rank for t in answerable if t.rank) / max(1, len(answerable)), 3),
        "by_kind": by_kind(trials),
        "risk_coverage": risk_coverage(trials),
        "wrong": [t.question.qid for t in trials if t.outcome == WRONG],
        "false_declines": [t.question.qid for t in trials if t.outcome == FALSE_DECLINE],
    }


def by_kind(trials: list[Trial]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter] = {}
    for t in trials:
        table.setdefault(t.question.kind or "-", Counter())[t.outcome] += 1
    return {kind: {o: counts[o] for o in OUTCOMES} for kind, counts in sorted(table.items())}


def risk_coverage(trials: list[Trial], points: int = 11) -> list[dict]:
    """Wrong answers (share of all questions) against answered share, as the threshold moves."""
    chances = sorted({_best_chance(t) for t in trials})
    picks = sorted({chances[round(i * (len(chances) - 1) / (points - 1))] for i in range(points)})
    rows = []
    for cut in picks if chances else []:
        answered = [t for t in trials if _best_chance(t) >= cut]
        wrong = [t for t in answered if not t.right_if_answered]
        rows.append(
            {
                "threshold": round(cut, 4),
                "answered": round(len(answered) / len(trials), 3),
                "wrong": round(len(wrong) / len(trials), 3),
                "fully_right": round((len(answered) - len(wrong)) / len(trials), 3),
            }
        )
    return rows


def _best_chance(t: Trial) -> float:
    return t.judged[0].chance if t.judged else 0.0


# ---- fitting the combiner on the dev set ---------------------------------------------------


def fit(answerer: Answerer, questions: list[Question], source: str, seed: int = 7) -> dict:
    """Fit the combiner's weights and thresholds on dev questions, by cross-validation.

    Passages are labelled by whether they answer (expected page, expected strings). Five folds
    of questions give every question a chance from a model that never saw it; the thresholds
    are chosen on those out-of-fold chances, then the weights are refitted on all questions.
    Averaged over CURVE_SEEDS other fold shuffles, it also reports how many questions come out
    fully right within each budget of wrong answers: the figure readers and features are
    compared by, steadier than one shuffle's.
    """
    prepared = [_prepare(answerer, q) for q in questions]
    held_out = _out_of_fold(prepared, seed)
    topical = {
        kind: [dense for question, *_, dense in prepared if question.kind == kind]
        for kind in ("near_miss", "off_topic")
    }
    curves = [within_budgets(_out_of_fold(prepared, s), len(prepared)) for s in range(CURVE_SEEDS)]
    weights, bias = _fit(prepared)
    combiner = Combiner(
        weights={
            name: round(float(w), 4) for name, w in zip(answerer.features, weights, strict=True)
        },
        bias=round(bias, 4),
        answer_threshold=round(best_answer_threshold(held_out, len(prepared)), 4),
        discussed_threshold=round(best_separation(topical["near_miss"], topical["off_topic"]), 4),
        fitted_on=source,
    )
    wrong = sum(1 for c, r in held_out if c >= combiner.answer_threshold and not r)
    right = sum(1 for c, r in held_out if c >= combiner.answer_threshold and r)
    return {
        "combiner": combiner,
        "cross_validated": {
            "questions": len(prepared),
            "fully_right_of_all": round(right / max(1, len(prepared)), 3),
            "wrong_answers_of_all": round(wrong / max(1, len(prepared)), 3),
            f"fully_right_of_all_within_wrong_over_{CURVE_SEEDS}_fold_seeds": {
                budget: round(float(np.mean([c[budget] for c in curves])), 3)
                for budget in curves[0]
            },
        },
    }


def _out_of_fold(prepared, seed: int) -> list[tuple[float, bool]]:
    """Per question with passages: the best passage's chance, from weights fitted without the
    question's fold, and whether answering from that passage would be fully right."""
    order = list(range(len(prepared)))
    random.Random(seed).shuffle(order)
    held_out: list[tuple[float, bool]] = []
    for fold in (order[i::FOLDS] for i in range(FOLDS)):
        inside = set(fold)
        weights, bias = _fit([p for i, p in enumerate(prepared) if i not in inside])
        for i in fold:
            _, x, _, right, _ = prepared[i]
            if len(x):
                chances = 1 / (1 + np.exp(-(x @ weights + bias)))
                best = int(np.argmax(chances))
                held_out.append((float(chances[best]), bool(right[best])))
    return held_out


def within_budgets(held_out: list[tuple[float, bool]], total: int) -> dict[str, float]:
    """For each budget of wrong answers (a share of all questions), the largest share of all
    questions answered fully right by any threshold that keeps within it: how good the chances
    are at telling right from wrong, whatever threshold is chosen."""
    ranked = sorted(held_out, key=lambda outcome: -outcome[0])
    found = {}
    for budget in BUDGETS:
        right = wrong = most = 0
        for _, fully_right in ranked:
            right, wrong = right + fully_right, wrong + (not fully_right)
            if wrong <= budget * total:
                most = max(most, right)
        found[f"{budget:.0%}"] = round(most / max(1, total), 3)
    return found


def _prepare(answerer: Answerer, question: Question):
    """(question, features per passage, passage answers?, answering from it right?, topicality)"""
    text = clean_question(question.question, answerer.settings.engine.max_question_chars)
    judged = answerer.assess(text, question.filters)
    wanted = wanted_places(answerer, question)
    names = answerer.features
    x = np.array([j.evidence.vector(names) for j in judged], dtype=float).reshape(-1, len(names))
    labels = np.array([question.answerable and answers(j, question, wanted) for j in judged])
    right = [question.answerable and _fully_right(question, wanted, answerer, [j]) for j in judged]
    dense = max((j.evidence.values["dense"] for j in judged), default=0.0)
    return question, x, labels, right, dense


def _fit(prepared) -> tuple[np.ndarray, float]:
    x = np.vstack([p[1] for p in prepared if len(p[1])])
    y = np.concatenate([p[2] for p in prepared if len(p[1])]).astype(float)
    return fit_logistic(x, y)


# ---- output --------------------------------------------------------------------------------


def render_report(reports: dict) -> str:
    lines = []
    for name, r in reports.items():
        if name == "fit":
            lines.append(f"fit: {json.dumps(r)}")
            continue
        lines.append(
            f"{name}: {r['questions']} questions ({r['answerable']} answerable). "
            f"Fully right {r['fully_right_of_answerable']:.1%} of answerable; wrong answers "
            f"{r['wrong_answers_of_all']:.1%} of all; declined {r['declined_of_answerable']:.1%} "
            f"of answerable ({r['declined_with_fact_shown_of_answerable']:.1%} with the fact "
            f"among the passages shown); near-misses declined {r['near_misses_declined']:.1%}; "
            f"off-topic "
            f"declined {r['off_topic_declined']:.1%}. Ranked hit@1 {r['hit@1']:.3f} hit@3 "
            f"{r['hit@3']:.3f} hit@5 {r['hit@5']:.3f} MRR {r['mrr']:.3f} (retrieval order "
            f"hit@1 {r['retrieval_hit@1']:.3f} hit@3 {r['retrieval_hit@3']:.3f})"
        )
        lines.append(f"  {'kind':16}" + "".join(f"{o:>15}" for o in OUTCOMES))
        for kind, counts in r["by_kind"].items():
            lines.append(f"  {kind:16}" + "".join(f"{counts[o]:>15}" for o in OUTCOMES))
        lines.append("  risk-coverage:  threshold  answered  wrong  fully right (shares of all)")
        for row in r["risk_coverage"]:
            lines.append(
                f"  {'':14}{row['threshold']:>9.3f}{row['answered']:>10.3f}{row['wrong']:>7.3f}"
                f"{row['fully_right']:>13.3f}"
            )
    return "\n".join(lines)


def risk_coverage_svg(curves: dict[str, list[dict]], width: int = 480, height: int = 320) -> str:
    """The risk-coverage curves as a small SVG plot (answered share -> wrong-answer share)."""
    pad = 48
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]

    def xy(row: dict) -> tuple[float, float]:
        x = pad + row["answered"] * (width - 2 * pad)
        y = height - pad - min(1.0, row["wrong"] / 0.5) * (height - 2 * pad)
        return round(x, 1), round(y, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">answered share of all '
        "questions</text>",
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" '
        'text-anchor="middle">wrong answers, share of all (0 to 0.5)</text>',
    ]
    for i, (name, rows) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        points = " ".join(f"{x},{y}" for x, y in (xy(r) for r in sorted(rows, key=_answered)))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')  # fmt: skip
        parts.append(f'<text x="{pad + 8}" y="{pad + 14 * (i + 1)}" fill="{colour}">'
                     f"{_xml(name)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _answered(row: dict) -> float:
    return row["answered"]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
