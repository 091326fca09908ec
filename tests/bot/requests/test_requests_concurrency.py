"""Two real processes writing to one request store at once lose nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from requests_support import STORE_KINDS

from bot.errors import RequestError
from bot.requests.model import ANSWERED, Asker

PER_WORKER = 40
SHARED = 15  # requests both workers try to answer


def _open(kind: str, location: str):
    """A store both the test and a spawned worker can open from plain strings."""
    if kind == "sqlite":
        from bot.requests.stores.sqlite import SqliteRequestStore

        return SqliteRequestStore(Path(location))
    from bot.requests.stores.postgres import PostgresRequestStore

    return PostgresRequestStore(location)


def _location(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return str(tmp_path / "requests.sqlite3")
    from pg_server import fresh_database

    return fresh_database()


def _worker(kind: str, location: str, name: str, barrier, results) -> None:
    store = _open(kind, location)
    asker = Asker("cli", name)
    won = []
    for i in range(PER_WORKER):
        barrier.wait(timeout=30)  # every round both processes write at the same moment
        # distinct numbers keep the questions from being linked as duplicates
        store.log(f"Question {i} from {name}: what happened to item {name}-{i}?", asker)
        if i < SHARED:
            try:
                store.answer(i + 1, name, f"{name} answers {i + 1}")
                won.append(i + 1)
            except RequestError as exc:
                assert "already answered" in str(exc)
    store.close_store()
    results.put((name, won))


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_two_processes_logging_and_answering_at_once(kind, tmp_path):
    location = _location(kind, tmp_path)
    with _open(kind, location) as store:
        for i in range(SHARED):
            store.log(f"Shared question {i} about ward {i}?", Asker("slack", f"U{i}"))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(kind, location, n, barrier, results)) for n in "AB"
    ]
    for w in workers:
        w.start()
    outcomes = dict(results.get(timeout=60) for _ in workers)
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0

    with _open(kind, location) as store:
        requests = store.list()
        assert len(requests) == SHARED + 2 * PER_WORKER  # no lost inserts
        questions = {r.question for r in requests}
        for name in "AB":
            for i in range(PER_WORKER):
                assert f"Question {i} from {name}: what happened to item {name}-{i}?" in questions
        # each shared request has exactly one winner, and the record agrees with the winner
        winners = {rid: name for name, won in outcomes.items() for rid in won}
        assert sorted(winners) == list(range(1, SHARED + 1))
        assert sum(len(won) for won in outcomes.values()) == SHARED
        for rid, name in winners.items():
            request = store.get(rid)
            assert request.state == ANSWERED and request.answered_by == name
            assert request.answer == f"{name} answers {rid}"
            assert [e.action for e in store.history(rid)].count("answered") == 1
            assert len(store.deliveries(rid)) == 1
        assert len(store.history()) == SHARED + 2 * PER_WORKER + 2 * SHARED
