"""The cross-encoder reader: built by one command from an index of real papers, published whole
or not at all, scored with onnxruntime only, and weighed by the combiner fitted with it.

Training it to be useful takes some 40 minutes (`clerk reader build --recipe cross-encoder`), so
these tests build it for a few steps: what they check is the build, the export and the serving
path, not how well it reads (the real build's held-out figures are in its manifest)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import pytest
from fresh_python import run_python

from bot.cli.main import main
from bot.engine.answer import Answerer
from bot.engine.combiner import fitted_path
from bot.engine.features import READER, READER_BELOW_BEST
from bot.reader.artifact import CROSS_GRAPH, CROSS_RECIPE, MANIFEST, read_manifest
from bot.reader.cross import CrossReader
from bot.reader.cross_build import build_cross
from bot.reader.keep import keep_published_passages
from bot.reader.score import load_reader
from bot.reader.text import passage_texts
from bot.reader.written import written_groups
from bot.types import ANSWERED, DISCUSSED, NOT_FOUND
from indexer.errors import ClerkError
from indexer.store import read_build

QUESTION = "How much LEVI capital funding did the Liberal Democrats' amendment propose?"
LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
QUESTIONS = [
    {
        "id": "a1",
        "question": QUESTION,
        "answerable": True,
        "expected": [{"source": LEVI, "page": 1}],
        "answer_contains": ["2.149m"],
    }
]


WRITTEN = [
    *QUESTIONS,
    {
        "id": "w2",
        "question": "What did the Lib Dems want to spend on chargepoints in 2025-26?",
        "answerable": True,
        "expected": [{"source": LEVI, "page": 1}],
        "answer_contains": ["2.149m"],
    },
    {"id": "w3", "question": "How many chargepoints are in Bradford?", "answerable": False},
]


@pytest.fixture(scope="session")
def built_cross(tmp_path_factory, shared_index, encoders_dir):
    """A cross-encoder fine-tuned for a few steps on the sample index (about 20 s of CPU)."""
    folder = tmp_path_factory.mktemp("cross")
    settings = shared_index.replaced(
        CLERK_READER="1", CLERK_READER_DIR=folder, CLERK_ENCODER_DIR=encoders_dir
    )
    written = tmp_path_factory.mktemp("train") / "questions.jsonl"
    written.write_text("".join(json.dumps(q) + "\n" for q in WRITTEN), encoding="utf-8")
    manifest = build_cross(
        settings, questions=60, steps=6, max_seconds=300, seed=13, say=print, written=(written,)
    )
    return settings, manifest


def test_the_build_publishes_a_graph_that_scores_as_the_trained_model(built_cross):
    settings, manifest = built_cross
    assert manifest.recipe == CROSS_RECIPE
    assert read_manifest(settings.reader_folder) == manifest
    kinds = ("positive", "near_miss", "other_paper_bm25", "same_paper")
    assert all(manifest.pairs[kind] > 0 for kind in kinds), manifest.pairs
    assert manifest.pairs["written_questions"] == 2  # the two answerable ones people wrote
    assert manifest.held_out["steps"] == 6 and manifest.held_out["groups"] >= 1
    assert len(manifest.curve) == 6  # the loss recorded as it went
    # the published graph (int8 only where it agreed) gives the trained model's scores
    assert manifest.agreement["correlation"] >= 0.995, manifest.agreement


def test_a_reader_folder_without_its_manifest_or_graph_is_not_a_reader(built_cross, tmp_path):
    settings, _ = built_cross
    for missing in (MANIFEST, CROSS_GRAPH):
        folder = tmp_path / missing
        shutil.copytree(settings.reader_folder, folder)
        (folder / missing).unlink()
        assert read_manifest(folder) is None
        assert load_reader(settings.replaced(CLERK_READER_DIR=folder)) is None


def test_scores_are_chances_that_do_not_depend_on_the_other_passages_read(built_cross, searcher):
    settings, _ = built_cross
    reader = load_reader(settings)
    assert isinstance(reader, CrossReader)
    hits = searcher.search(QUESTION, k=8)
    together = reader.score(QUESTION, hits)
    assert len(together) == len(hits) and all(0.0 < c < 1.0 for c in together)
    # read alone, or beside the longest passages, each passage gets the same chance: padding
    # a batch must not change a score
    alone = [reader.score(QUESTION, [hit])[0] for hit in hits]
    assert together == pytest.approx(alone, abs=1e-6)
    assert len(set(round(c, 4) for c in together)) > 1  # passages are told apart


def test_the_answerer_weighs_the_cross_encoder_with_the_combiner_fitted_with_it(
    built_cross, embedder, tmp_path
):
    settings, _ = built_cross
    home = tmp_path / "home"
    home.mkdir()
    (home / "index").symlink_to(settings.index.index_dir.resolve())
    served = settings.replaced(CLERK_HOME=home)
    answerer = Answerer.from_settings(served, embedder)
    assert isinstance(answerer.reader, CrossReader)
    assert fitted_path(CROSS_RECIPE).is_file()  # fitted on dev by `clerk eval --fit`
    assert set(answerer.combiner.weights) >= {READER, READER_BELOW_BEST}
    judged = answerer.assess(QUESTION)
    read = [j for j in judged if j.evidence.values[READER] > 0]
    assert 1 <= len(read) <= 8  # only the shortlist is read
    assert judged == sorted(judged, key=lambda j: j.chance, reverse=True)
    reply = answerer.answer(QUESTION)
    assert reply.kind in {ANSWERED, DISCUSSED, NOT_FOUND} and 0 <= reply.confidence <= 1


def test_an_index_run_keeps_nothing_for_a_cross_encoder(built_cross, caplog):
    settings, _ = built_cross
    with caplog.at_level(logging.INFO):
        assert keep_published_passages(settings) is None
    assert not list(settings.reader_folder.glob("passages.sqlite3*"))


SERVING = """
import json, sys
from bot.engine.answer import Answerer
from bot.settings import Settings
answerer = Answerer.from_settings(Settings.from_env())
reply = answerer.answer(sys.argv[1])
heavy = ("torch", "sentence_transformers", "transformers")
print(json.dumps({"reader": type(answerer.reader).__name__, "kind": reply.kind,
                  "heavy": [m for m in heavy if m in sys.modules]}))
"""


def test_answering_with_the_cross_encoder_never_imports_torch(built_cross, encoders_dir, tmp_path):
    settings, _ = built_cross
    run = run_python(
        SERVING,
        QUESTION,
        cwd=tmp_path,
        CLERK_HOME=str(settings.home),
        CLERK_READER="1",
        CLERK_READER_DIR=str(settings.reader_folder),
        CLERK_ENCODER_DIR=str(encoders_dir),
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["reader"] == "CrossReader"
    assert json.loads(run.stdout)["heavy"] == []


def test_eval_compares_with_and_without_the_reader_in_one_run(
    built_cross, tmp_path, monkeypatch, capsys
):
    settings, _ = built_cross
    monkeypatch.setenv("CLERK_HOME", str(settings.home))
    monkeypatch.setenv("CLERK_READER_DIR", str(settings.reader_folder))
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps(QUESTIONS[0]) + "\n", encoding="utf-8")
    plot = tmp_path / "risk.svg"

    assert main(["eval", str(questions), "--compare-reader", "--json", "--plot", str(plot)]) == 0

    reports = json.loads(capsys.readouterr().out)
    assert set(reports) == {"hybrid", "hybrid-no-reader"}
    assert all(r["questions"] == 1 for r in reports.values())
    assert plot.read_text().count("<polyline") == 2  # both curves on one plot


@pytest.mark.parametrize("damage", ["truncated", "replaced"])
def test_a_damaged_graph_is_found_at_start_and_clerk_answers_without_it(
    built_cross, embedder, tmp_path, caplog, damage
):
    settings, _ = built_cross
    folder = tmp_path / "reader"
    shutil.copytree(settings.reader_folder, folder)
    graph = folder / CROSS_GRAPH
    if damage == "truncated":  # a copy cut short: not the graph that was built
        graph.write_bytes(graph.read_bytes()[:1000])
    else:  # an unusable file that the manifest vouches for (copied along with it)
        graph.write_bytes(b"not an onnx graph")
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest["sha256"] = hashlib.sha256(b"not an onnx graph").hexdigest()
        (folder / MANIFEST).write_text(json.dumps(manifest))
    off = settings.replaced(CLERK_READER="0")
    without = Answerer.from_settings(off, embedder).answer(QUESTION)
    with caplog.at_level(logging.INFO):
        answerer = Answerer.from_settings(settings.replaced(CLERK_READER_DIR=folder), embedder)
    assert answerer.reader is None
    assert "deciding with the combiner alone" in caplog.text and str(graph) in caplog.text
    assert answerer.answer(QUESTION) == without


def test_questions_people_wrote_train_against_what_ranks_high_without_the_fact(
    built_cross, tmp_path
):
    settings, _ = built_cross
    written = tmp_path / "train" / "questions.jsonl"
    written.parent.mkdir()
    written.write_text("".join(json.dumps(q) + "\n" for q in WRITTEN), encoding="utf-8")
    contents = read_build(settings.index.index_dir)
    texts = passage_texts(contents)

    groups = written_groups(settings, contents, [written], seed=13, say=print)

    assert [g.question for g in groups] == [q["question"] for q in WRITTEN if q["answerable"]]
    for group in groups:
        assert "2.149m" in texts[group.passage]
        assert group.negatives and all("2.149m" not in texts[n] for n in group.negatives)
        assert group.passage not in group.negatives


def test_training_on_the_dev_or_frozen_test_questions_is_refused(built_cross, tmp_path):
    settings, _ = built_cross
    contents = read_build(settings.index.index_dir)
    for judged_by in ("dev", "test"):
        path = tmp_path / "eval" / judged_by / "questions.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(QUESTIONS[0]) + "\n", encoding="utf-8")
        with pytest.raises(ClerkError, match="refusing to train"):
            written_groups(settings, contents, [path], seed=13, say=print)


def test_the_build_command_trains_on_the_written_questions_the_setting_names(
    built_cross, encoders_dir, tmp_path, monkeypatch, capsys
):
    settings, _ = built_cross
    written = tmp_path / "train" / "questions.jsonl"
    written.parent.mkdir()
    written.write_text("".join(json.dumps(q) + "\n" for q in WRITTEN), encoding="utf-8")
    monkeypatch.setenv("CLERK_HOME", str(settings.home))
    monkeypatch.setenv("CLERK_ENCODER_DIR", str(encoders_dir))
    monkeypatch.setenv("CLERK_READER_WRITTEN", str(tmp_path / "train" / "*.jsonl"))
    small = ["--questions", "40", "--steps", "2", "--json"]

    def build(*options: str) -> dict:
        monkeypatch.setenv("CLERK_READER_DIR", str(tmp_path / f"reader{len(options)}"))
        assert main(["reader", "build", *options, *small]) == 0
        return json.loads(capsys.readouterr().out)["pairs"]

    assert build()["written_questions"] == 2  # by default: the build the combiner was fitted with
    assert "written_questions" not in build("--written")  # asked for mined questions only
