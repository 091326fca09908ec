"""`clerk eval`: hit-rate and abstention figures computed from a real question set and index."""

from __future__ import annotations

import json

from bot.cli.main import main
from bot.engine.evaluate import _best_threshold, evaluate, load_questions

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


def test_figures_on_a_small_set(answerer, tmp_path):
    questions = load_questions(_write(tmp_path / "q.jsonl", QUESTIONS))

    report = evaluate(answerer, questions)

    assert report["hit@5"] == 1.0 and report["hit@1"] == 1.0 and report["mrr"] == 1.0
    assert report["declined_rate_unanswerable"] == 1.0
    assert report["answered_rate_answerable"] == 1.0
    assert report["answer_contains_rate"] == 1.0


def test_a_wrong_expected_source_counts_as_a_miss(answerer, tmp_path):
    wrong = [dict(QUESTIONS[0], expected=[{"source": LEVI, "page": 2}])]
    report = evaluate(answerer, load_questions(_write(tmp_path / "q.jsonl", wrong)))
    assert report["hit@5"] == 0.0 and report["misses"] == ["a1"]


def test_cli_eval_prints_baselines_as_json(engine_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    path = _write(tmp_path / "q.jsonl", QUESTIONS)

    assert main(["eval", str(path), "--baselines", "--json"]) == 0

    reports = json.loads(capsys.readouterr().out)
    assert set(reports) == {"hybrid", "bm25", "dense"}
    assert all(0.0 <= r["hit@5"] <= 1.0 for r in reports.values())


def test_calibration_separates_scores_midway():
    scored = [(0.9, True), (0.8, True), (0.4, False), (0.3, False)]
    best = _best_threshold(scored)
    assert best["threshold"] == 0.6
    assert best["answered_rate"] == 1.0 and best["declined_rate"] == 1.0


def test_malformed_question_file_is_a_clear_error(tmp_path, engine_settings, monkeypatch, capsys):
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no answerable field"}\n')
    assert main(["eval", str(bad)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err
