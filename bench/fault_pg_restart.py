"""PostgreSQL restart in the middle of request writes: none lost, none duplicated.

Starts a real throwaway PostgreSQL (tests/support/pg_server.py, 127.0.0.1), then 4 writer
processes log --writes distinct questions between them through `PostgresRequestStore.log`, while
this process restarts the server (fast shutdown: every connection is cut) when half of them are
written (--restarts spreads more restarts evenly). A write that raises may or may not have
committed (the connection was cut mid-transaction), so a writer never repeats it blindly: it
looks for its question text in the store and writes it again only when it is not there. At the
end every question must be in the store exactly once. Prints figures; asserts nothing.

    .venv/bin/python bench/fault_pg_restart.py [--writes 1000] [--writers 4] [--restarts 1]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
import time
from collections import Counter

from _common import REPO  # noqa: F401 - first: it sets sys.path for the imports below
from pg_server import PostgresServer

from bot.requests.model import Asker
from bot.requests.stores.postgres import PostgresRequestStore

GIVE_UP = 120.0  # seconds a writer keeps trying one question before reporting it lost


def question(writer: int, i: int) -> str:
    return f"Question {i} from w{writer}: what is the position on item w{writer}-{i}?"


def present(store: PostgresRequestStore, text: str) -> bool:
    """Whether a question is in the store (after a write whose outcome is unknown)."""
    return any(r.question == text for r in store.list())


class Reconnects(logging.Handler):
    """Counts the store's own reconnections (a connection lost before a transaction began)."""

    def __init__(self, counts: Counter) -> None:
        super().__init__()
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        self.counts["reconnected before a transaction (by the store)"] += 1


def write_once(store: PostgresRequestStore, text: str, asker: Asker, seen: Counter) -> bool:
    """Log `text` exactly once: retry only when it is known not to have been written."""
    deadline = time.monotonic() + GIVE_UP
    failed = False
    while time.monotonic() < deadline:
        try:
            store.log(text, asker)
            seen["rewritten after an error" if failed else "written at the first try"] += 1
            return True
        except Exception as exc:  # the store raises on a cut-off transaction; anything else too
            seen[f"error: {type(exc).__name__}"] += 1
            failed = True
        while time.monotonic() < deadline:  # did it happen? ask until the server answers
            try:
                if present(store, text):
                    seen["found stored after an error"] += 1
                    return True
                break
            except Exception as exc:  # server still restarting
                seen[f"error while checking: {type(exc).__name__}"] += 1
                time.sleep(0.05)
    return False


def writer(url: str, n: int, count: int, writers: int, barrier, done, results) -> None:
    errors: Counter[str] = Counter()
    store_log = logging.getLogger("bot.requests.stores.sql")
    store_log.addHandler(Reconnects(errors))
    store_log.propagate = False
    store = PostgresRequestStore(url)
    asker = Asker("cli", f"w{n}")
    lost = []
    barrier.wait(timeout=60)
    for i in range(n, count, writers):
        if not write_once(store, question(n, i), asker, errors):
            lost.append(i)
        with done.get_lock():
            done.value += 1
    store.close_store()
    results.put((dict(errors), lost))


def restart_points(writes: int, restarts: int) -> list[int]:
    return [writes * (k + 1) // (restarts + 1) for k in range(restarts)]


def run(server: PostgresServer, args: argparse.Namespace) -> dict:
    url = server.fresh_database()
    PostgresRequestStore(url).close_store()  # migrations done before the clock starts
    ctx = multiprocessing.get_context("spawn")
    barrier, done, results = ctx.Barrier(args.writers + 1), ctx.Value("i", 0), ctx.Queue()
    procs = [
        ctx.Process(target=writer, args=(url, n, args.writes, args.writers, barrier, done, results))
        for n in range(args.writers)
    ]
    for p in procs:
        p.start()
    barrier.wait(timeout=60)
    started = time.perf_counter()
    restarts = []
    for point in restart_points(args.writes, args.restarts):
        while done.value < point and any(p.is_alive() for p in procs):
            time.sleep(0.002)
        began = time.perf_counter()
        server.restart()
        restarts.append((done.value, time.perf_counter() - began))
    reports = [results.get(timeout=GIVE_UP * 4) for _ in procs]
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(timeout=30)
    errors: Counter[str] = Counter()
    for found, _ in reports:
        errors.update(found)
    with PostgresRequestStore(url) as store:
        requests = store.list()
        events = Counter(e.action for e in store.history())
    stored = Counter(r.question for r in requests)
    wanted = {question(i % args.writers, i) for i in range(args.writes)}
    return {
        "stored": stored,
        "wanted": wanted,
        "errors": errors,
        "given_up": sum(len(lost) for _, lost in reports),
        "events": events,
        "restarts": restarts,
        "seconds": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--restarts", type=int, default=1)
    args = parser.parse_args()
    server = PostgresServer().start()
    try:
        r = run(server, args)
    finally:
        server.stop()
    stored, wanted = r["stored"], r["wanted"]
    duplicated = sum(n - 1 for n in stored.values() if n > 1)
    relinked = r["events"]["asked again"] + r["events"]["linked asker"]
    print(f"PostgreSQL {server.bin.parent.name}, {args.writers} writer processes")
    for at, seconds in r["restarts"]:
        print(f"restarted after {at} writes (pg_ctl restart -m fast: {seconds:.1f} s)")
    print(
        f"writes: {args.writes}; written (distinct questions stored): {len(set(stored) & wanted)}"
    )
    print(f"lost: {len(wanted - set(stored))} (writers that gave up: {r['given_up']})")
    print(f"duplicated: {duplicated} extra requests, {relinked} repeated logs of a stored question")
    print(f"unexpected requests: {len(set(stored) - wanted)}")
    errors = sum(n for k, n in r["errors"].items() if k.startswith("error"))
    print(f"errors seen by writers: {errors}")
    for what, n in sorted(r["errors"].items()):
        print(f"  {what}: {n}")
    print(
        f"time: {r['seconds']:.1f} s ({args.writes / r['seconds']:.0f} writes/s with the restart)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
