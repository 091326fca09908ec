"""Benchmark the engine on the full shared corpus and print figures (no pass/fail).

    .venv/bin/python bench/bench_engine.py [--corpus DIR] [--questions FILE.jsonl]

Prints: full index pages/s and chunks/s; the model's raw embedding throughput on the same chunks
(and how close full indexing comes to it); no-change re-index time; cold start to first answer;
warm per-question latency p50/p95 for hybrid and for the BM25-only and dense-only baselines;
peak memory of indexing and of serving. Each heavy step runs in its own process so its peak
memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--questions", type=Path, default=REPO / "eval" / "dev" / "questions.jsonl")
    parser.add_argument(
        "--home", type=Path, help="data directory to use (default: a temporary one)"
    )
    parser.add_argument(
        "--serve-only",
        action="store_true",
        help="only cold start and warm latency, on the index already in --home",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child](args)
    home = args.home or Path(tempfile.mkdtemp(prefix="clerk-bench-"))
    if args.serve_only:
        env = os.environ | {"CLERK_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        print_serving(child("serve", env, corpus=args.corpus, questions=args.questions.resolve()))
        return None
    figures = run_all(args.corpus.resolve(), args.questions.resolve(), home)
    print_figures(figures)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "engine.json").write_text(json.dumps(figures, indent=2))


def run_all(corpus: Path, questions: Path, home: Path) -> dict:
    env = os.environ | {"CLERK_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    full = child("index", env, corpus=corpus)
    again = child("index", env, corpus=corpus)
    embed = child("embed", env, corpus=corpus)
    serve = child("serve", env, corpus=corpus, questions=questions)
    return {
        "full_index": full,
        "no_change_reindex": again,
        "raw_embedding": embed,
        "serving": serve,
    }


def child(name: str, env: dict, **paths: Path) -> dict:
    command = [sys.executable, __file__, "--child", name]
    for key, value in paths.items():
        command += [f"--{key}", str(value)]
    started = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    if out.returncode not in (0, 1):
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    return result


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_index(args) -> None:
    from bot.engine.status import index_status
    from bot.requests.service import index_roots
    from bot.settings import Settings
    from indexer.embed import embedder_for
    from indexer.refresh import refresh

    settings = Settings.from_env(CLERK_CORPUS=args.corpus)
    embedder = embedder_for(settings.index)  # CLERK_ENCODER's; child_embed stays fp32 torch
    started = time.perf_counter()
    summary = refresh(settings.index, index_roots(settings, [args.corpus]), embedder)
    seconds = time.perf_counter() - started
    status = index_status(settings)
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "pages": status["pages"],
                "chunks": status["chunks"],
                "documents": status["documents"],
                "summary": summary.to_dict() | {"failed": len(summary.failed)},
                "pages_per_s": round(status["pages"] / seconds, 1),
                "chunks_per_s": round(status["chunks"] / seconds, 1),
                "peak_mb": _peak_mb(),
            }
        )
    )


def child_embed(args) -> None:
    """The model alone on exactly the texts indexing embedded: the ceiling for indexing speed."""
    from bot.settings import Settings
    from indexer.embed import SentenceTransformerEmbedder
    from indexer.store import read_build

    settings = Settings.from_env()
    contents = read_build(settings.index.index_dir)
    texts = [f"{c.heading}\n{c.text}" for c in contents.chunks]
    embedder = SentenceTransformerEmbedder(settings.index.model)
    embedder.embed(texts[:64])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(texts), 256):
        embedder.embed(texts[start : start + 256])
    seconds = time.perf_counter() - started
    words = sum(len(t.split()) for t in texts)
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "chunks_per_s": round(len(texts) / seconds, 1),
                "words_per_s": round(words / seconds),
                "peak_mb": _peak_mb(),
            }
        )
    )


def child_serve(args) -> None:
    """Cold start to first answer, then warm latency per question for each retrieval mode."""
    started = time.perf_counter()
    from bot.engine.answer import CANDIDATES, Answerer
    from bot.engine.evaluate import load_questions
    from bot.settings import Settings

    answerer = Answerer.from_settings(Settings.from_env())
    answerer.answer("What is the council's budget?")
    cold = time.perf_counter() - started
    questions = [q.question for q in load_questions(args.questions)]
    latency = {}
    for mode in ("hybrid", "bm25", "dense"):
        latency[mode] = _timed(questions, lambda q, mode=mode: answerer.answer(q, mode=mode))
    # retrieval alone: encoding the question and the hybrid search the answer starts from
    latency["retrieval"] = _timed(
        questions, lambda q: answerer.searcher.search(q, k=CANDIDATES, mode="hybrid")
    )
    print(json.dumps({"cold_start_s": round(cold, 2), "latency": latency, "peak_mb": _peak_mb()}))


def _timed(questions: list[str], work) -> dict:
    """Median and 95th percentile of one call per question, in ms."""
    timings = []
    for question in questions:
        t0 = time.perf_counter()
        work(question)
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    return {
        "p50_ms": round(statistics.median(timings), 1),
        "p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
        "questions": len(timings),
    }


CHILDREN = {"index": child_index, "embed": child_embed, "serve": child_serve}


def print_figures(f: dict) -> None:
    full, again, embed, serve = (
        f["full_index"],
        f["no_change_reindex"],
        f["raw_embedding"],
        f["serving"],
    )
    print(
        f"corpus: {full['documents']} documents, {full['pages']} pages, {full['chunks']} passages"
    )
    print(
        f"full index:          {full['seconds']:7.1f} s  {full['pages_per_s']:6.1f} pages/s  "
        f"{full['chunks_per_s']:6.1f} chunks/s  peak {full['peak_mb']:.0f} MB"
    )
    print(
        f"raw embedding only:  {embed['seconds']:7.1f} s  {embed['chunks_per_s']:6.1f} chunks/s  "
        f"{embed['words_per_s']} words/s"
    )
    print(
        f"  full indexing runs at {embed['seconds'] / full['seconds']:.0%} of the model's raw "
        f"throughput (embedding is {embed['seconds']:.0f} s of {full['seconds']:.0f} s)"
    )
    print(
        f"no-change re-index:  {again['seconds']:7.2f} s  (process incl. model load "
        f"{again['process_seconds']:.1f} s; {again['summary']['unchanged']} unchanged)"
    )
    print_serving(serve)


def print_serving(serve: dict) -> None:
    print(
        f"cold start to first answer: {serve['cold_start_s']:.1f} s (target < 2 s); "
        f"serving peak {serve['peak_mb']:.0f} MB (target < 400 MB)"
    )
    for mode, lat in serve["latency"].items():
        print(
            f"warm {mode:9}: p50 {lat['p50_ms']:6.1f} ms  p95 {lat['p95_ms']:6.1f} ms  "
            f"({lat['questions']} questions)"
        )
    retrieval = serve["latency"]["retrieval"]["p95_ms"]
    print(f"retrieval p95 / target 15 ms: {retrieval / 15:.2f}")


if __name__ == "__main__":
    main()
