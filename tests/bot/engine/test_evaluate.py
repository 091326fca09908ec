"""`clerk eval`: hit-rate and abstention figures computed from a real question set and index."""

from __future__ import annotations

import json

import numpy as np

from bot.cli.main import main
from bot.engine.combiner import best_answer_threshold, fit_logistic
from bot.engine.evaluate import load_questions, run, summarise, within_budgets

BRADFORD = (
    "bradford/area-committee/"
    "Protecting vulnerable children and adults at risk of exploitation - agenda item.txt"
)
LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
QUESTIONS = [
    {
        "id": "a1",
        "question": "How much would the Lib Dem amendment add to the LEVI project?",
        "answerable": True,
        "expected": [{"source": LEVI, "page": 1}],
        "answer_contains": ["2.149m"],
    },
    {
        "id": "a2",
        "question": "Which Invicta House floors would the LEVI amendment stop refurbishing?",
        "answerable": True,
        "expected": [{"source": LEVI, "page": 1}],
    },
    {
        "id": "n1",
        "question": "How many children went missing in Bradford in 2019?",
        "answerable": False,
        "expected": [],
    },
]


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_outcomes_on_a_small_set(answerer, tmp_path):
    questions = load_questions(_write(tmp_path / "q.jsonl", QUESTIONS))

    report = summarise(run(answerer, questions))

    assert report["hit@1"] == 1.0 and report["mrr"] == 1.0
    assert report["by_kind"]["-"]["right_decline"] == 1  # the 2019 Bradford figure is not there
    assert report["fully_right_of_answerable"] + report["declined_of_answerable"] <= 1.0
    assert report["risk_coverage"][0]["answered"] == 1.0  # the lowest threshold answers all


def test_a_decline_that_still_shows_the_fact_is_counted(answerer, tmp_path):
    from bot.engine.answer import Answerer

    questions = load_questions(_write(tmp_path / "q.jsonl", QUESTIONS))
    cautious = Answerer(answerer.settings.replaced(CLERK_ANSWER_THRESHOLD="1"), answerer.searcher)

    report = summarise(run(cautious, questions))

    assert report["declined_of_answerable"] == 1.0
    # both answerable questions' passages are among the nearest shown with the decline
    assert report["declined_with_fact_shown_of_answerable"] == 1.0
    bold = Answerer(answerer.settings.replaced(CLERK_ANSWER_THRESHOLD="0"), answerer.searcher)
    assert summarise(run(bold, questions))["declined_with_fact_shown_of_answerable"] == 0.0


def test_an_answer_from_the_wrong_paper_is_never_fully_right(answerer, tmp_path):
    wrong = [dict(QUESTIONS[0], expected=[{"source": BRADFORD, "page": None}])]
    [trial] = run(answerer, load_questions(_write(tmp_path / "q.jsonl", wrong)))
    assert trial.rank is None and not trial.right_if_answered
    assert trial.outcome in ("wrong_answer", "false_decline")


def test_cli_eval_baselines_json_and_plot(engine_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    path = _write(tmp_path / "q.jsonl", QUESTIONS)
    plot = tmp_path / "risk.svg"

    assert main(["eval", str(path), "--baselines", "--json", "--plot", str(plot)]) == 0

    reports = json.loads(capsys.readouterr().out)
    assert set(reports) == {"hybrid", "bm25", "dense"}
    assert all(0.0 <= r["wrong_answers_of_all"] <= 1.0 for r in reports.values())
    assert plot.read_text().startswith("<svg") and "polyline" in plot.read_text()


def test_fitting_on_the_frozen_test_set_is_refused(engine_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    frozen = tmp_path / "eval" / "test"
    frozen.mkdir(parents=True)
    path = _write(frozen / "questions.jsonl", QUESTIONS)
    assert main(["eval", str(path), "--fit"]) == 2
    assert "frozen test set" in capsys.readouterr().err


def test_the_answer_threshold_keeps_wrong_answers_within_the_risk_budget():
    right = [(0.9 - i / 1000, True) for i in range(60)]
    wrong = [(0.95, False), (0.5, False), (0.4, False), (0.3, False)]
    # 100 questions, 3% budget: the 0.95 wrong answer fits, the 0.5 one would be the fourth...
    threshold = best_answer_threshold(right + wrong, total=100)
    assert 0.3 < threshold <= 0.84  # answers every right one above it, at most 3 wrong
    assert sum(1 for c, r in wrong if c >= threshold) <= 3
    assert best_answer_threshold([(0.9, False)] * 10, total=10) == 1.0  # never fits: never answer


def test_the_budget_curve_counts_right_answers_before_wrong_ones_exceed_each_budget():
    ranked = [(0.9, True), (0.8, False), (0.7, True), (0.6, False), (0.5, True), (0.4, True)]
    # of 50 questions: 3% allows one wrong answer (two right before the second), 5% two (all)
    assert within_budgets(ranked, total=50) == {"3%": 0.04, "5%": 0.08, "10%": 0.08}
    # the order comes from the chances, not from the list
    assert within_budgets(ranked[::-1], total=50) == {"3%": 0.04, "5%": 0.08, "10%": 0.08}
    assert within_budgets([(0.9, False)] * 5, total=10) == {"3%": 0.0, "5%": 0.0, "10%": 0.0}


def test_logistic_fit_learns_which_feature_tells():
    rng = np.random.default_rng(0)
    x = rng.random((400, 2))
    y = (x[:, 0] > 0.5).astype(float)
    weights, _ = fit_logistic(x, y)
    assert weights[0] > 5 and abs(weights[1]) < 1


def test_malformed_question_file_is_a_clear_error(tmp_path, engine_settings, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no answerable field"}\n')
    assert main(["eval", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
