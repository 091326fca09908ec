"""Simulate a 1M-passage index on this machine and print build and serving figures (no pass/fail).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/scale_1m.py [--passages 1000000] [--source HOME]
        [--noise 0.3] [--recall-only [--m 32 48] [--ef-construction 100]]

The shared corpus' published index (`--source`, default /work/evalhome, read only; or
`--corpus DIR` to index one into the work directory first) is replicated with perturbed text
(adjacent words swapped, figures changed, another council's name) and metadata (many councils,
years, committees) up to `--passages`. Encoding 1M passages would take hours on 2 cores, so a
replica's vector is its original's plus small noise, renormalised: the figures say so, and the
real encoding rate is measured separately, on real passages, to extrapolate from. With the
default noise (0.3) each passage has about 170 near-copies, so the exact top 10 is partly a draw
among copies; `--noise 1.0` makes replicas distinct passages (cosine about 0.71 to their
original) to measure the other way.

At the shared corpus' real size and at the simulated size, each build is made as Clerk chooses
(flat exact up to CLERK_FLAT_MAX_PASSAGES, HNSW above) and the other type is made beside it from
the same files, so each figure has its exact (or approximate) counterpart. Printed: build times
(BM25, FAISS, metadata and files), size on disk, retrieval p50/p95 as the engine runs it (dense +
BM25 + fusion, the question already embedded) over the 300 dev questions, the question's embedding
time, serving RSS, and the flat scan time by size (the switch point). Each build and each serving
run is its own process, so its memory is its own.

Recall@10 of HNSW against exact, by efSearch, for the dev questions and for 300 held-out passages
(new replicas, in no index) used as queries: strict (the same passages) and by family (the same
originals, a replica counting as its original and identical originals as one: what decides
whether the answer is found). `--recall-only` measures only that, for each --m and
--ef-construction, without BM25, text or serving: a quicker sweep.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEV = (REPO / "eval" / "dev" / "questions.jsonl", REPO / "eval" / "dev" / "more-questions.jsonl")
TARGET_P95_MS, TARGET_RSS_MB, BUDGET_FLAT_MS = 50.0, 3072.0, 15.0
NOISE = 0.30  # norm of the noise added to a replica's vector: cosine to its original ~0.96
COUNCILS = (
    "Surrey County Council", "Leeds City Council", "Norfolk County Council", "Wakefield Council",
    "Essex County Council", "Calderdale Council", "Hampshire County Council", "Kirklees Council",
    "Devon County Council", "Sheffield City Council", "Lancashire County Council", "York Council",
    "Suffolk County Council", "Medway Council", "Cornwall Council", "Brighton and Hove Council",
)  # fmt: skip
COMMITTEES = ("", " Scrutiny", " Sub-Committee", " (Special)", " Working Group")
ORIGINAL_NAMES = re.compile(r"\b(Kent County Council|Kent|KCC|City of Bradford MDC|Bradford)\b")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, default=Path("/work/evalhome"))
    parser.add_argument("--corpus", type=Path, help="index this corpus instead of --source")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--reprint", action="store_true", help="print the last run's figures")
    parser.add_argument(
        "--noise",
        type=float,
        default=NOISE,
        help=f"norm of the noise in a replica's vector (default {NOISE}: near-copies, cosine "
        "about 0.96 to the original; 1.0: distinct passages, cosine about 0.71)",
    )
    parser.add_argument(
        "--recall-only",
        action="store_true",
        help="only the dense search: HNSW built for each --m and --ef-construction on the "
        "simulated vectors, recall against exact by efSearch (no BM25, text or serving)",
    )
    parser.add_argument("--m", type=int, nargs="+", default=[32], help="with --recall-only")
    parser.add_argument(
        "--ivf",
        type=int,
        default=0,
        metavar="LISTS",
        help="with --recall-only: measure FAISS IVF-Flat with this many lists instead of HNSW",
    )
    parser.add_argument(
        "--ef-construction", type=int, nargs="+", default=[100], help="with --recall-only"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--truth", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--source-home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--families", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child](args)
    results = REPO / "bench" / "results" / "scale_1m.json"
    if args.recall_only:
        kind = f"-ivf{args.ivf}" if args.ivf else ""
        results = results.with_name(f"scale_1m_recall-{args.passages}-{args.noise}{kind}.json")
    if args.reprint and args.recall_only:
        return print_recall(json.loads(results.read_text()))
    if args.reprint:
        return print_figures(json.loads(results.read_text()))
    work = (args.work or Path(tempfile.mkdtemp(prefix="clerk-scale-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    figures = (recall_all if args.recall_only else run_all)(args, work)
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps(figures, indent=2))
    (print_recall if args.recall_only else print_figures)(figures)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def run_all(args, work: Path) -> dict:
    figures: dict = {"load_start": _load(), "started": time.strftime("%Y-%m-%d %H:%M UTC")}
    source = args.source
    if args.corpus:
        source = work / "source"
        child("index", work, home=source, corpus=args.corpus.resolve())
    figures["encode"] = child("encode", work, home=source)
    figures["flat_scan"] = child("flatscan", work, home=source)
    for label, size in (("real", 0), ("simulated", args.passages)):
        home = work / label
        built = child("build", work, home=source, passages=size, out=home, noise=args.noise)
        other = child("variant", work, home=home)
        exact = child("serve", work, home=_home_of(home, "flat"), families=home)
        truth = work / f"truth-{label}.json"
        truth.write_text(json.dumps(exact["top10"]))
        approximate = child("serve", work, home=_home_of(home, "hnsw"), families=home, truth=truth)
        serving = {"flat": exact, "hnsw": approximate}
        figures[label] = {"build": built, "variant": other, "serve": serving}
    figures["append"] = child(
        "append", work, home=work / "simulated", source_home=source, noise=args.noise
    )
    figures["load_end"] = _load()
    return figures


def recall_all(args, work: Path) -> dict:
    """The dense search alone, one HNSW build per (M, efConstruction), each in its own process."""
    figures: dict = {"load_start": _load(), "started": time.strftime("%Y-%m-%d %H:%M UTC")}
    figures |= {"passages": args.passages, "noise": args.noise, "builds": []}
    questions = work / "questions.npy"
    if not questions.exists():
        child("questions", work, home=args.source, out=questions)
    for m in args.m:
        for ef_construction in args.ef_construction:
            figures["builds"].append(
                child("recall", work, home=args.source, passages=args.passages,
                      noise=args.noise, m=m, ef_construction=ef_construction, ivf=args.ivf)
            )  # fmt: skip
            if args.ivf:
                return figures | {"load_end": _load()}
    figures["load_end"] = _load()
    return figures


def _home_of(home: Path, kind: str) -> Path:
    """The home holding the build of this kind: the chosen one, or its variant beside it."""
    params = json.loads((home / "index" / "params.json").read_text())
    return home if params["dense"]["kind"] == kind else home.with_name(home.name + "-other")


def child(name: str, work: Path, **options) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env |= {
        "CLERK_ENCODER_DIR": str(work / "encoders"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, __file__, "--child", name, "--work", str(work)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    started = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {name} {options}", file=sys.stderr, flush=True)
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(time.perf_counter() - started, 1)
    result["load"] = _load()
    return result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _rss_mb(field: str = "VmRSS") -> float:
    """Resident memory now: VmRSS, or RssAnon (the process's own) or RssFile (mapped files,
    shared with other processes mapping the same build, and reclaimable)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _emit(result: dict) -> None:
    print(json.dumps(result))


# children ----------------------------------------------------------------------------------


def child_index(args) -> None:
    """Index a corpus into a fresh home (when no published build is given)."""
    from indexer.embed import embedder_for
    from indexer.refresh import refresh
    from indexer.settings import IndexSettings

    settings = IndexSettings.from_env(os.environ | {"CLERK_HOME": str(args.home)})
    started = time.perf_counter()
    summary = refresh(settings, [args.corpus], embedder_for(settings))
    _emit({"seconds": round(time.perf_counter() - started, 1), "chunks": summary.chunks})


def child_encode(args) -> None:
    """The real encoder's rate on real passages: what encoding 1M passages would cost."""
    from indexer.embed import embedder_for
    from indexer.refresh import EMBED_BATCH
    from indexer.settings import IndexSettings
    from indexer.store import read_build

    chunks = read_build(args.home / "index").chunks[:1024]
    texts = [f"{c.heading}\n{c.text}" for c in chunks]  # what refresh gives the model
    embedder = embedder_for(IndexSettings.from_env())
    embedder.embed(["warm up"])
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):  # in refresh's slices
        embedder.embed(texts[start : start + EMBED_BATCH])
    seconds = time.perf_counter() - started
    words = sum(len(text.split()) for text in texts)
    _emit(
        {
            "encoder": embedder.name,
            "passages": len(chunks),
            "passages_per_s": round(len(chunks) / seconds, 1),
            "words_per_s": round(words / seconds),
            "hours_per_million": round(1e6 / (len(chunks) / seconds) / 3600, 1),
        }
    )


def child_flatscan(args) -> None:
    """One question against an exact flat index of n derived vectors, one thread: where the
    scan stops fitting the retrieval budget."""
    import faiss
    import numpy as np

    from indexer.store import read_build

    base = np.asarray(read_build(args.home / "index").vectors)
    rng = np.random.default_rng(1)
    queries = _noisy(base[rng.integers(0, len(base), 100)], rng, 0.5)
    timings = {}
    faiss.omp_set_num_threads(1)
    for n in (25_000, 50_000, 100_000, 150_000, 200_000, 300_000):
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(_noisy(base[rng.integers(0, len(base), n)], rng, NOISE))
        taken = []
        for q in queries:
            started = time.perf_counter()
            index.search(q[None, :], 50)
            taken.append((time.perf_counter() - started) * 1000)
        timings[n] = {"p50_ms": round(_pct(taken, 50), 2), "p95_ms": round(_pct(taken, 95), 2)}
    _emit({"timings": timings})


def child_build(args) -> None:
    """Replicate the source build to --passages (0: as it is), then build and publish it as
    Clerk would, timing BM25, FAISS and the write of metadata and files."""
    from indexer.bm25 import BM25Index
    from indexer.settings import IndexSettings
    from indexer.store import build_dense, publish, read_build

    source = read_build(args.home / "index")
    started = time.perf_counter()
    contents = replicate(source, args.passages, args.noise) if args.passages else source
    replicated = time.perf_counter() - started
    _save_families(args.out, source, args.passages, args.noise)
    spec = IndexSettings.from_env().dense_spec(len(contents.chunks))
    texts = _bm25_texts(contents)
    started = time.perf_counter()
    bm25 = BM25Index.build(texts)
    bm25_s = time.perf_counter() - started
    del texts
    started = time.perf_counter()
    index = build_dense(args.out, contents, spec)
    faiss_s = time.perf_counter() - started
    started = time.perf_counter()
    build = publish(args.out, contents, bm25, spec, index)
    write_s = time.perf_counter() - started
    _emit(
        {
            "passages": len(contents.chunks),
            "documents": len(contents.documents),
            "councils": len({d.council for d in contents.documents.values()}),
            "committees": len({(d.council, d.committee) for d in contents.documents.values()}),
            "terms": len(bm25.terms),
            "derived_vectors": bool(args.passages),
            "noise": args.noise,
            "replicate_s": round(replicated, 1),
            "kind": spec.kind,
            "spec": spec.__dict__,
            "bm25_s": round(bm25_s, 1),
            "faiss_s": round(faiss_s, 1),
            "write_s": round(write_s, 1),
            "disk_mb": _disk(build),
            "peak_mb": _peak_mb(),
        }
    )


def _save_families(home: Path, source, passages: int, noise: float) -> None:
    """Beside the build, for the recall figures: each passage's family (families.npy) and the
    held-out passages used as queries (probes.npy)."""
    import numpy as np

    home.mkdir(parents=True, exist_ok=True)
    origin = origins(source, max(passages, len(source.chunks)))
    np.save(home / "families.npy", families(source, origin))
    queries, _ = probes(source, noise)
    np.save(home / "probes.npy", queries)


def _bm25_texts(contents) -> list[str]:
    from indexer.lexical import passage_text

    docs = contents.documents
    return [passage_text(docs[c.doc_id].committee, c.heading, c.text) for c in contents.chunks]


def child_variant(args) -> None:
    """The same build with the other FAISS type, beside it: every other file hard-linked."""
    from dataclasses import asdict

    import numpy as np

    from indexer import dense
    from indexer.settings import IndexSettings
    from indexer.store import build_dir_of, read_params
    from indexer.types import FLAT, DenseSpec

    build = build_dir_of(args.home / "index").resolve()
    params = read_params(build)
    if params.dense.kind == FLAT:
        settings = IndexSettings.from_env()
        spec = DenseSpec.choose(
            10**12, 0, settings.hnsw_m, settings.hnsw_ef_construction, settings.hnsw_ef_search
        )
    else:
        spec = DenseSpec()
    home = args.home.with_name(args.home.name + "-other")
    target = home / "builds" / build.name
    target.mkdir(parents=True)
    for path in build.iterdir():
        if path.name not in ("params.json", dense.FILE):
            os.link(path, target / path.name)
    vectors = np.load(build / "vectors.npy", mmap_mode="r")
    started = time.perf_counter()
    index = dense.build(vectors, spec)
    seconds = time.perf_counter() - started
    dense.write(index, target)
    data = json.loads((build / "params.json").read_text()) | {"dense": asdict(spec)}
    (target / "params.json").write_text(json.dumps(data, indent=2))
    (home / "index").symlink_to(Path("builds") / build.name)
    _emit(
        {
            "kind": spec.kind,
            "faiss_s": round(seconds, 1),
            "faiss_mb": round((target / dense.FILE).stat().st_size / 2**20, 1),
        }
    )


def child_serve(args) -> None:
    """Open the build as the bot does, embed each dev question, then time retrieval."""
    import numpy as np

    from bot.engine.evaluate import load_questions
    from indexer import dense
    from indexer.embed import embedder_for
    from indexer.search import CANDIDATES, LoadedIndex, rank
    from indexer.settings import IndexSettings
    from indexer.types import SearchFilters

    questions = [q.question for path in DEV for q in load_questions(path)]
    embedder = embedder_for(IndexSettings.from_env())
    embedder.embed(["warm up"])
    started = time.perf_counter()
    index = LoadedIndex.load(args.home / "index")
    opened = time.perf_counter() - started
    embed_ms, vectors = [], []
    for question in questions:
        started = time.perf_counter()
        vectors.append(embedder.embed([question])[0])
        embed_ms.append((time.perf_counter() - started) * 1000)
    rank(index, questions[0], vectors[0], k=15)  # first touch
    retrieval_ms = []
    for question, vector in zip(questions, vectors, strict=True):
        started = time.perf_counter()
        rank(index, question, vector, k=15)  # as the engine asks: 15 passages weighed
        retrieval_ms.append((time.perf_counter() - started) * 1000)
    served = index.served
    queries = {"questions": np.asarray(vectors), "passages": np.load(args.families / "probes.npy")}
    top10 = {
        name: [dense.search(served.dense_index, served.params.dense, v, 10) for v in rows]
        for name, rows in queries.items()
    }
    dense_ms = []
    for vector in vectors:
        started = time.perf_counter()
        dense.search(served.dense_index, served.params.dense, vector, CANDIDATES)
        dense_ms.append((time.perf_counter() - started) * 1000)
    only = SearchFilters(committee="Cabinet", since="2020-01-01")
    share = float(np.mean(index.mask(only)))
    filtered_ms = []
    for question, vector in list(zip(questions, vectors, strict=True))[:100]:
        started = time.perf_counter()
        rank(index, question, vector, only, k=15)
        filtered_ms.append((time.perf_counter() - started) * 1000)
    sweep = {}
    if args.truth:
        family = np.load(args.families / "families.npy")
        truth = json.loads(args.truth.read_text())
        sweep = _sweep(served.dense_index, served.params.dense, queries, truth, family)
    _emit(
        {
            "kind": served.params.dense.kind,
            "sweep": sweep,
            "passages": index.size,
            "questions": len(questions),
            "open_s": round(opened, 2),
            "embed": _spread(embed_ms),
            "retrieval": _spread(retrieval_ms),
            "dense_only": _spread(dense_ms),
            "filtered": _spread(filtered_ms) | {"share": round(share, 3)},
            "rss_mb": _rss_mb(),
            "anon_mb": _rss_mb("RssAnon"),
            "file_mb": _rss_mb("RssFile"),
            "peak_mb": _peak_mb(),
            "top10": top10,
        }
    )


EF_SWEEP = (64, 128, 256, 512, 1024, 2048)


def _sweep(index, built, queries: dict, truth: dict, family) -> dict:
    """Recall@10 against exact and dense time at efSearch values around the build's, for the
    dev questions and the held-out passages."""
    from dataclasses import replace

    from indexer import dense

    figures: dict = {}
    for ef in EF_SWEEP:
        spec = replace(built, ef_search=ef)
        figures[ef] = {
            name: _recall_figures(
                lambda q, spec=spec: dense.search(index, spec, q, 10),
                lambda rows: dense.vectors_of(index, rows),
                rows,
                truth[name],
                family,
            )
            for name, rows in queries.items()
        }
    return figures


def _recall_figures(search, stored, queries, truth: list[list[int]], family) -> dict:
    """The approximate top 10 of each query (`search`) against the exact one: strict (the same
    passages), family (the same originals, a replica counting as its original), within 0.01
    cosine of the exact 10th (`stored`: rows' vectors); the exact top 10's originals; dense
    time for a top 10."""
    import numpy as np

    found, taken, close = [], [], 0.0
    for query, exact in zip(queries, truth, strict=True):
        started = time.perf_counter()
        rows = search(query)
        taken.append((time.perf_counter() - started) * 1000)
        found.append(rows)
        bar = float(np.sort(stored(exact) @ query)[0]) - 0.01
        close += float(np.mean(stored(rows) @ query >= bar))
    families = [[int(family[r]) for r in rows] for rows in found]
    exact_families = [[int(family[r]) for r in rows] for rows in truth]
    return {
        "strict": round(_recall(found, truth), 4),
        "family": round(_recall(families, exact_families), 4),
        "within_001": round(close / len(truth), 4),
        "exact_families": round(float(np.mean([len(set(f)) for f in exact_families])), 2),
    } | _spread(taken)


def child_questions(args) -> None:
    """The dev questions embedded as the bot embeds them, saved for the recall runs."""
    import numpy as np

    from bot.engine.evaluate import load_questions
    from indexer.embed import embedder_for
    from indexer.settings import IndexSettings

    questions = [q.question for path in DEV for q in load_questions(path)]
    embedder = embedder_for(IndexSettings.from_env())
    # one at a time, as the bot and the serving run embed them: in a padded batch the int8
    # encoder gives vectors at cosine 0.987-0.993 to these, and recall@10 at 1M passages moved
    # by about 0.015 (family, efSearch 1024: 0.965 batched, 0.949 one at a time)
    vectors = np.vstack([embedder.embed([question]) for question in questions])
    np.save(args.out, vectors.astype(np.float32))
    _emit({"questions": len(questions)})


def child_recall(args) -> None:
    """HNSW (--m, --ef-construction) on the simulated vectors: its build time and memory, and by
    efSearch its recall@10 against an exact scan and its dense time."""
    import faiss
    import numpy as np

    from indexer import dense
    from indexer.store import read_build
    from indexer.types import HNSW, DenseSpec

    source = read_build(args.home / "index")
    origin = origins(source, args.passages)
    vectors = derived_vectors(source.vectors, origin, args.noise)
    probe_vectors, probe_origins = probes(source, args.noise)
    family = families(source, origin)
    queries = {"questions": np.load(args.work / "questions.npy"), "passages": probe_vectors}
    started = time.perf_counter()
    truth = {
        name: faiss.knn(rows, vectors, 10, faiss.METRIC_INNER_PRODUCT)[1].tolist()
        for name, rows in queries.items()
    }
    exact_s = time.perf_counter() - started
    m, ef_construction = args.m[0], args.ef_construction[0]
    started = time.perf_counter()
    if args.ivf:
        index = _ivf(vectors, args.ivf)
        build_s = time.perf_counter() - started
        sweep = _ivf_sweep(index, vectors, queries, truth, family)
    else:
        spec = DenseSpec(HNSW, m, ef_construction, EF_SWEEP[0])
        index = dense.build(vectors, spec)
        build_s = time.perf_counter() - started
        del vectors
        sweep = _sweep(index, spec, queries, truth, family)
    first = family[[rows[0] for rows in truth["passages"]]]
    _emit(
        {
            "kind": f"IVF-Flat, {args.ivf} lists" if args.ivf else "HNSW",
            "m": m,
            "ef_construction": ef_construction,
            "passages": len(origin),
            "noise": args.noise,
            "build_s": round(build_s, 1),
            "exact_s": round(exact_s, 1),
            "probes_own_family_first": round(float(np.mean(first == family[probe_origins])), 3),
            "peak_mb": _peak_mb(),
            "sweep": sweep,
        }
    )


NPROBE_SWEEP = (8, 16, 32, 64, 128, 256)


def _ivf(vectors, lists: int):
    """An IVF-Flat index (inner product) over `vectors`, its lists trained by k-means on a
    sample of 64 vectors per list: not what Clerk builds, measured beside HNSW."""
    import faiss
    import numpy as np

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], lists, faiss.METRIC_INNER_PRODUCT
    )
    sample = np.random.default_rng(3).choice(len(vectors), min(len(vectors), 64 * lists), False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index


def _ivf_sweep(index, vectors, queries: dict, truth: dict, family) -> dict:
    """As _sweep, by the number of lists scanned (nprobe), one thread."""
    import faiss

    faiss.omp_set_num_threads(1)

    def search(query, nprobe: int) -> list[int]:
        params = faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[attr-defined]
        _, ids = index.search(query[None, :], 10, params=params)
        return [int(i) for i in ids[0] if i >= 0]

    return {
        nprobe: {
            name: _recall_figures(
                lambda q, n=nprobe: search(q, n), lambda r: vectors[r], rows, truth[name], family
            )
            for name, rows in queries.items()
        }
        for nprobe in NPROBE_SWEEP
    }


def child_append(args) -> None:
    """A nightly run's publish at the simulated size: one new council's papers (about 2,000
    passages) appended; what refresh does after embedding them (read the previous build,
    BM25 with the kept passages' counts reused, the HNSW graph extended, the build written)."""
    import numpy as np

    from indexer.store import BuildContents, build_dense, lexical_index, publish, read_build

    started = time.perf_counter()
    previous = read_build(args.home / "index")
    read_s = time.perf_counter() - started
    source = read_build(args.source_home / "index")
    first = 10_000 + len(previous.chunks)
    extra = replicate(source, len(source.chunks) + 2_000, args.noise, first)
    new = [c for c in extra.chunks if c.doc_id not in previous.documents]
    rows = [i for i, c in enumerate(extra.chunks) if c.doc_id not in previous.documents]
    contents = BuildContents(
        previous.params,
        previous.documents | {d: extra.documents[d] for d in {c.doc_id for c in new}},
        previous.chunks + new,
        np.vstack([np.asarray(previous.vectors), np.asarray(extra.vectors)[rows]]),
        previous.files + [f for f in extra.files if f.doc_id not in previous.documents],
    )
    timings = {"read_previous_s": round(read_s, 1), "added": len(new)}
    started = time.perf_counter()
    bm25 = lexical_index(contents, args.home / "index")  # as refresh does
    timings["bm25_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    index = build_dense(args.home, contents, previous.params.dense)
    timings["faiss_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    publish(args.home, contents, bm25, previous.params.dense, index)
    timings["write_s"] = round(time.perf_counter() - started, 1)
    _emit(timings | {"kind": previous.params.dense.kind, "peak_mb": _peak_mb()})


CHILDREN = {
    "index": child_index,
    "encode": child_encode,
    "flatscan": child_flatscan,
    "build": child_build,
    "variant": child_variant,
    "serve": child_serve,
    "append": child_append,
    "questions": child_questions,
    "recall": child_recall,
}


# the simulation -----------------------------------------------------------------------------


def replicate(source, passages: int, noise: float = NOISE, first: int = 0):
    """The source build copied, perturbed, until it holds `passages` passages; the originals
    come first, unchanged. Replicas are numbered from `first` + 1."""
    from indexer.store import BuildContents, ChunkRow, FileRow
    from indexer.types import chunk_id

    texts = random.Random(7)
    documents, files, chunks = dict(source.documents), list(source.files), list(source.chunks)
    for replica, doc_id, rows in _plan(source, passages, first):
        council = COUNCILS[replica % len(COUNCILS)]
        year_shift = -(replica // len(COUNCILS)) % 12  # meetings from 2014 to 2025
        suffix = COMMITTEES[replica % len(COMMITTEES)]
        doc = _replica_document(source.documents[doc_id], replica, council, suffix, year_shift)
        documents[doc.doc_id] = doc
        files.append(FileRow(doc.root, doc.source, 0, 0, doc.doc_id, doc.doc_id, "indexed"))
        for row in rows:
            old = source.chunks[row]
            text = _perturb(old.text, council, texts)
            chunks.append(ChunkRow(chunk_id(doc.doc_id, old.page, text), doc.doc_id,
                                   old.page, old.heading, text))  # fmt: skip
    vectors = derived_vectors(source.vectors, origins(source, passages, first), noise)
    return BuildContents(source.params, documents, chunks, vectors, files)


def _plan(source, passages: int, first: int = 0):
    """(replica number, source document, its source rows copied) in the order replicate adds
    them, until `passages` passages are held."""
    by_doc: dict[str, list[int]] = {}
    for row, chunk in enumerate(source.chunks):
        by_doc.setdefault(chunk.doc_id, []).append(row)
    held, replica = len(source.chunks), first
    while held < passages:
        replica += 1
        for doc_id, doc_rows in by_doc.items():
            if held >= passages:
                break
            rows = doc_rows[: passages - held]
            held += len(rows)
            yield replica, doc_id, rows


def origins(source, passages: int, first: int = 0):
    """Each simulated passage's original: the source row it was copied from (its family)."""
    import numpy as np

    parts = [np.arange(len(source.chunks))]
    parts += [np.asarray(rows) for _, _, rows in _plan(source, passages, first)]
    return np.concatenate(parts).astype(np.int64)


def families(source, origin):
    """Each passage's family: its original, with originals whose vectors are identical (the
    same text filed twice: the shared corpus has 100 such rows) counted as one."""
    import numpy as np

    _, first, inverse = np.unique(
        np.asarray(source.vectors), axis=0, return_index=True, return_inverse=True
    )
    return first[inverse.ravel()][origin]


def derived_vectors(base, origin, noise: float):
    """The originals' vectors as they are, then each replica's: its original's plus noise."""
    import numpy as np

    base = np.asarray(base, dtype=np.float32)
    rng = np.random.default_rng(7)
    vectors = np.empty((len(origin), base.shape[1]), dtype=np.float32)
    vectors[: len(base)] = base[: len(origin)]
    for start in range(len(base), len(origin), 65_536):  # in blocks: the noise is float64
        rows = origin[start : start + 65_536]
        vectors[start : start + len(rows)] = _noisy(base[rows], rng, noise)
    return vectors


def probes(source, noise: float, count: int = 300):
    """Held-out passages as queries: new replicas of random originals, in no index, with
    their originals (the family the answer must come from)."""
    import numpy as np

    rng = np.random.default_rng(11)
    base = np.asarray(source.vectors, dtype=np.float32)
    families = rng.integers(0, len(base), count)
    return _noisy(base[families], rng, noise), families


def _replica_document(doc, replica: int, council: str, suffix: str, year_shift: int):
    from dataclasses import replace

    doc_id = hashlib.sha256(f"{replica}\x00{doc.doc_id}".encode()).hexdigest()[:20]
    meeting = doc.meeting_date
    if meeting:
        day = datetime.date.fromisoformat(meeting)
        meeting = day.replace(year=day.year - year_shift, day=min(day.day, 28)).isoformat()
    slug = council.lower().replace(" ", "-")
    return replace(
        doc,
        doc_id=doc_id,
        source=f"{slug}/{replica}/{doc.source}",
        council=council,
        committee=doc.committee + suffix,
        meeting_date=meeting,
        url=None,
    )


def _perturb(text: str, council: str, rng: random.Random) -> str:
    """Another council's name, changed figures, two neighbouring words swapped."""
    text = ORIGINAL_NAMES.sub(council, text)
    text = re.sub(r"\d+", lambda m: _other_number(m.group(), rng), text)
    words = text.split(" ")
    for _ in range(2):
        if len(words) > 3:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _other_number(digits: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return digits
    return str(rng.randrange(10 ** (len(digits) - 1) if len(digits) > 1 else 0, 10 ** len(digits)))


def _noisy(vectors, rng, size: float):
    """Unit vectors near `vectors`: noise of norm about `size`, renormalised."""
    import numpy as np

    noise = rng.normal(0, size / np.sqrt(vectors.shape[1]), vectors.shape).astype(np.float32)
    moved = vectors + noise
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    return moved.astype(np.float32)


def _disk(build: Path) -> dict:
    groups: dict[str, float] = {}
    for path in build.iterdir():
        name = "bm25" if path.name.startswith("bm25") else path.name.split(".")[0]
        groups[name] = groups.get(name, 0.0) + path.stat().st_size / 2**20
    return {k: round(v, 1) for k, v in sorted(groups.items())} | {
        "total": round(sum(groups.values()), 1)
    }


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _spread(values: list[float]) -> dict:
    return {"p50_ms": round(_pct(values, 50), 2), "p95_ms": round(_pct(values, 95), 2)}


# report -------------------------------------------------------------------------------------


def print_figures(f: dict) -> None:
    enc = f["encode"]
    print(
        f"Clerk at scale, {f['started']}; load average (1, 5, 15 min) at start "
        f"{f['load_start']}, at end {f['load_end']}, on {os.cpu_count()} cores shared with others"
    )
    print(
        f"real encoder ({enc['encoder']}): {enc['passages_per_s']} passages/s, "
        f"{enc['words_per_s']} words/s on {enc['passages']} real passages: 1M passages would "
        f"take {enc['hours_per_million']} h to encode"
    )
    scan = ", ".join(
        f"{int(n):,}: {t['p50_ms']}/{t['p95_ms']} ms" for n, t in f["flat_scan"]["timings"].items()
    )
    print(
        f"flat exact scan, one thread, p50/p95 by passages ({BUDGET_FLAT_MS:.0f} ms budget): {scan}"
    )
    for label in ("real", "simulated"):
        _print_size(label, f[label])
    a = f["append"]
    print()
    print(
        f"a nightly publish at the simulated size, {a['added']:,} passages appended ({a['kind']}): "
        f"read the previous build {a['read_previous_s']} s, BM25 {a['bm25_s']} s, FAISS "
        f"extended {a['faiss_s']} s, written {a['write_s']} s; peak {a['peak_mb']:.0f} MB"
    )


def _print_size(label: str, figures: dict) -> None:
    built, other, serve = figures["build"], figures["variant"], figures["serve"]
    exact, approx = serve["flat"], serve["hnsw"]
    print()
    print(
        f"== {label}: {built['passages']:,} passages, {built['documents']:,} documents, "
        f"{built['councils']} councils, {built['committees']} committees, {built['terms']:,} terms"
    )
    if built["derived_vectors"]:
        print(
            f"   replicas' vectors are DERIVED (original + noise of norm {built['noise']}, "
            "renormalised), "
            f"not encoded; replicating took {built['replicate_s']} s"
        )
    print(f"   chosen FAISS type: {built['kind']} {built['spec']}")
    print(
        f"   build: BM25 {built['bm25_s']} s, FAISS {built['faiss_s']} s, metadata and files "
        f"{built['write_s']} s; peak {built['peak_mb']:.0f} MB; other type's FAISS "
        f"({other['kind']}) {other['faiss_s']} s, {other['faiss_mb']} MB"
    )
    disk = ", ".join(f"{k} {v} MB" for k, v in built["disk_mb"].items())
    print(f"   on disk: {disk}")
    print(f"   {'':28} {'flat exact':>22} {'HNSW':>22}   target")
    rows = (
        ("retrieval p50 / p95 ms", "retrieval", f"p95 < {TARGET_P95_MS:.0f} ms"),
        ("  dense only p50 / p95 ms", "dense_only", ""),
        ("  filtered p50 / p95 ms", "filtered", ""),
        ("question embedding ms", "embed", ""),
    )
    for title, key, target in rows:
        print(f"   {title:28} {_pair(exact[key]):>22} {_pair(approx[key]):>22}   {target}")
    print(
        f"   {'serving RSS / peak MB':28} {_mem(exact):>22} {_mem(approx):>22}   "
        f"< {TARGET_RSS_MB:.0f} MB"
    )
    print(f"   {'  of which own / mapped files':28} {_split(exact):>22} {_split(approx):>22}")
    print(f"   {'open the build s':28} {exact['open_s']:>22} {approx['open_s']:>22}")
    strict = _recall(approx["top10"]["questions"], exact["top10"]["questions"])
    print(
        f"   recall@10 of HNSW against exact as built: {strict:.4f} strict "
        f"({exact['questions']} dev questions); filtered searches admit "
        f"{exact['filtered']['share']:.1%} of passages"
    )
    _print_sweep(approx["sweep"], "   ")


def _print_sweep(sweep: dict, indent: str, knob: str = "efSearch") -> None:
    print(f"{indent}recall@10 against exact by {knob}: strict (the same passages) / family (the")
    print(f"{indent}same originals, a replica counting as its original) / share within 0.01 cosine")
    print(f"{indent}of the exact 10th; dense time p50 / p95 for a top 10 (one thread)")
    print(f"{indent}{knob:>8}  {'300 dev questions':<36}  held-out passages (300)")
    for ef, both in sweep.items():
        cells = [
            f"{v['strict']:.3f} / {v['family']:.3f} / {v['within_001']:.3f}  "
            f"{v['p50_ms']:5.2f} / {v['p95_ms']:5.2f} ms"
            for v in both.values()
        ]
        print(f"{indent}{ef:>8}  {cells[0]:<36}  {cells[1]}")
    originals = " / ".join(
        f"{v['exact_families']:.1f}" for v in next(iter(sweep.values())).values()
    )
    print(f"{indent}originals among the exact top 10 (questions / passages): {originals}")


def print_recall(f: dict) -> None:
    cosine = 1 / (1 + f["noise"] ** 2) ** 0.5
    print(
        f"Dense recall at {f['passages']:,} passages, replicas' vectors = original + noise of norm "
        f"{f['noise']} (cosine about {cosine:.2f} to the original); {f['started']}; load average "
        f"(1, 5, 15 min) at start {f['load_start']}, at end {f['load_end']}, "
        f"{os.cpu_count()} cores shared"
    )
    for b in f["builds"]:
        print()
        kind = b.get("kind", "HNSW")
        built = kind if kind != "HNSW" else f"M {b['m']}, efConstruction {b['ef_construction']}"
        print(
            f"{built}: built in {b['build_s']} s "
            f"(2 threads), peak {b['peak_mb']:.0f} MB; exact top 10s in {b['exact_s']} s; a "
            f"held-out passage's own original is the exact first in "
            f"{b['probes_own_family_first']:.0%}"
        )
        _print_sweep(b["sweep"], "  ", "efSearch" if kind == "HNSW" else "nprobe")


def _pair(spread: dict) -> str:
    return f"{spread['p50_ms']:.1f} / {spread['p95_ms']:.1f}"


def _split(serve: dict) -> str:
    return f"{serve['anon_mb']:.0f} / {serve['file_mb']:.0f}"


def _mem(serve: dict) -> str:
    return f"{serve['rss_mb']:.0f} / {serve['peak_mb']:.0f}"


def _recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Of the distinct items in each exact list, the share the approximate list holds too."""
    hits = sum(len(set(a) & set(b)) for a, b in zip(found, truth, strict=True))
    return hits / max(1, sum(len(set(b)) for b in truth))


if __name__ == "__main__":
    main()
