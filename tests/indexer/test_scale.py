"""Scaling the index: the FAISS type chosen by size and recorded in the build, HNSW answering as
the exact search does, BM25 served from memory-mapped arrays, refresh after the switch."""

from __future__ import annotations

import shutil
from difflib import get_close_matches

import faiss
import numpy as np
from scipy import sparse

from bot.settings import Settings
from indexer.bm25 import BM25Index
from indexer.lexical import passage_text, tokenize
from indexer.refresh import refresh
from indexer.search import LoadedIndex, Searcher, rank
from indexer.store import build_dir_of, lexical_index, publish, read_build
from indexer.types import HNSW, DenseSpec, SearchFilters
from tests.conftest import REPO_CORPUS, copy_sample

LEVI = "kent/full_council/2025-02-13/3 - Amendment - Liberal Democrats - LEVI capital funding.pdf"
BRADFORD = "bradford/area-committee"
JANUARY = "kent/full_council/2025-01-09"
QUESTIONS = (
    "How much LEVI capital funding did the Liberal Democrats' amendment propose?",
    "What did the area committee resolve about child sexual exploitation?",
    "What was decided about devolution and local government reorganisation?",
    "Who chaired the County Council meeting in January 2025?",
    "24/00109 decision",
    "What questions were asked by members at full council?",
)


def _reference_bm25(texts: list[str]) -> tuple[dict[str, int], sparse.csr_matrix, np.ndarray]:
    """BM25 exactly as Clerk computed it before the table moved to disk: a term-by-passage
    scipy matrix of weights held in memory."""
    k1, b = 1.2, 0.75
    vocabulary: dict[str, int] = {}
    rows, cols, counts = [], [], []
    lengths = np.zeros(len(texts), dtype=np.float32)
    for doc, text in enumerate(texts):
        tokens = tokenize(text)
        lengths[doc] = len(tokens)
        for term in dict.fromkeys(tokens):
            rows.append(vocabulary.setdefault(term, len(vocabulary)))
            cols.append(doc)
            counts.append(tokens.count(term))
    shape = (len(vocabulary), len(texts))
    tf = sparse.csr_matrix((np.array(counts, np.float32), (rows, cols)), shape=shape)
    df = np.diff(tf.indptr).astype(np.float32)
    idf = np.log1p((len(texts) - df + 0.5) / (df + 0.5)).astype(np.float32)
    norm = k1 * (1 - b + b * lengths / max(float(lengths.mean()), 1.0))
    tf = tf.tocoo()
    data = idf[tf.row] * tf.data * (k1 + 1) / (tf.data + norm[tf.col])
    return vocabulary, sparse.csr_matrix((data, (tf.row, tf.col)), shape=shape), idf


def test_bm25_is_served_memory_mapped_with_the_same_scores(shared_index):
    build = build_dir_of(shared_index.index.index_dir)
    contents = read_build(shared_index.index.index_dir)
    texts = [
        passage_text(contents.documents[c.doc_id].committee, c.heading, c.text)
        for c in contents.chunks
    ]
    vocabulary, weights, idf = _reference_bm25(texts)

    served = BM25Index.load(build)

    assert served is not None
    assert isinstance(served.idf, np.memmap)  # read from the build directory, not into memory
    for question in QUESTIONS:
        ids = [vocabulary[t] for t in set(tokenize(question)) if t in vocabulary]
        before = np.asarray(weights[ids].sum(axis=0)).ravel()
        after = served.scores(question)
        np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)
        assert list(np.argsort(-after, kind="stable")[:10]) == list(
            np.argsort(-before, kind="stable")[:10]
        )
        for term in tokenize(question):
            expected = float(idf[vocabulary[term]]) if term in vocabulary else None
            assert served.term_idf(term) == expected
    for slip in ("devolutoin", "amendmnet", "exploitaton", "zzzzzzz"):
        nearby = [w for w in vocabulary if w.isalpha() and w[0] == slip[0]]
        nearby = [w for w in nearby if abs(len(w) - len(slip)) <= 1]
        assert served.spelled(slip) == next(iter(get_close_matches(slip, nearby, 1, 0.86)), slip)
    rows = [0, 1, 2, len(texts) - 1]
    assert served.passage_terms(rows) == {t for i in rows for t in tokenize(texts[i])}


def _settings(tmp_path, corpus, **env) -> Settings:
    return Settings.from_env({}, CLERK_HOME=tmp_path / "home", CLERK_CORPUS=corpus, **env)


def test_index_type_switches_at_the_size_threshold_and_is_recorded(tmp_path, embedder):
    corpus = copy_sample(tmp_path / "corpus", (LEVI, BRADFORD))
    small = _settings(tmp_path, corpus)
    refresh(small.index, [corpus], embedder)
    passages = len(read_build(small.index.index_dir).chunks)
    assert read_build(small.index.index_dir).params.dense == DenseSpec()  # flat: exact

    lowered = _settings(
        tmp_path / "lowered", corpus, CLERK_FLAT_MAX_PASSAGES=str(passages - 1), CLERK_HNSW_M="16"
    )
    refresh(lowered.index, [corpus], embedder)

    params = read_build(lowered.index.index_dir).params
    assert params.dense == DenseSpec(HNSW, 16, 400, 2048)
    stored = faiss.read_index(str(build_dir_of(lowered.index.index_dir) / "dense.faiss"))
    assert isinstance(stored, faiss.IndexHNSWFlat) and stored.ntotal == passages
    assert stored.hnsw.efSearch == 2048 and stored.hnsw.efConstruction == 400
    # served as it was built, whatever the serving process's own settings
    loaded = LoadedIndex.load(lowered.index.index_dir)
    assert isinstance(loaded.served.dense_index, faiss.IndexHNSWFlat)


def test_hnsw_build_finds_the_same_top_passage_as_flat(tmp_path, shared_index, searcher, embedder):
    contents = read_build(shared_index.index.index_dir)
    home = tmp_path / "hnsw-home"
    publish(home, contents, lexical_index(contents), DenseSpec(HNSW, 16, 64, 64))
    approximate = Searcher(home / "index", embedder)
    assert approximate.index.served.params.dense.kind == HNSW

    for question in QUESTIONS:
        for mode in ("dense", "hybrid"):
            exact = searcher.search(question, k=3, mode=mode)
            found = approximate.search(question, k=3, mode=mode)
            assert found[0].chunk_id == exact[0].chunk_id, (question, mode)
            assert found[0].text == exact[0].text
    only = SearchFilters(committee="Area Committee")
    exact = searcher.search("funding for children", only, k=3, mode="dense")
    found = approximate.search("funding for children", only, k=3, mode="dense")
    assert [h.chunk_id for h in found] == [h.chunk_id for h in exact]
    assert all(h.committee == "Area Committee" for h in found)


def _finds_itself(settings: Settings) -> set[str]:
    """Every passage, searched by its own vector on the dense path alone, comes back first;
    returns the documents served."""
    contents = read_build(settings.index.index_dir)
    index = LoadedIndex.load(settings.index.index_dir)
    assert index.served.dense_index.ntotal == len(contents.chunks)
    for row in range(0, len(contents.chunks), 3):
        vector = np.asarray(contents.vectors[row])
        hits = rank(index, "", vector, k=1, mode="dense")
        assert hits[0].chunk_id == contents.chunks[row].chunk_id, row
    return set(contents.documents)


def test_refresh_after_the_switch_adds_and_removes_passages_correctly(tmp_path, embedder):
    corpus = copy_sample(tmp_path / "corpus", (LEVI, BRADFORD))
    settings = _settings(tmp_path, corpus, CLERK_FLAT_MAX_PASSAGES="10")
    refresh(settings.index, [corpus], embedder)
    before = _finds_itself(settings)

    shutil.copytree(REPO_CORPUS / JANUARY, corpus / JANUARY)  # new papers: vectors appended
    added = refresh(settings.index, [corpus], embedder)
    assert added.added > 0 and read_build(settings.index.index_dir).params.dense.kind == HNSW
    grown = _finds_itself(settings)
    assert grown > before

    (corpus / LEVI).unlink()  # a paper withdrawn: rows move, the graph is rebuilt
    removed = refresh(settings.index, [corpus], embedder)
    assert removed.removed == 1
    left = _finds_itself(settings)
    assert len(left) == len(grown) - 1
    searcher = Searcher(settings.index.index_dir, embedder)
    hits = searcher.search("LEVI capital funding amendment Liberal Democrats", k=10, mode="dense")
    assert hits and not any(h.source == LEVI for h in hits)


def test_a_refresh_counts_only_new_passages_and_scores_as_counting_all(tmp_path, embedder, caplog):
    corpus = copy_sample(tmp_path / "corpus", (LEVI, BRADFORD))
    settings = _settings(tmp_path, corpus)
    refresh(settings.index, [corpus], embedder)
    shutil.copytree(REPO_CORPUS / JANUARY, corpus / JANUARY)
    (corpus / LEVI).unlink()

    with caplog.at_level("INFO", logger="indexer.store"):
        refresh(settings.index, [corpus], embedder)

    contents = read_build(settings.index.index_dir)
    kept = sum(contents.documents[c.doc_id].source.startswith("bradford/") for c in contents.chunks)
    added = len(contents.chunks) - kept
    assert f"BM25: {kept} passages counted before, {added} new" in caplog.messages
    texts = [
        passage_text(contents.documents[c.doc_id].committee, c.heading, c.text)
        for c in contents.chunks
    ]
    vocabulary, weights, idf = _reference_bm25(texts)
    served = BM25Index.load(build_dir_of(settings.index.index_dir))
    assert served is not None
    assert len(served.terms) == len(vocabulary)  # terms only the withdrawn paper used are gone
    for question in (*QUESTIONS, "LEVI capital funding"):
        ids = [vocabulary[t] for t in set(tokenize(question)) if t in vocabulary]
        before = np.asarray(weights[ids].sum(axis=0)).ravel()
        np.testing.assert_allclose(served.scores(question), before, rtol=1e-6, atol=1e-6)
        for term in tokenize(question):
            expected = float(idf[vocabulary[term]]) if term in vocabulary else None
            assert served.term_idf(term) == expected
