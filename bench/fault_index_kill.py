"""Index under kill -9: `clerk index` killed with SIGKILL at random moments, again and again.

Works on a private copy of the corpus (../shared/corpus, or --corpus; --subset FOLDER to copy only
some folders). A first uncut `clerk index` builds it whole. Then each run changes the corpus (it
sets --churn papers aside and brings back the ones set aside last time, so every run re-reads,
embeds and publishes), starts `clerk index` as a real process and kills it with SIGKILL: at a
random moment of the whole run, or (for --publish-share of the runs) at a random moment after its
staging directory appears, the phase where a half-written build could be exposed. After each run:

- the index link must point at the build published before or a new one, and every finished build
  directory must be whole (params, meta.sqlite3, vectors and BM25 agree; every chunk's document
  exists): anything else counts as a half build seen;
- the real Answerer (one process, as a running bot would) answers a question, from the build the
  link points at, citing passages that exist in it.

At the end everything set aside comes back, an uncut `clerk index` must complete, and its build
must hold the same documents and passages as the first one. Prints counts; asserts nothing.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/fault_index_kill.py [--runs 100] [--corpus DIR]
        [--subset kent/cabinet/2025-03-13 ...] [--churn 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from _common import CORPUS, QUESTIONS, REPO, clerk, clerk_env, copy_corpus  # first: sys.path

from bot.engine.answer import Answerer
from bot.settings import Settings
from indexer.lexical import BM25Index
from indexer.sources import KINDS
from indexer.store import build_dir_of, read_build

POLL = 0.005  # seconds between looks for the staging directory


@dataclass
class Rig:
    """The private corpus, the papers set aside from it, and the data directory."""

    corpus: Path
    shelf: Path
    home: Path

    @property
    def builds(self) -> Path:
        return self.home / "builds"

    def served(self) -> Path | None:
        build = build_dir_of(self.home / "index")
        return build.resolve() if build else None

    def finished(self) -> set[str]:
        return {p.name for p in self.builds.iterdir() if p.is_dir() and not p.name.startswith(".")}

    def staging(self) -> set[str]:
        return {p.name for p in self.builds.glob(".*.tmp")}


def papers(folder: Path) -> list[Path]:
    """The documents under a folder (what `clerk index` reads), relative to it."""
    return sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in KINDS and p.stem.lower() != "readme"
    )


def move(rel: Path, source: Path, target: Path) -> None:
    (target / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source / rel, target / rel)


def churn(rig: Rig, rng: random.Random, count: int) -> None:
    """Bring back what was set aside; set aside `count` other papers (at most half of them)."""
    back = papers(rig.shelf)
    for rel in back:
        move(rel, rig.shelf, rig.corpus)
    others = [p for p in papers(rig.corpus) if p not in back]
    for rel in rng.sample(others, min(count, len(others) // 2)):
        move(rel, rig.corpus, rig.shelf)


def index(rig: Rig, timeout: float) -> tuple[dict, float]:
    """One uncut `clerk index --json`; its summary and seconds."""
    started = time.perf_counter()
    out = subprocess.run(
        clerk("index", "--json", str(rig.corpus)),
        env=clerk_env(rig.home),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    if out.returncode not in (0, 1):  # 1: some papers failed (recorded in the summary)
        raise SystemExit(f"clerk index failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), seconds


def whole(build: Path) -> str | None:
    """Why a build directory is not a whole build, or None when all its files agree."""
    try:
        contents = read_build(build)  # checks params, meta.sqlite3 and vectors.npy agree
        bm25 = BM25Index.load(build)
    except Exception as exc:  # any unreadable file is a half build
        return f"{type(exc).__name__}: {exc}"
    if bm25 is not None and bm25.weights.shape[1] != len(contents.chunks):
        return f"BM25 has {bm25.weights.shape[1]} rows for {len(contents.chunks)} passages"
    orphans = {c.doc_id for c in contents.chunks} - set(contents.documents)
    return f"{len(orphans)} documents missing" if orphans else None


def answer_ok(answerer: Answerer, rig: Rig, question: str) -> str | None:
    """Why the answer is not from the served build, or None when it is and cites real passages."""
    answer = answerer.answer(question)
    served = rig.served()
    if served is None or answerer.searcher.index.build != served:
        return f"answered from {answerer.searcher.index.build.name}, link points at {served}"
    chunk_ids = {c.chunk_id for c in read_build(served).chunks}
    cited = [c.chunk_id for c in (*answer.citations, *answer.nearest)]
    if not cited:
        return "no passage cited or shown"
    missing = [c for c in cited if c not in chunk_ids]
    return f"{len(missing)} cited passages not in the served build" if missing else None


def killed_run(rig: Rig, delay: float, after_staging: bool, timeout: float) -> str:
    """Start `clerk index`, SIGKILL it `delay` seconds in (or after its staging directory
    appears); "completed" when it finished first, else "killed"."""
    before = rig.staging()
    proc = subprocess.Popen(
        clerk("index", "--json", str(rig.corpus)),
        env=clerk_env(rig.home),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    if after_staging:
        while proc.poll() is None and not rig.staging() - before:
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
    try:
        proc.wait(timeout=delay)
        return "completed"
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return "killed"


def phase(rig: Rig, served_before: Path | None, finished: set[str], staging: set[str]) -> str:
    """Where the kill landed, read from what it left behind."""
    if rig.served() != served_before:
        return "after the link swap"
    if rig.finished() - finished:
        return "after the rename, before the swap"
    if rig.staging() - staging:
        return "while writing the staging build"
    return "before publishing (load, read, embed)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--subset", action="append", default=[], help="copy only this folder")
    parser.add_argument("--churn", type=int, default=3, help="papers set aside per run")
    parser.add_argument("--publish-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="clerk-fault-index-") as tmp:
        work = Path(tmp)
        rig = Rig(
            copy_corpus(work / "corpus", args.corpus, args.subset), work / "shelf", work / "home"
        )
        rig.shelf.mkdir()
        return run(rig, args, rng)


def run(rig: Rig, args: argparse.Namespace, rng: random.Random) -> int:
    started = time.perf_counter()
    first, seconds = index(rig, timeout=3600)
    reference = read_build(rig.home / "index")
    print(
        f"first build: {len(papers(rig.corpus))} papers, {first['chunks']} passages, "
        f"{seconds:.0f} s"
    )
    answerer = Answerer.from_settings(Settings.from_env({}, CLERK_HOME=rig.home))
    churn(rig, rng, args.churn)
    started_run = time.perf_counter()
    index(rig, timeout=3600)
    whole_run = time.perf_counter() - started_run
    publish_share = max(0.5, whole_run * 0.15)  # the window after staging appears, generously
    print(f"a run that re-reads {args.churn} papers: {whole_run:.1f} s uncut")
    counts: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    problems: list[str] = []
    for n in range(args.runs):
        churn(rig, rng, args.churn)
        served, finished, staging = rig.served(), rig.finished(), rig.staging()
        at_publish = rng.random() < args.publish_share
        delay = rng.uniform(0, publish_share if at_publish else whole_run * 1.1)
        outcome = killed_run(rig, delay, at_publish, timeout=whole_run * 20)
        counts[outcome] += 1
        if outcome == "killed":
            phases[phase(rig, served, finished, staging)] += 1
        if rig.served() not in {served} | {(rig.builds / b).resolve() for b in rig.finished()}:
            problems.append(f"run {n}: link points at {rig.served()}")
        for name in rig.finished():
            why = whole(rig.builds / name)
            if why:
                problems.append(f"run {n}: half build {name}: {why}")
                counts["half"] += 1
        why = answer_ok(answerer, rig, QUESTIONS[n % len(QUESTIONS)])
        counts["answers ok" if why is None else "answers bad"] += 1
        if why:
            problems.append(f"run {n}: {why}")
    for rel in papers(rig.shelf):
        move(rel, rig.shelf, rig.corpus)
    last, _ = index(rig, timeout=3600)
    final = read_build(rig.home / "index")
    same = set(final.documents) == set(reference.documents) and {
        c.chunk_id for c in final.chunks
    } == {c.chunk_id for c in reference.chunks}
    leftovers = rig.staging()
    left_mb = sum(f.stat().st_size for d in leftovers for f in (rig.builds / d).rglob("*")) / 1e6
    print(f"runs: {args.runs} (`clerk index` processes, each sent SIGKILL)")
    print(
        f"killed mid-build: {counts['killed']} (completed before the kill: {counts['completed']})"
    )
    for name, count in sorted(phases.items(), key=lambda kv: -kv[1]):
        print(f"  killed {name}: {count}")
    print(f"answers ok (from the served build, citing its passages): {counts['answers ok']}")
    print(f"answers not ok: {counts['answers bad']}")
    print(f"half builds seen: {counts['half']}")
    served = rig.served()
    final_ok = served is not None and whole(served) is None and same
    print(
        f"final index ok: {'yes' if final_ok else 'NO'} ({last['chunks']} passages; same "
        f"documents and passages as the first build: {'yes' if same else 'no'})"
    )
    print(f"leftover temporary build dirs: {len(leftovers)} ({left_mb:.1f} MB)")
    print(f"finished builds kept: {len(rig.finished())}")
    print(f"total time: {time.perf_counter() - started:.0f} s")
    for problem in problems[:20]:
        print(f"  problem: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
