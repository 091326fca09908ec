"""Benchmark: a nightly run that adds 10 documents to an index of the full shared corpus.

Phase 1 (reported separately) indexes the whole shared corpus except 10 County Council papers of
13 March 2025 into a temporary CLERK_HOME. Phase 2 is a real `nightly()` run against a loopback
ModernGov site that publishes those 10 PDFs as a new meeting: sync, incremental index, atomic
publish. Each phase runs in its own process; its peak RSS is that process's own (getrusage
ru_maxrss) and, as `peak_tree_mb`, that of the process and its children together (the workers
that read papers, the encoder build), sampled. tracemalloc reports the peak of Python-level
allocations in the nightly phase (numpy and onnxruntime buffers are mostly outside it, which is
why RSS is the figure to plan memory by).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_nightly.py [--keep DIR] [--reader DIR]

With --reader (a built reader's folder, copied in), the reader is on: phase 1 keeps the
projections of its passages, and phase 2 projects the 10 papers' new passages after publishing,
as `clerk nightly` does; its time and peak are then part of the nightly's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path

from _common import REPO, TreePeak  # first: sys.path

SHARED = REPO.parent / "shared" / "corpus"
NEW_FOLDER = "kent/full_council/2025-03-13"
NEW_PAPERS = (
    "Council Report Mid Year 24-25.pdf",
    "Devo and LGR - CC Report March 2025.pdf",
    "County Council - Pay Policy Statement 2025-2026.pdf",
    "Final Kent CC Armed Forces Covenant - Annual Report 2024.pdf",
    "Governance Update Report.pdf",
    "KMWLP - County Council Report.pdf",
    "Appendix 7 - Draft Responses to Consultation Feedback.pdf",
    "JHOSC ToR - report to full Council.pdf",
    "GAC TOR Update CC March 2025 Final.pdf",
    "Green Independents Group - MTLD - 13 March.pdf",
)


def settings_for(work: Path):
    from bot.settings import Settings

    reader = "1" if (work / "home" / "reader").is_dir() else "0"
    return Settings.from_env(
        {},
        CLERK_HOME=work / "home",
        CLERK_CORPUS=work / "corpus",
        CLERK_SYNC_DELAY=0.0,
        CLERK_READER=reader,
    )


def link_corpus(target: Path) -> int:
    """The shared corpus as symlinks, without the 10 papers the nightly run will bring."""
    held_back = {f"{NEW_FOLDER}/{name}" for name in NEW_PAPERS}
    count = 0
    for path in sorted(SHARED.rglob("*")):
        rel = path.relative_to(SHARED).as_posix()
        if path.is_dir() or rel in held_back or path.name == "README.md":
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).symlink_to(path)
        count += path.suffix.lower() == ".pdf"
    return count


def phase_build(work: Path) -> dict:
    from bot.reader.keep import keep_published_passages
    from indexer.embed import embedder_for
    from indexer.refresh import refresh

    settings = settings_for(work)
    pdfs = link_corpus(settings.index.corpus)
    start = time.perf_counter()
    embedder = embedder_for(settings.index)
    loaded = time.perf_counter()
    summary = refresh(settings.index, [settings.index.corpus], embedder)
    done = time.perf_counter()
    kept = keep_published_passages(settings)  # the reader's store: these passages, no others
    return {
        "reader": kept,
        "phase": "full index (shared corpus minus 10 papers)",
        "pdfs": pdfs,
        "model_load_s": round(loaded - start, 2),
        "index_s": round(done - loaded, 2),
        "added": summary.added,
        "duplicates": summary.duplicates,
        "chunks": summary.chunks,
        "failed": len(summary.failed),
    }


def phase_nightly(work: Path) -> dict:
    from moderngov_server import ModernGovServer

    from bot.reader.keep import keep_published_passages
    from bot.requests.service import index_roots
    from indexer.embed import embedder_for
    from indexer.nightly import nightly

    settings = settings_for(work)
    tracemalloc.start()
    with ModernGovServer() as site:
        site.quirks.hidden_meetings |= {9700, 9801, 9802, 9803, 9901, 9902}
        docs = [(60001 + n, Path(name).stem, SHARED / NEW_FOLDER / name) for n, name in
                enumerate(NEW_PAPERS)]  # fmt: skip
        site.add_meeting(112, 9990, "20/03/2025", docs)
        start = time.perf_counter()
        embedder = embedder_for(settings.index)
        loaded = time.perf_counter()
        report = nightly(
            settings.index,
            settings.sync,
            [site.base_url],
            index_roots(settings),
            embedder,
            today=date(2025, 3, 21),
        )
        published = time.perf_counter()
        kept = keep_published_passages(settings) if report.index.published else None
        done = time.perf_counter()
    _, py_peak = tracemalloc.get_traced_memory()
    [sync] = report.sites
    return {
        "phase": "nightly: sync 10 new PDFs + incremental index + publish",
        "status": report.status,
        "model_load_s": round(loaded - start, 2),
        "nightly_s": round(done - loaded, 2),
        "downloaded": sync.downloaded,
        "sync_failures": len(sync.failures),
        "index_added": report.index.added,
        "index_unchanged": report.index.unchanged,
        "index_chunks": report.index.chunks,
        "published": report.index.published,
        "reader": kept,
        "reader_keep_s": round(done - published, 2),
        "python_heap_peak_mb": round(py_peak / 2**20, 1),
    }


def run_child(phase: str, work: Path) -> dict:
    """Run one phase in a fresh interpreter; its own peak RSS comes back with its figures."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    process = subprocess.Popen(  # noqa: S603 - this script, fixed arguments
        [sys.executable, __file__, "--phase", phase, "--work", str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    with TreePeak(process.pid) as tree:
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]) | {"peak_tree_mb": round(tree.peak_mb)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["build", "nightly"])
    parser.add_argument("--work", type=Path)
    parser.add_argument("--keep", type=Path, help="work here and keep the files")
    parser.add_argument("--reader", type=Path, help="a built reader's folder: run with it on")
    args = parser.parse_args()
    if args.phase:
        figures = (phase_build if args.phase == "build" else phase_nightly)(args.work)
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory(prefix="clerk-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.reader:
            shutil.copytree(args.reader, work / "home" / "reader")
        print(f"CPU cores: {os.cpu_count()}; work dir: {work}")
        for phase in ("build", "nightly"):
            figures = run_child(phase, work)
            print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
