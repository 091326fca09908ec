"""Benchmark a full index: reading papers beside embedding, against the encoder alone.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_index.py [--corpus DIR] [--workers N]
        [--no-sequential] [--keep DIR]

Prints, from one run on the full shared corpus (by default) with a fresh data directory:
- the int8 encoder's one-time build (a fresh encoders folder), seconds and peak memory;
- extraction alone: the reading pool (CLERK_INDEX_WORKERS processes) reading and cutting every
  paper the index reads, with no model;
- the full index end to end: `clerk index` as a process, model load and publishing included, with
  the peak resident memory of it and its worker processes together, beside the 1 GB target;
- the same with CLERK_INDEX_WORKERS=0 (papers read in the indexing process, as before the pool);
- the raw encoders alone on the index's passages, in the index's slices of 256: the int8 ONNX
  encoder and the fp32 sentence-transformers model;
- ratios: full index / raw fp32 encoder (target <= 0.5), full index / raw int8 encoder.

Each step runs in a fresh process. The machine is shared: the load is printed at the start and
the end, and timings move with it. Figures are also written to bench/results/index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CORPUS, REPO, TreePeak, clerk_env  # first: sys.path

TARGET_MB = 1024
TARGET_RATIO = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--workers", type=int, default=2, help="CLERK_INDEX_WORKERS for the run")
    parser.add_argument("--no-sequential", action="store_true", help="skip the workers=0 index")
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--encoder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return
    with tempfile.TemporaryDirectory(prefix="clerk-bench-index-") as tmp:
        work = (args.keep or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        figures = run_all(args, work)
    print_figures(figures)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "index.json").write_text(json.dumps(figures, indent=2))


def run_all(args, work: Path) -> dict:
    corpus = args.corpus.resolve()
    figures: dict = {"corpus": str(corpus), "workers": args.workers, "load_start": _load()}
    figures["build"] = child(work, "build", args.workers)
    figures["extract"] = child(work, "extract", args.workers, corpus=corpus)
    figures["index"] = index(work / "home", corpus, work, args.workers)
    if not args.no_sequential:
        figures["index_sequential"] = index(work / "home-sequential", corpus, work, 0)
    for encoder in ("onnx-int8", "torch-fp32"):
        figures[f"encode_{encoder}"] = child(work, "encode", args.workers, encoder=encoder)
    figures["load_end"] = _load()
    return figures


def _env(work: Path, home: Path, workers: int, **extra: str) -> dict[str, str]:
    return clerk_env(
        home,
        CLERK_ENCODER_DIR=str(work / "encoders"),
        CLERK_INDEX_WORKERS=str(workers),
        TOKENIZERS_PARALLELISM="false",
        **extra,
    )


def child(work: Path, name: str, workers: int, **options) -> dict:
    """One step in a fresh process, its wall time and the peak memory of it and its children."""
    command = [sys.executable, __file__, "--child", name, "--work", str(work)]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    return _timed(command, _env(work, work / "home", workers))


def index(home: Path, corpus: Path, work: Path, workers: int) -> dict:
    """`clerk index` end to end, as an operator runs it."""
    command = [sys.executable, "-m", "bot.cli.main", "index", str(corpus), "--json"]
    figures = _timed(command, _env(work, home, workers))
    return {k: figures[k] for k in ("added", "duplicates", "chunks", "failed")} | {
        "seconds": figures["seconds"],
        "peak_mb": figures["peak_mb"],
        "processes": figures["processes"],
    }


def _timed(command: list[str], env: dict[str, str]) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(  # noqa: S603 - our own entry points
            command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True
        )
        with TreePeak(process.pid) as peak:
            out, _ = process.communicate()
        if process.returncode not in (0, 1):  # 1: `clerk index` found papers it could not read
            err.seek(0)
            raise SystemExit(f"{command[2:4]} failed:\n{err.read()[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["peak_mb"] = round(peak.peak_mb)
    result["processes"] = peak.most_processes
    return result


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- the steps, each in its own process --------------------------------------------------------


def _index_settings():
    from indexer.settings import IndexSettings

    return IndexSettings.from_env()


def child_build(args) -> dict:
    """The int8 encoder built from the bundled model, as the first run on a machine does."""
    from indexer.embed import embedder_for
    from indexer.onnx_encoder import OnnxEmbedder

    embedder = embedder_for(_index_settings())
    assert isinstance(embedder, OnnxEmbedder)
    started = time.perf_counter()
    embedder.ensure_built()
    return {"build_s": round(time.perf_counter() - started, 1)}


def child_extract(args) -> dict:
    """Every paper the index reads (one per distinct file), read and cut by the pool alone."""
    import hashlib

    from indexer.extract import PaperReader, ReadJob
    from indexer.sources import discover
    from indexer.types import Paper

    settings = _index_settings()
    jobs, seen = [], set()
    for item in discover(args.corpus):
        if isinstance(item, Paper):
            doc_id = hashlib.sha256(item.path.read_bytes()).hexdigest()[:20]
            if doc_id not in seen:
                seen.add(doc_id)
                jobs.append(ReadJob(item, doc_id, settings.chunk_words))
    started = time.perf_counter()
    pages = passages = failed = 0
    with PaperReader(settings.index_workers, settings.paper_timeout) as reader:
        reader.expect(jobs)
        for job in jobs:
            result = reader.read(job)
            pages += result.pages
            passages += len(result.chunks)
            failed += result.failure is not None
    return {
        "extract_s": round(time.perf_counter() - started, 1),
        "papers": len(jobs),
        "pages": pages,
        "passages": passages,
        "failed": failed,
    }


def child_encode(args) -> dict:
    """The encoder alone on the published index's passages, in the index's slices of 256."""
    from indexer.embed import SentenceTransformerEmbedder, embedder_for
    from indexer.refresh import EMBED_BATCH
    from indexer.store import read_build

    settings = _index_settings()
    chunks = read_build(settings.index_dir).chunks
    texts = [f"{c.heading}\n{c.text}" for c in chunks]
    if args.encoder == "torch-fp32":
        embedder = SentenceTransformerEmbedder(settings.model)
    else:
        embedder = embedder_for(settings)
    started = time.perf_counter()
    embedder.embed(texts[:16])  # load the model
    loaded = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        embedder.embed(texts[start : start + EMBED_BATCH])
    done = time.perf_counter()
    return {
        "encoder": args.encoder,
        "passages": len(texts),
        "load_s": round(loaded - started, 1),
        "encode_s": round(done - loaded, 1),
    }


CHILDREN = {"build": child_build, "extract": child_extract, "encode": child_encode}


def print_figures(f: dict) -> None:
    b, e, i = f["build"], f["extract"], f["index"]
    int8, fp32 = f["encode_onnx-int8"], f["encode_torch-fp32"]
    print(f"corpus {f['corpus']}; {os.cpu_count()} CPU cores; load {f['load_start']} at the start")
    print(f"int8 encoder build (once per machine): {b['build_s']} s, peak {b['peak_mb']} MB")
    print(
        f"extraction alone ({f['workers']} workers): {e['extract_s']} s for {e['papers']} papers, "
        f"{e['pages']} pages, {e['passages']} passages ({e['failed']} unreadable); "
        f"peak {e['peak_mb']} MB"
    )
    print(
        f"raw encoders on the index's {int8['passages']} passages: int8 {int8['encode_s']} s, "
        f"fp32 sentence-transformers {fp32['encode_s']} s (model loads not counted: "
        f"{int8['load_s']} s / {fp32['load_s']} s)"
    )
    _print_index("full index", i, int8, fp32, f["workers"])
    if "index_sequential" in f:
        _print_index("full index, papers read in-process", f["index_sequential"], int8, fp32, 0)
    print(f"load {f['load_end']} at the end")


def _print_index(label: str, i: dict, int8: dict, fp32: dict, workers: int) -> None:
    print(
        f"{label} (CLERK_INDEX_WORKERS={workers}, `clerk index` end to end): {i['seconds']} s, "
        f"{i['added']} papers added, {i['duplicates']} duplicates, {i['chunks']} passages; "
        f"peak {i['peak_mb']} MB over {i['processes']} processes (target under {TARGET_MB} MB)"
    )
    print(
        f"  / raw fp32 encoder {i['seconds'] / fp32['encode_s']:.2f} (target <= {TARGET_RATIO}); "
        f"/ raw int8 encoder {i['seconds'] / int8['encode_s']:.2f}"
    )


if __name__ == "__main__":
    main()
