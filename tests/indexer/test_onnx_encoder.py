"""The int8 ONNX encoder: built from the bundled model here, as good as fp32 on real passages,
recorded in the index, and serving questions without torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from fresh_python import run_python

from bot.cli.main import main
from bot.settings import Settings
from indexer.embed import SentenceTransformerEmbedder, embedder_for, resolve_model_path
from indexer.errors import ConfigError, IndexIncompatibleError
from indexer.onnx_encoder import OnnxEmbedder, read_sentence_config
from indexer.refresh import refresh
from indexer.search import Searcher
from indexer.settings import BUNDLED_MODEL
from indexer.store import Params, read_build
from tests.conftest import copy_sample

LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
LEVI_QUESTION = "How much LEVI capital funding did the Liberal Democrats' amendment propose?"
PASSAGES = 48


@pytest.fixture(scope="session")
def onnx_embedder(encoders_dir) -> OnnxEmbedder:
    """The int8 encoder, built (once per session) from the bundled model."""
    settings = Settings.from_env({"CLERK_ENCODER": "onnx-int8", "CLERK_ENCODER_DIR": encoders_dir})
    embedder = embedder_for(settings.index)
    assert isinstance(embedder, OnnxEmbedder)
    embedder.ensure_built()
    return embedder


def test_int8_vectors_keep_the_meaning_of_real_passages(shared_index, onnx_embedder, fp32_embedder):
    chunks = read_build(shared_index.index.index_dir).chunks
    texts = [f"{c.heading}\n{c.text}" for c in chunks[:: max(1, len(chunks) // PASSAGES)]]
    assert len(texts) >= 36  # a few dozen real passages, long and short

    int8 = onnx_embedder.embed(texts)
    fp32 = fp32_embedder.embed(texts)

    assert int8.shape == fp32.shape and int8.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosines = (int8 * fp32).sum(axis=1)
    assert cosines.mean() >= 0.99, cosines.mean()
    assert cosines.min() >= 0.97, cosines.min()
    # Each passage's nearest neighbour by fp32 is among its three nearest by int8 (the first
    # place differs only where fp32 itself has a near tie).
    others = 2 * np.eye(len(texts))
    nearest = (fp32 @ fp32.T - others).argmax(axis=1)
    top3 = np.argsort(-(int8 @ int8.T - others), axis=1)[:, :3]
    assert all(n in row for n, row in zip(nearest, top3, strict=True))


def test_long_passages_are_cut_at_the_model_window_like_fp32(onnx_embedder, fp32_embedder):
    long = "The committee agreed the capital programme for 2025-26. " * 80
    assert onnx_embedder.count_tokens(long) > onnx_embedder.max_tokens == 256
    (int8,), (fp32,) = onnx_embedder.embed([long]), fp32_embedder.embed([long])
    assert float(int8 @ fp32) >= 0.98


def test_an_index_is_never_searched_with_another_encoder(tmp_path, onnx_embedder, fp32_embedder):
    corpus = copy_sample(tmp_path / "corpus", (LEVI,))
    settings = Settings.from_env({}, CLERK_HOME=tmp_path / "home", CLERK_CORPUS=corpus)
    refresh(settings.index, [corpus], onnx_embedder)
    assert read_build(settings.index.index_dir).params.model == f"{BUNDLED_MODEL}#onnx-int8-v1"

    expected = Params(fp32_embedder.name, 384, settings.index.chunk_words)
    with pytest.raises(IndexIncompatibleError, match="onnx-int8"):
        Searcher(settings.index.index_dir, fp32_embedder, expected).search(LEVI_QUESTION)

    again = refresh(settings.index, [corpus], fp32_embedder)  # the other encoder: a full rebuild
    assert (again.added, again.unchanged, again.published) == (1, 0, True)
    assert read_build(settings.index.index_dir).params.model == BUNDLED_MODEL


def test_the_torch_encoder_stays_selectable_and_keeps_its_index_name():
    settings = Settings.from_env({"CLERK_ENCODER": "torch-fp32"})
    embedder = embedder_for(settings.index)
    assert isinstance(embedder, SentenceTransformerEmbedder) and embedder.name == BUNDLED_MODEL


def test_a_model_saved_by_this_sentence_transformers_runs_as_int8_and_cls_pooling_does_not(
    tmp_path,
):
    """An operator's own model (CLERK_MODEL=<folder>) saved by the installed library: version 6
    writes its pooling as `"pooling_mode": "mean"`, which was once refused as not mean-pooled."""
    from sentence_transformers import SentenceTransformer

    saved = tmp_path / "saved"
    SentenceTransformer(str(resolve_model_path(BUNDLED_MODEL)), device="cpu").save(str(saved))
    assert read_sentence_config(saved) == (384, 256)

    pooling = saved / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config = {k: v for k, v in config.items() if not k.startswith("pooling_mode")}
    pooling.write_text(json.dumps({**config, "pooling_mode": "cls"}))
    with pytest.raises(ConfigError, match="does not mean-pool"):
        read_sentence_config(saved)


def test_encoder_build_command_reports_the_built_file(onnx_embedder, encoders_dir, capsys):
    assert main(["encoder", "build", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    model = Path(built["folder"]) / "model.onnx"
    assert Path(built["folder"]).parent == encoders_dir
    assert built["recipe"] == "onnx-int8-v1" and built["dimension"] == 384
    assert hashlib.sha256(model.read_bytes()).hexdigest() == built["sha256"]
    assert model.stat().st_size < 30_000_000  # int8: a quarter of the fp32 weights


SERVING = """
import json, sys
from bot.cli.main import main
assert main(["index", sys.argv[1], "--json"]) == 0
assert main(["ask", "--json", sys.argv[2]]) == 0
import bot.channels.email.app, bot.channels.slack.app  # the other ways questions arrive
import contextlib, io, time
from bot.requests.model import Asker
from bot.requests.service import open_store
from bot.settings import Settings
with open_store(Settings.from_env()) as store:
    store.log("Who will chair the new panel?", Asker("cli", "carol"))
with contextlib.redirect_stdout(io.StringIO()):  # an officer answers: re-indexed, same encoder
    assert main(["requests", "answer", "1", "--text", "Cllr Smith, from May."]) == 0
    assert main(["requests", "close", "1"]) == 0
time.sleep(1.1)  # purge takes what was finished before now, to the second
with contextlib.redirect_stdout(io.StringIO()) as purged:
    # the retention purge drops the answer from the index: re-indexed with the same encoder
    assert main(["requests", "purge", "--older-than", "0"]) == 0
assert "Purged 1 request" in purged.getvalue(), purged.getvalue()
import bot.web.cli  # and the desk, which answers the same way
heavy = ("torch", "sentence_transformers", "transformers")
print(json.dumps({"heavy": [m for m in heavy if m in sys.modules]}))
"""


def test_indexing_and_answering_with_onnx_never_import_torch(tmp_path, onnx_embedder, encoders_dir):
    corpus = copy_sample(tmp_path / "corpus", (LEVI,))
    run = run_python(
        SERVING,
        str(corpus),
        LEVI_QUESTION,
        cwd=tmp_path,
        CLERK_HOME=str(tmp_path / "home"),
        CLERK_ENCODER="onnx-int8",
        CLERK_ENCODER_DIR=str(encoders_dir),
        CLERK_ANSWER_THRESHOLD="0.1",  # as the engine tests: this one-paper corpus answers it
    )
    assert run.returncode == 0, run.stderr
    summary, answer, modules = (json.loads(line) for line in run.stdout.splitlines())
    assert summary["added"] == 1 and summary["published"]
    # the officer's answer was indexed with the index's own encoder, not a second model
    params = json.loads((tmp_path / "home" / "index" / "params.json").read_text())
    assert (
        params["model"]
        == embedder_for(Settings.from_env({"CLERK_ENCODER": "onnx-int8"}).index).name
    )
    assert answer["answered"] and "LEVI" in json.dumps(answer["citations"])
    assert modules == {"heavy": []}
