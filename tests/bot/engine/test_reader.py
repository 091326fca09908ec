"""The learned reader: built by one command from an index of real papers, scoring with
onnxruntime only, and never in the way when it is absent."""

from __future__ import annotations

import json
import logging
import random
import shutil
import sqlite3

import numpy as np
import paths
import pytest
from fresh_python import run_python

from bot.cli.main import main
from bot.engine.answer import Answerer
from bot.reader.artifact import GRAPH, read_manifest
from bot.reader.build import build
from bot.reader.passages import STORE, digest
from bot.reader.questions import near_miss, write_question
from bot.reader.score import Reader, load_reader
from bot.reader.text import passage_texts
from bot.settings import Settings
from indexer.store import read_build

LEVI_QUESTION = "How much LEVI capital funding did the Liberal Democrats' amendment propose?"


@pytest.fixture(scope="session")
def built_reader(tmp_path_factory, shared_index, encoders_dir, embedder):
    """A small reader trained on the sample index (70 questions, 12 epochs; about 30 s of CPU)."""
    folder = tmp_path_factory.mktemp("reader")
    settings = shared_index.replaced(
        CLERK_READER="1", CLERK_READER_DIR=folder, CLERK_ENCODER_DIR=encoders_dir
    )
    manifest = build(settings, questions=240, epochs=12, max_seconds=90, seed=13, say=print)
    return settings, manifest


def test_reader_build_mines_every_kind_of_pair_and_learns(built_reader):
    settings, manifest = built_reader
    assert read_manifest(settings.reader_folder) == manifest
    assert (settings.reader_folder / GRAPH).stat().st_size < 5_000_000
    kinds = ("positive", "near_miss", "other_paper_bm25", "same_paper")
    assert all(manifest.pairs[kind] > 0 for kind in kinds), manifest.pairs
    first, last = manifest.curve[0], manifest.curve[-1]
    assert last["listwise"] < first["listwise"] and last["pointwise"] < first["pointwise"]
    assert manifest.held_out["answering_first"] > 0.5  # of 5 passages: chance is 0.2
    assert manifest.agreement["correlation"] >= 0.995


def test_reader_scores_the_passage_stating_the_figure_above_its_topic(built_reader, searcher):
    settings, _ = built_reader
    reader = load_reader(settings)
    assert isinstance(reader, Reader)
    hits = searcher.search(LEVI_QUESTION, k=8)
    chances = reader.score(LEVI_QUESTION, hits)
    assert len(chances) == len(hits) and all(0.0 <= c <= 1.0 for c in chances)
    best = max(range(len(hits)), key=chances.__getitem__)
    assert "2.149m" in hits[best].text


def _reader_copy(settings, folder, keep_store=True):
    """The built reader in another folder (with or without its kept projections)."""
    shutil.copytree(settings.reader_folder, folder)
    if not keep_store:
        for leftover in folder.glob(f"{STORE}*"):
            leftover.unlink()
    return settings.replaced(CLERK_READER_DIR=folder)


def _make_every_kept_passage_alike(folder):
    """A store gone bad: every passage kept as the same one."""
    with sqlite3.connect(folder / STORE) as db:
        one = db.execute("SELECT tokens, ids, keys, kinds FROM projections LIMIT 1").fetchone()
        db.execute("UPDATE projections SET tokens = ?, ids = ?, keys = ?, kinds = ?", one)


def test_the_build_keeps_every_passage_and_questions_read_them_from_the_store(
    built_reader, searcher, tmp_path
):
    settings, manifest = built_reader
    texts = set(passage_texts(read_build(settings.index.index_dir)))
    with sqlite3.connect(settings.reader_folder / STORE) as db:
        assert db.execute("SELECT count(*) FROM projections").fetchone()[0] == len(texts)
    hits = searcher.search(LEVI_QUESTION, k=8)
    from_store = load_reader(settings).score(LEVI_QUESTION, hits)

    # projected while reading instead (nothing kept): the same chances
    unkept = load_reader(_reader_copy(settings, tmp_path / "unkept", keep_store=False))
    assert np.allclose(unkept.score(LEVI_QUESTION, hits), from_store, atol=0.02)

    # the store is what is read: spoilt, every passage reads alike ...
    assert max(from_store) - min(from_store) > 0.01
    spoilt_settings = _reader_copy(settings, tmp_path / "spoilt")
    _make_every_kept_passage_alike(spoilt_settings.reader_folder)
    spoilt = load_reader(spoilt_settings).score(LEVI_QUESTION, hits)
    assert max(spoilt) - min(spoilt) < 1e-6
    # ... unless it was kept for another build of the reader, which is then never read
    with sqlite3.connect(spoilt_settings.reader_folder / STORE) as db:
        db.execute("UPDATE meta SET value = 'another reader' WHERE key = 'reader'")
    rebuilt = load_reader(spoilt_settings).score(LEVI_QUESTION, hits)
    assert np.allclose(rebuilt, from_store, atol=0.02)


def test_a_damaged_store_slows_the_reader_but_changes_no_score(
    built_reader, searcher, tmp_path, caplog
):
    settings, _ = built_reader
    hits = searcher.search(LEVI_QUESTION, k=8)
    expected = load_reader(settings).score(LEVI_QUESTION, hits)
    damaged = _reader_copy(settings, tmp_path / "damaged", keep_store=False)
    (damaged.reader_folder / STORE).write_bytes(b"not a database, half written" * 100)
    with caplog.at_level(logging.WARNING):
        reader = load_reader(damaged)
        assert reader is not None
        assert np.allclose(reader.score(LEVI_QUESTION, hits), expected, atol=0.02)
    assert "passage store is not usable" in caplog.text


def test_an_index_run_projects_new_passages_and_drops_removed_ones(
    built_reader, tmp_path, monkeypatch, capsys
):
    settings, _ = built_reader
    reader_settings = _reader_copy(settings, tmp_path / "reader")
    corpus = tmp_path / "papers"
    source = next(paths.CORPUS.glob("kent/full_council/*/3 - Amendment*LEVI*.pdf"))
    (corpus / "kent").mkdir(parents=True)
    shutil.copy(source, corpus / "kent" / source.name)
    (corpus / "kent" / "note.txt").write_text(
        "Members asked about the gritting routes. The Cabinet Member confirmed that 62 routes "
        "would be treated this winter, three more than last year.\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CLERK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLERK_READER", "1")
    monkeypatch.setenv("CLERK_READER_DIR", str(reader_settings.reader_folder))

    assert main(["index", str(corpus), "--json"]) == 0

    kept = json.loads(capsys.readouterr().out)["reader"]
    indexed = Settings.from_env().replaced(CLERK_READER_DIR=reader_settings.reader_folder)
    texts = passage_texts(read_build(indexed.index.index_dir))
    assert kept["projected"] >= 1  # the note, new to the reader
    assert kept["projected"] + kept["kept"] == len(set(texts))
    assert kept["dropped"] > 0  # the sample's other papers, gone from this index
    with sqlite3.connect(reader_settings.reader_folder / STORE) as db:
        held = {bytes(d) for (d,) in db.execute("SELECT digest FROM projections")}
    assert held == {digest(t) for t in texts}


def test_on_by_default_but_not_built_clerk_answers_as_with_it_off(
    engine_settings, embedder, caplog
):
    off = engine_settings.replaced(CLERK_READER="0")
    without = Answerer.from_settings(off, embedder).answer(LEVI_QUESTION)
    assert engine_settings.engine.reader  # the default
    with caplog.at_level(logging.INFO):
        answerer = Answerer.from_settings(engine_settings, embedder)
    assert answerer.reader is None
    assert "no reader built" in caplog.text and "clerk reader build" in caplog.text
    assert answerer.answer(LEVI_QUESTION) == without


def test_reader_switched_off_says_so(built_reader, embedder, caplog):
    settings, _ = built_reader
    with caplog.at_level(logging.INFO):
        assert Answerer.from_settings(settings.replaced(CLERK_READER="0"), embedder).reader is None
    assert "reader off" in caplog.text


SERVING = """
import json, sys
from bot.engine.answer import Answerer
from bot.reader.score import load_reader
from bot.settings import Settings
settings = Settings.from_env()
reader = load_reader(settings)
answerer = Answerer.from_settings(settings)
hits = answerer.searcher.search(sys.argv[1], k=8)
chances = reader.score(sys.argv[1], hits)
heavy = ("torch", "sentence_transformers", "transformers")
print(json.dumps({"read": len(chances), "heavy": [m for m in heavy if m in sys.modules]}))
"""


def test_reading_passages_never_imports_torch(built_reader, encoders_dir, tmp_path):
    settings, _ = built_reader
    run = run_python(
        SERVING,
        LEVI_QUESTION,
        cwd=tmp_path,
        CLERK_HOME=str(settings.home),
        CLERK_READER="1",
        CLERK_READER_DIR=str(settings.reader_folder),
        CLERK_ENCODER_DIR=str(encoders_dir),
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"read": 8, "heavy": []}


def test_a_near_miss_changes_a_constraint_the_passage_does_not_hold():
    rng = random.Random(3)
    passage = "Cabinet, 4 March 2025. The net revenue budget for 2025-26 is £1,530.9m."
    question = "What is the net revenue budget for 2025-26?"
    for _ in range(20):
        twin, what = near_miss(question, passage, rng) or ("", "")
        assert twin and twin != question
        changed = set(twin.rstrip("?").split()) - set(passage.replace(".", " ").split())
        assert changed - {"What", "is", "the"}, (twin, what)


def test_a_question_is_written_about_the_stated_figure_without_giving_it_away():
    rng = random.Random(5)
    sentence = "The Council agreed a net revenue budget of £1,530.9m for 2025-26, up by 7.1%."
    made = write_question(sentence, "amount", "£1,530.9m", "County Council", "2025-02-13", rng)
    assert made is not None and made.answer == "£1,530.9m"
    assert "1,530.9" not in made.question
    assert {"budget", "revenue"} & set(made.question.lower().split())
