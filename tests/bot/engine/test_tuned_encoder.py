"""`clerk encoder tune`: the retrieval model fine-tuned on written questions, written whole into a
new folder, then indexed and answered with as the operator would (CLERK_MODEL, `clerk index`).

Tuning to be useful takes some 13 minutes; here it runs one step on the sample index: what these
tests check is the command, the published folder and the path from it to an answer."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bot.cli.main import main
from bot.engine.answer import Answerer
from bot.engine.combiner import fitted_path
from indexer.embed import TUNED_MANIFEST, is_tuned, resolve_model_path
from indexer.settings import BUNDLED_MODEL
from tests.conftest import TEST_THRESHOLD

LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
ASKED = "What did the Lib Dems want to spend on chargepoints in 2025-26?"
WRITTEN = [
    {
        "id": "w1",
        "question": ASKED,
        "answerable": True,
        "expected": [{"source": LEVI, "page": 1}],
        "answer_contains": ["2.149m"],
    },
    {
        "id": "w2",
        "question": "How many chargepoints are in Bradford?",
        "answerable": False,
    },
    {
        "id": "w3",
        "question": "Which floors of Invicta House would the Liberal Democrats stop refitting?",
        "answerable": True,
        "expected": [{"source": LEVI, "page": 1}],
        "answer_contains": ["3rd and 4th floor"],
    },
]


@pytest.fixture
def operator(engine_settings, encoders_dir, tmp_path, monkeypatch):
    """The environment `clerk` runs in: the test's data directory and the written questions."""
    written = tmp_path / "train" / "questions.jsonl"
    written.parent.mkdir()
    written.write_text("".join(json.dumps(q) + "\n" for q in WRITTEN), encoding="utf-8")
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    monkeypatch.setenv("CLERK_CORPUS", str(engine_settings.index.corpus))
    monkeypatch.setenv("CLERK_ENCODER_DIR", str(encoders_dir))
    monkeypatch.setenv("CLERK_READER_WRITTEN", str(written))
    monkeypatch.setenv("CLERK_ANSWER_THRESHOLD", str(TEST_THRESHOLD))
    return engine_settings


def test_a_tuned_model_is_published_whole_then_indexed_and_answered_with(
    operator, monkeypatch, capsys, caplog
):
    assert main(["encoder", "tune", "--epochs", "16", "--json"]) == 0  # 2 questions: one step
    folder = Path(json.loads(capsys.readouterr().out)["folder"])
    record = json.loads((folder / TUNED_MANIFEST).read_text())
    weights = (folder / "model.safetensors").read_bytes()
    assert folder.parent == operator.home / "models"
    assert folder.name == f"tuned-{record['sha256'][:12]}"
    assert hashlib.sha256(weights).hexdigest() == record["sha256"]
    assert (record["questions"], record["steps"], record["base"]) == (2, 1, BUNDLED_MODEL)
    assert not list(folder.parent.glob(".tuning-*"))  # no scratch left behind
    assert is_tuned(str(folder)) and not is_tuned(BUNDLED_MODEL)
    assert _cosine(folder, ASKED) > _cosine(resolve_model_path(BUNDLED_MODEL), ASKED)

    monkeypatch.setenv("CLERK_MODEL", str(folder))
    assert main(["index", "--json"]) == 0
    indexed = json.loads(capsys.readouterr().out)
    assert indexed["added"] > 0 and indexed["unchanged"] == 0  # another model: every paper again
    with caplog.at_level(logging.WARNING):
        assert main(["ask", "--json", ASKED]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert (reply["citations"] or reply["nearest"])[0]["source"] == LEVI  # found with it
    assert "no combiner fitted" not in caplog.text  # shipped, fitted on dev for tuned encoders


def test_the_engine_decides_with_the_combiners_fitted_for_a_tuned_encoder(
    operator, searcher, tmp_path
):
    folder = tmp_path / "models" / "tuned-0123456789ab"
    folder.mkdir(parents=True)
    (folder / TUNED_MANIFEST).write_text("{}")
    answerer = Answerer(operator.replaced(CLERK_MODEL=str(folder)), searcher)
    bundled = Answerer(operator, searcher)
    assert fitted_path(None, tuned=True).is_file()  # fitted on dev by `clerk eval --fit`
    assert answerer.combiner.weights != bundled.combiner.weights


def test_tuning_with_no_written_questions_says_so(operator, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CLERK_READER_WRITTEN", str(tmp_path / "none" / "*.jsonl"))
    assert main(["encoder", "tune"]) != 0
    assert "no written questions" in capsys.readouterr().err
    assert not (operator.home / "models").exists()


def _cosine(model_dir: Path, question: str) -> float:
    """The question against the passage holding its answer, as the model embeds them."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    passage = "Proposed Funding Source: £2.149m to 'top-up' the LEVI capital project funding."
    q, p = model.encode([question, passage], normalize_embeddings=True)
    return float(np.dot(q, p))
