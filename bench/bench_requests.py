"""Follow-up request logging throughput on a real SQLite file: 1 writer vs 4 writer processes.

Each writer process logs distinct questions (so none is linked as a duplicate) as fast as it can
for a fixed time; every log is one BEGIN IMMEDIATE transaction with synchronous=FULL plus the
duplicate check against all pending requests. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_requests.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.requests.model import Asker  # noqa: E402
from bot.requests.stores.sqlite import SqliteRequestStore  # noqa: E402


def _writer(path: str, name: str, seconds: float, barrier, results) -> None:
    store = SqliteRequestStore(Path(path))
    asker = Asker("cli", name)
    barrier.wait(timeout=60)
    deadline = time.perf_counter() + seconds
    latencies = []
    i = 0
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        store.log(f"Question {i} from {name}: what is the position on item {name}-{i}?", asker)
        latencies.append(time.perf_counter() - started)
        i += 1
    store.close_store()
    results.put(latencies)


def run(writers: int, seconds: float) -> dict:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "requests.sqlite3"
        SqliteRequestStore(path).close_store()  # migrations done before the clock starts
        barrier, results = ctx.Barrier(writers + 1), ctx.Queue()
        procs = [
            ctx.Process(target=_writer, args=(str(path), f"w{n}", seconds, barrier, results))
            for n in range(writers)
        ]
        for p in procs:
            p.start()
        barrier.wait(timeout=60)
        started = time.perf_counter()
        latencies = [x for _ in procs for x in results.get(timeout=seconds + 60)]
        elapsed = time.perf_counter() - started
        for p in procs:
            p.join(timeout=30)
        with SqliteRequestStore(path) as store:
            stored = len(store.list())
    latencies.sort()
    return {
        "writers": writers,
        "logged": len(latencies),
        "stored": stored,
        "per_second": len(latencies) / elapsed,
        "median_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time each run logs for")
    args = parser.parse_args()
    print(f"SQLite request store, logging for {args.seconds:.0f} s per run (WAL, synchronous=FULL)")
    for writers in (1, 4):
        r = run(writers, args.seconds)
        lost = r["logged"] - r["stored"]
        print(
            f"{r['writers']} writer process(es): {r['per_second']:7.1f} requests/s "
            f"({r['logged']} logged, {lost} lost); latency median {r['median_ms']:.1f} ms, "
            f"p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
