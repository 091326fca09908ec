"""Benchmark the int8 ONNX encoder against fp32 (torch and ONNX) and print figures (no pass/fail).

    .venv/bin/python bench/bench_encoder.py [--corpus DIR] [--rounds N] [--dev]

Prints, from one run:
- the int8 build: a fresh process importing torch, exporting the bundled model and quantising it;
- parity: cosine of the int8 (and fp32 ONNX) vectors to fp32 torch on every passage of the corpus
  and on the dev questions (mean, 1st percentile, min);
- encode speed of the three on the same passages, as passages/s and ratios (best of N interleaved
  rounds, as the machine is shared);
- indexing the corpus with each encoder, and cold start to the first answer in a fresh process
  with each (serving peak memory, and whether torch was imported);
- with --dev, the full shared corpus indexed with each encoder and the dev set's ranked
  retrieval (hit@1/3/5, MRR) beside each other: the issue asks for them within 0.01.

Each heavy step runs in its own process, so its start-up and peak memory are its own. The repo's
corpus/ is the default; `--corpus ../shared/corpus` measures the full one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()  # cold start counts from here, before Clerk is imported

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpus"
DEV = (REPO / "eval" / "dev" / "questions.jsonl", REPO / "eval" / "dev" / "more-questions.jsonl")
ENCODERS = ("onnx-int8", "torch-fp32")
QUESTION = "How much LEVI capital funding did the Liberal Democrats' amendment propose?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "corpus")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per encoder")
    parser.add_argument("--dev", action="store_true", help="also dev-set retrieval, full corpus")
    parser.add_argument("--home", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--encoder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child](args)
    home = (args.home or Path(tempfile.mkdtemp(prefix="clerk-bench-encoder-"))).resolve()
    figures = run_all(args, home)
    print_figures(figures)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "encoder.json").write_text(json.dumps(figures, indent=2))


def run_all(args, home: Path) -> dict:
    corpus = args.corpus.resolve()
    figures: dict = {"corpus": str(corpus), "build": child("build", home)}
    for encoder in ENCODERS:
        figures[f"index_{encoder}"] = child("index", home, encoder, corpus=corpus)
    figures["encode"] = child("encode", home, rounds=args.rounds)
    for encoder in ENCODERS:
        figures[f"serve_{encoder}"] = child("serve", home, encoder)
    if args.dev:
        for encoder in ENCODERS:
            figures[f"dev_{encoder}"] = child("dev", home / "dev", encoder, corpus=SHARED)
    return figures


def child(name: str, home: Path, encoder: str = "onnx-int8", **options) -> dict:
    """Run one step in a fresh process with its own data directory per encoder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env |= {
        "CLERK_HOME": str(home / encoder),
        "CLERK_ENCODER": encoder,
        "CLERK_ENCODER_DIR": str(home / "encoders"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, __file__, "--child", name, "--home", str(home)]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    started = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{name} ({encoder}) failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    return result


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _settings():
    from bot.settings import Settings

    return Settings.from_env()


def child_build(args) -> None:
    """The int8 encoder from nothing, as a first use does it; then an fp32 graph for reference."""
    from indexer.embed import resolve_model_path
    from indexer.onnx_encoder import OnnxEmbedder, build, export_fp32

    index = _settings().index
    encoder = OnnxEmbedder(index.model, resolve_model_path(index.model), index.encoders_dir)
    built = build(encoder.model_dir, encoder.folder)
    total = time.perf_counter() - STARTED
    started = time.perf_counter()
    export_fp32(encoder.model_dir, args.home / "fp32.onnx")
    print(
        json.dumps(
            {
                "build_s": built.seconds,
                "process_build_s": round(total, 2),
                "int8_mb": round((encoder.folder / "model.onnx").stat().st_size / 2**20, 1),
                "fp32_mb": round((args.home / "fp32.onnx").stat().st_size / 2**20, 1),
                "fp32_export_s": round(time.perf_counter() - started, 2),
                "versions": built.versions,
            }
        )
    )


def child_index(args) -> None:
    from bot.requests.service import index_roots
    from indexer.embed import embedder_for
    from indexer.refresh import refresh

    settings = _settings().replaced(CLERK_CORPUS=args.corpus)
    embedder = embedder_for(settings.index)
    started = time.perf_counter()
    summary = refresh(settings.index, index_roots(settings, [args.corpus]), embedder)
    seconds = time.perf_counter() - started
    print(
        json.dumps({"seconds": round(seconds, 2), "chunks": summary.chunks, "peak_mb": _peak_mb()})
    )


def child_encode(args) -> None:
    """The three encoders on the same passages and questions: parity to fp32 torch, and speed."""
    import numpy as np

    from bot.engine.evaluate import load_questions
    from indexer.embed import SentenceTransformerEmbedder, embedder_for, resolve_model_path
    from indexer.onnx_encoder import OnnxEmbedder
    from indexer.store import read_build

    index = _settings().index
    passages = [f"{c.heading}\n{c.text}" for c in read_build(index.index_dir).chunks]
    questions = [q.question for path in DEV if path.is_file() for q in load_questions(path)]
    model_dir = resolve_model_path(index.model)
    encoders = {
        "torch-fp32": SentenceTransformerEmbedder(index.model),
        "onnx-fp32": OnnxEmbedder(
            index.model, model_dir, index.encoders_dir, graph=args.home / "fp32.onnx"
        ),
        "onnx-int8": embedder_for(index),
    }
    for encoder in encoders.values():
        encoder.embed(passages[:64])  # load and warm up
    best: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            vectors[name] = encoder.embed(passages)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    reference = encoders["torch-fp32"].embed(questions)
    result: dict = {"passages": len(passages), "questions": len(questions), "encoders": {}}
    for name, encoder in encoders.items():
        result["encoders"][name] = {
            "seconds": round(best[name], 2),
            "passages_per_s": round(len(passages) / best[name], 1),
            "passages": _cosines(vectors[name], vectors["torch-fp32"]),
            "questions": _cosines(encoder.embed(questions), reference),
        }
    print(json.dumps(result))


def _cosines(vectors, reference) -> dict:
    import numpy as np

    cos = (vectors * reference).sum(axis=1)
    return {
        "mean": round(float(cos.mean()), 4),
        "p01": round(float(np.percentile(cos, 1)), 4),
        "min": round(float(cos.min()), 4),
    }


def child_serve(args) -> None:
    """Cold start to the first answer: imports, settings, model, index, one question."""
    from bot.engine.answer import Answerer

    answer = Answerer.from_settings(_settings()).answer(QUESTION)
    cold = time.perf_counter() - STARTED
    heavy = [m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules]
    print(
        json.dumps(
            {
                "cold_start_s": round(cold, 2),
                "answered": answer.answered,
                "peak_mb": _peak_mb(),
                "imported": heavy,
            }
        )
    )


def child_dev(args) -> None:
    """The full corpus indexed with this encoder, then the dev set's ranked retrieval."""
    from bot.engine import evaluate
    from bot.engine.answer import Answerer
    from bot.requests.service import index_roots
    from indexer.embed import embedder_for
    from indexer.refresh import refresh

    settings = _settings().replaced(CLERK_CORPUS=args.corpus)
    embedder = embedder_for(settings.index)
    started = time.perf_counter()
    refresh(settings.index, index_roots(settings, [args.corpus]), embedder)
    seconds = time.perf_counter() - started
    questions = [q for path in DEV if path.is_file() for q in evaluate.load_questions(path)]
    summary = evaluate.summarise(evaluate.run(Answerer.from_settings(settings), questions))
    keys = ("hit@1", "hit@3", "hit@5", "mrr", "retrieval_hit@1", "retrieval_hit@3")
    print(json.dumps({"index_s": round(seconds, 1)} | {k: summary[k] for k in keys}))


CHILDREN = {
    "build": child_build,
    "index": child_index,
    "encode": child_encode,
    "serve": child_serve,
    "dev": child_dev,
}


def print_figures(f: dict) -> None:
    b, e = f["build"], f["encode"]
    print(f"corpus: {f['corpus']}: {e['passages']} passages; {e['questions']} dev questions")
    print(
        f"int8 build: {b['build_s']:.1f} s (export + quantise), {b['process_build_s']:.1f} s "
        f"from a fresh process (torch import included); {b['int8_mb']} MB vs fp32 {b['fp32_mb']} MB"
    )
    torch_s = e["encoders"]["torch-fp32"]["seconds"]
    onnx_s = e["encoders"]["onnx-fp32"]["seconds"]
    print("encoder      passages/s  x torch-fp32  x onnx-fp32  cosine to torch-fp32 (mean/p01/min)")
    for name, r in e["encoders"].items():
        p, q = r["passages"], r["questions"]
        print(
            f"{name:11} {r['passages_per_s']:10.1f} {torch_s / r['seconds']:12.2f} "
            f"{onnx_s / r['seconds']:12.2f}  passages {p['mean']:.4f}/{p['p01']:.4f}/{p['min']:.4f}"
            f"  questions {q['mean']:.4f}/{q['p01']:.4f}/{q['min']:.4f}"
        )
    print("target: mean cosine >= 0.99 on corpus passages (int8 vs torch-fp32)")
    for encoder in ENCODERS:
        i, s = f[f"index_{encoder}"], f[f"serve_{encoder}"]
        print(
            f"{encoder:11} index {i['seconds']:6.1f} s ({i['chunks']} passages, peak "
            f"{i['peak_mb']:.0f} MB); cold start to first answer {s['cold_start_s']:.2f} s "
            f"(process {s['process_seconds']:.2f} s), serving peak {s['peak_mb']:.0f} MB, "
            f"imported {s['imported'] or 'no torch'}"
        )
    int8, fp32 = f["serve_onnx-int8"], f["serve_torch-fp32"]
    print(
        f"cold start: int8 {int8['cold_start_s']:.2f} s vs fp32 {fp32['cold_start_s']:.2f} s "
        f"(ratio {int8['cold_start_s'] / fp32['cold_start_s']:.2f}; target under 2 s)"
    )
    if "dev_onnx-int8" in f:
        a, r = f["dev_onnx-int8"], f["dev_torch-fp32"]
        print("dev-set retrieval, full corpus (int8 / fp32 / difference; target within 0.01):")
        for key in ("hit@1", "hit@3", "hit@5", "mrr", "retrieval_hit@1", "retrieval_hit@3"):
            print(f"  {key:16} {a[key]:.3f} / {r[key]:.3f} / {a[key] - r[key]:+.3f}")
        print(f"  full index: int8 {a['index_s']:.0f} s, fp32 {r['index_s']:.0f} s")


if __name__ == "__main__":
    main()
