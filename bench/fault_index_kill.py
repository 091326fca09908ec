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
from dataclasses import dataclass, field
from pathlib import Path

from _common import CORPUS, QUESTIONS, REPO, clerk, clerk_env, copy_corpus  # first: sys.path

from bot.engine.answer import Answerer
from bot.settings import Settings
from indexer.bm25 import BM25Index
from indexer.refresh import text_signature
from indexer.sources import KINDS
from indexer.store import BuildContents, build_dir_of, read_build

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
    if bm25 is not None and bm25.size != len(contents.chunks):
        return f"BM25 has {bm25.size} rows for {len(contents.chunks)} passages"
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
        return "after the link swap (clean-up, exit)"
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


@dataclass
class Tally:
    """What the runs saw."""

    counts: Counter[str] = field(default_factory=Counter)
    phases: Counter[str] = field(default_factory=Counter)
    seen_whole: set[str] = field(default_factory=set)  # build names once seen whole
    half_served: set[str] = field(default_factory=set)
    half_new: set[str] = field(default_factory=set)  # never whole: a build written halfway
    half_old: set[str] = field(default_factory=set)  # once whole: a kill while deleting it
    problems: list[str] = field(default_factory=list)

    def inspect(self, rig: Rig, n: int) -> None:
        """Sort every finished build directory into whole, served half, new half, old half."""
        served = rig.served()
        for name in sorted(rig.finished()):
            why = whole(rig.builds / name)
            if why is None:
                self.seen_whole.add(name)
                continue
            if served is not None and served.name == name:
                self.half_served.add(name)
                self.problems.append(f"run {n}: serving half build {name}: {why}")
            elif name in self.seen_whole:
                self.half_old.add(name)
            else:
                self.half_new.add(name)
                self.problems.append(f"run {n}: half new build {name}: {why}")


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
    publish_window = max(0.5, whole_run * 0.15)  # after the staging directory appears
    print(f"a run that re-reads {args.churn} papers: {whole_run:.1f} s uncut")
    tally = Tally()
    tally.inspect(rig, -1)
    for n in range(args.runs):
        churn(rig, rng, args.churn)
        served, finished, staging = rig.served(), rig.finished(), rig.staging()
        at_publish = rng.random() < args.publish_share
        delay = rng.uniform(0, publish_window if at_publish else whole_run * 1.1)
        outcome = killed_run(rig, delay, at_publish, timeout=whole_run * 20)
        tally.counts[outcome] += 1
        if outcome == "killed":
            tally.phases[phase(rig, served, finished, staging)] += 1
        if rig.served() not in {served} | {(rig.builds / b).resolve() for b in rig.finished()}:
            tally.problems.append(f"run {n}: link points at {rig.served()}")
        tally.inspect(rig, n)
        why = answer_ok(answerer, rig, QUESTIONS[n % len(QUESTIONS)])
        tally.counts["answers ok" if why is None else "answers bad"] += 1
        if why:
            tally.problems.append(f"run {n}: {why}")
    for rel in papers(rig.shelf):
        move(rel, rig.shelf, rig.corpus)
    last, _ = index(rig, timeout=3600)
    report(rig, args, tally)
    final_report(rig, reference, last)
    print(f"total time: {time.perf_counter() - started:.0f} s")
    for problem in tally.problems[:20]:
        print(f"  problem: {problem}")
    return 0


def report(rig: Rig, args: argparse.Namespace, tally: Tally) -> None:
    counts = tally.counts
    print(f"runs: {args.runs} (`clerk index` processes, each sent SIGKILL)")
    print(
        f"killed mid-build: {counts['killed']} (completed before the kill: {counts['completed']})"
    )
    for name, count in sorted(tally.phases.items(), key=lambda kv: -kv[1]):
        print(f"  killed {name}: {count}")
    print(f"answers ok (from the served build, citing its passages): {counts['answers ok']}")
    print(f"answers not ok: {counts['answers bad']}")
    print(f"half builds seen: {len(tally.half_served)} served, {len(tally.half_new)} new ones")
    print(
        f"old builds left partly deleted by a kill during clean-up (never served again; the next "
        f"publish removes them): {len(tally.half_old)}"
    )
    leftovers = rig.staging()
    left_mb = sum(f.stat().st_size for d in leftovers for f in (rig.builds / d).rglob("*")) / 1e6
    print(f"leftover temporary build dirs: {len(leftovers)} ({left_mb:.1f} MB)")
    print(f"finished builds kept: {len(rig.finished())}")


def final_report(rig: Rig, reference: BuildContents, last: dict) -> None:
    """The uncut index at the end, against the first build of the same papers (a fresh one)."""
    served = rig.served()
    final = read_build(rig.home / "index")
    before, after = Counter(c.text for c in reference.chunks), Counter(c.text for c in final.chunks)
    lost, extra = sum((before - after).values()), sum((after - before).values())
    ok = served is not None and whole(served) is None and lost == 0
    print(
        f"final index ok: {'yes' if ok else 'NO'} (whole, {last['chunks']} passages, "
        f"{lost} passages of the first build missing)"
    )
    copies = text_copies(final)
    print(
        f"  same as the first (fresh) build of these papers: {'yes' if after == before else 'no'}"
        f"; {extra} extra passages; papers indexed twice as text copies: {len(copies)}"
    )
    for source in copies[:5]:
        print(f"    indexed again as its own document: {source}")


def text_copies(contents: BuildContents) -> list[str]:
    """Sources of documents whose passages repeat another document's word for word."""
    texts: dict[str, list[str]] = {}
    for chunk in contents.chunks:
        texts.setdefault(chunk.doc_id, []).append(chunk.text)
    first: dict[str, str] = {}
    copies = []
    for doc_id in sorted(texts, key=lambda d: contents.documents[d].source):
        signature = text_signature(texts[doc_id])
        if signature in first:
            copies.append(contents.documents[doc_id].source)
        first.setdefault(signature, doc_id)
    return copies


if __name__ == "__main__":
    sys.exit(main())
