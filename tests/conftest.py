"""Shared fixtures: a real index of real committee papers, built once per test session.

The index is built with the real bundled model from a small subset of the repository's corpus/;
each test gets its own data directory whose `index` link points at that shared build, so request
stores and state never leak between tests. The int8 encoder is built from the model once per
session, into a folder every test's CLERK_ENCODER_DIR names.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import paths
import pytest

from bot.settings import Settings
from indexer.settings import BUNDLED_MODEL, IndexSettings

REPO_CORPUS = paths.CORPUS
TEST_THRESHOLD = 0.1  # the sample's near-miss and off-topic questions score under 0.05

# A small, varied subset: County Council devolution papers and minutes, one budget amendment,
# the Bradford agenda-item page (plain text, no page numbers).
SAMPLE = (
    "kent/full_council/2025-01-09",
    "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf",
    "bradford/area-committee",
)


def pytest_configure(config):
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def encoders_dir(tmp_path_factory) -> Path:
    """Built encoders for the whole session: the build takes seconds, so it is done once."""
    return tmp_path_factory.mktemp("encoders")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, encoders_dir):
    """No test sees the developer's Clerk or Slack settings."""
    for name in list(os.environ):
        if name.startswith(("CLERK_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLERK_ENCODER_DIR", str(encoders_dir))


def copy_sample(destination: Path, parts: tuple[str, ...] = SAMPLE) -> Path:
    """Copy parts of the repository's corpus (folders or single files, with their meeting.json)."""
    if not REPO_CORPUS.is_dir():
        pytest.fail(f"the sample corpus is missing at {REPO_CORPUS}")
    for part in parts:
        source = REPO_CORPUS / part
        target = destination / part
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            shutil.copy2(source.parent / "meeting.json", target.parent / "meeting.json")
    return destination


@pytest.fixture(scope="session")
def embedder(encoders_dir):
    """The real bundled all-MiniLM-L6-v2 as Clerk runs it by default, loaded once."""
    from indexer.embed import embedder_for

    return embedder_for(IndexSettings.from_env({"CLERK_ENCODER_DIR": str(encoders_dir)}))


@pytest.fixture(scope="session")
def fp32_embedder():
    """The same model on torch in fp32, as published: the reference the int8 encoder must match."""
    from indexer.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(BUNDLED_MODEL)


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    return copy_sample(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory, sample_corpus, embedder) -> Settings:
    """Settings whose data directory holds an index of the sample corpus, built once."""
    from indexer.refresh import refresh

    home = tmp_path_factory.mktemp("shared-home")
    settings = Settings.from_env({}, CLERK_HOME=home, CLERK_CORPUS=sample_corpus)
    summary = refresh(settings.index, [sample_corpus], embedder)
    assert summary.published and not summary.failed, summary
    return settings


@pytest.fixture(scope="session")
def searcher(shared_index, embedder):
    from indexer.search import Searcher
    from indexer.store import Params

    expected = Params(embedder.name, embedder.dimension, shared_index.index.chunk_words)
    return Searcher(shared_index.index.index_dir, embedder, expected)


@pytest.fixture
def engine_settings(tmp_path, shared_index) -> Settings:
    """A fresh data directory per test, serving the shared index."""
    home = tmp_path / "clerk-home"
    home.mkdir()
    build = shared_index.index.index_dir.parent / os.readlink(shared_index.index.index_dir)
    (home / "index").symlink_to(build.resolve())
    return Settings.from_env(
        {},
        CLERK_HOME=home,
        CLERK_CORPUS=shared_index.index.corpus,
        # The default threshold keeps wrong answers under 3% on the full corpus and is measured
        # by `clerk eval`; on this small sample the tests fix one that answers its plain
        # questions, so they can check what an answer looks like and where it goes.
        CLERK_ANSWER_THRESHOLD=TEST_THRESHOLD,
    )


@pytest.fixture
def answerer(engine_settings, searcher):
    """The real answering engine over the shared index, with this test's settings."""
    from bot.engine.answer import Answerer

    return Answerer(engine_settings, searcher)
