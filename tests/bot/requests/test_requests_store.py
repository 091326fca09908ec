"""The follow-up request store on a real SQLite file: lifecycle, rules, duplicates, purge."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from types import SimpleNamespace

import pytest
from requests_support import ALICE, BOB, CAROL, START, STORE_KINDS, Clock, citation, make_store

from bot.errors import RequestError
from bot.requests.model import (
    ANSWERED,
    ASSIGNED,
    CLOSED,
    DECLINED,
    DELIVERY_PENDING,
    DUPLICATE,
    OPEN,
    STORE_EVENT,
    RequestFilter,
    overdue_cutoff,
)
from bot.requests.stores import schema
from bot.requests.stores.schema import MIGRATIONS
from bot.requests.stores.sql import apply_migrations
from bot.requests.stores.sqlite import SqliteRequestStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path, clock):
    s = make_store(request.param, tmp_path, clock)
    yield s
    s.close_store()


def test_whole_lifecycle_is_recorded(store, clock):
    logged = store.log(
        "  What is the forecast overspend on highways?  ", ALICE, [citation()], "Cabinet"
    )
    assert logged.created and logged.request.state == OPEN
    request = logged.request
    assert request.question == "What is the forecast overspend on highways?"
    assert request.askers == (ALICE,) and request.askers[0].reply_to == ALICE.reply_to
    assert request.nearest == (citation(),) and request.committee == "Cabinet"

    clock.advance(hours=1)
    assert store.assign(request.request_id, "Jane Officer").state == ASSIGNED
    clock.advance(hours=1)
    answered = store.answer(request.request_id, "Jane Officer", "  £2.1m, see the Q3 report.  ")
    assert answered.state == ANSWERED and answered.answer == "£2.1m, see the Q3 report."
    assert (
        answered.answered_by == "Jane Officer"
        and answered.answered_at == "2025-03-03T11:00:00+00:00"
    )
    closed = store.close(request.request_id, "Jane Officer")
    assert closed.state == CLOSED and closed.answer == answered.answer

    actions = [e.action for e in store.history(request.request_id)]
    assert actions == ["logged", "assigned", "answered", "deliveries queued", "closed"]
    assert store.history(request.request_id)[0].actor == "slack:U0ALICE"
    assert store.get(request.request_id) == closed


@pytest.mark.parametrize(
    ("prepare", "act", "message"),
    [
        ([], lambda s, i: s.close(i, "jo"), "is open; it cannot become closed"),
        (["answer", "close"], lambda s, i: s.answer(i, "jo", "again"), "is closed"),
        (["answer"], lambda s, i: s.answer(i, "jo", "again"), "already answered by jo"),
        (["answer"], lambda s, i: s.assign(i, "jo"), "is answered; it cannot become assigned"),
        (["answer"], lambda s, i: s.decline(i, "jo", "no"), "cannot become declined"),
        (["decline"], lambda s, i: s.answer(i, "jo", "x"), "is declined"),
        ([], lambda s, i: s.reopen(i, "jo"), "is open; it cannot become open"),
    ],
)
def test_illegal_transitions_change_nothing(store, prepare, act, message):
    request_id = store.log("How many libraries closed in 2024?", CAROL).request.request_id
    for step in prepare:
        {
            "answer": lambda: store.answer(request_id, "jo", "Two."),
            "close": lambda: store.close(request_id, "jo"),
            "decline": lambda: store.decline(request_id, "jo", "Not council business"),
        }[step]()
    before, events = store.get(request_id), store.history(request_id)
    with pytest.raises(RequestError, match=message):
        act(store, request_id)
    assert store.get(request_id) == before and store.history(request_id) == events


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_answer_is_refused(store, text):
    request_id = store.log("Who approved the bus contract?", CAROL).request.request_id
    with pytest.raises(RequestError, match="answer is empty"):
        store.answer(request_id, "jo", text)
    assert store.get(request_id).state == OPEN and store.deliveries(request_id) == []


def test_empty_question_and_reason_are_refused(store):
    with pytest.raises(RequestError, match="question is empty"):
        store.log("  ", CAROL)
    request_id = store.log("Who approved the bus contract?", CAROL).request.request_id
    with pytest.raises(RequestError, match="reason for declining is empty"):
        store.decline(request_id, "jo", "")
    assert store.list() == [store.get(request_id)]


def test_unknown_ids_are_clear_errors(store):
    for act in (
        lambda: store.get(99),
        lambda: store.assign(99, "jo"),
        lambda: store.answer(99, "jo", "x"),
        lambda: store.history(99),
        lambda: store.mark_duplicate(99, 1, "jo"),
    ):
        with pytest.raises(RequestError, match="no request #99"):
            act()
    with pytest.raises(RequestError, match="no delivery #5"):
        store.record_delivery(5)


def test_decline_then_reopen_then_reassign(store):
    request_id = store.log("Is the Dover leisure centre closing?", CAROL).request.request_id
    store.assign(request_id, "amy")
    declined = store.decline(request_id, "amy", "A district council matter")
    assert declined.state == DECLINED and declined.reason == "A district council matter"
    reopened = store.reopen(request_id, "ben", "Kent owns the building")
    assert reopened.state == OPEN and reopened.reason is None and reopened.assigned_to is None
    assert store.assign(request_id, "ben").assigned_to == "ben"
    assert store.assign(request_id, "cat").assigned_to == "cat"  # reassigning is allowed
    assert [e.action for e in store.history(request_id)][-3:] == [
        "reopened",
        "assigned",
        "assigned",
    ]


# ---- duplicates --------------------------------------------------------------------------------


def test_same_question_twice_links_the_second_asker(store):
    first = store.log("What is the budget for road repairs in Canterbury?", ALICE)
    second = store.log("what is the budget for road repairs in Canterbury", BOB)
    assert first.created and not second.created
    assert second.request.request_id == first.request.request_id
    assert second.request.askers == (ALICE, BOB)
    again = store.log("What is the budget for road repairs in Canterbury?", ALICE)
    assert not again.created and again.request.askers == (ALICE, BOB)
    assert [e.action for e in store.history(first.request.request_id)] == [
        "logged",
        "linked asker",
        "asked again",
    ]


def test_reworded_question_links_but_other_town_does_not(store):
    first = store.log("When will the Dover bypass consultation close?", ALICE)
    reworded = store.log("When does the consultation on the Dover bypass close?", BOB)
    other_town = store.log("When will the Ashford bypass consultation close?", CAROL)
    other_year = store.log("How many potholes were repaired in 2023?", CAROL)
    other_word = store.log("How many potholes were reported in 2023?", CAROL)
    assert not reworded.created and reworded.request.request_id == first.request.request_id
    assert other_town.created and other_year.created and other_word.created
    assert len(store.list()) == 4


def test_answered_request_no_longer_collects_askers(store):
    first = store.log("How many children are in care in Kent?", ALICE).request
    store.answer(first.request_id, "jo", "About 1,900.")
    later = store.log("How many children are in care in Kent?", BOB)
    assert later.created and later.request.request_id != first.request_id


def test_both_askers_of_a_linked_request_get_deliveries(store):
    first = store.log("What is the budget for road repairs in Canterbury?", ALICE).request
    store.log("What is the budget for road repairs in Canterbury?", BOB)
    store.answer(first.request_id, "jo", "£3m")
    deliveries = store.deliveries(first.request_id)
    assert [(d.asker, d.state) for d in deliveries] == [
        (ALICE, DELIVERY_PENDING),
        (BOB, DELIVERY_PENDING),
    ]
    assert deliveries[0].asker.reply_to == ALICE.reply_to


def test_marked_duplicate_askers_hear_the_other_answer(store):
    main = store.log("What did the Cabinet decide on the Herne Bay library?", ALICE).request
    dup = store.log("Is Herne Bay library staying open after the Cabinet vote?", BOB).request
    assert dup.request_id != main.request_id
    marked = store.mark_duplicate(dup.request_id, main.request_id, "jo")
    assert marked.state == DUPLICATE and marked.duplicate_of == main.request_id
    with pytest.raises(RequestError, match="duplicate of itself"):
        store.mark_duplicate(main.request_id, dup.request_id, "jo")  # follows the chain to itself
    store.answer(main.request_id, "jo", "It stays open.")
    assert {d.asker.user_id for d in store.deliveries(main.request_id)} == {
        ALICE.user_id,
        BOB.user_id,
    }
    # a duplicate found after the answer is told at once
    late = store.log("Will Herne Bay library close this year?", CAROL).request
    store.mark_duplicate(late.request_id, main.request_id, "jo")
    assert CAROL in [d.asker for d in store.deliveries(main.request_id)]


def test_a_duplicate_of_a_duplicate_hears_the_answer_of_the_request_that_lives(store):
    x = store.log("Is the Ramsgate lido reopening in the spring?", ALICE).request
    y = store.log("When will the Ramsgate lido open again after repairs?", BOB).request
    z = store.log("What is the reopening date for Ramsgate's lido?", CAROL).request
    store.mark_duplicate(x.request_id, y.request_id, "jo")  # X -> Y
    store.mark_duplicate(y.request_id, z.request_id, "jo")  # then Y -> Z
    assert store.get(x.request_id).duplicate_of == z.request_id  # the chain is flattened

    store.answer(z.request_id, "jo", "It reopens on 1 May.")

    told = {d.asker.user_id for d in store.deliveries(z.request_id)}
    assert told == {ALICE.user_id, BOB.user_id, CAROL.user_id}


# ---- deliveries --------------------------------------------------------------------------------


def test_deliveries_are_leased_retried_with_backoff_and_never_dropped(store, clock):
    request_id = store.log("When is the next Cabinet?", ALICE).request.request_id
    store.answer(request_id, "jo", "13 March.")
    assert store.claim_deliveries(["email"]) == []  # other channels are left alone
    (claimed,) = store.claim_deliveries(["slack"])
    assert store.claim_deliveries(["slack"]) == []  # leased to the first claimer
    failed = store.record_delivery(claimed.delivery_id, "HTTP 503")
    assert failed.state == DELIVERY_PENDING and failed.attempts == 1
    assert failed.last_error == "HTTP 503" and failed.next_attempt_at == "2025-03-03T09:01:00+00:00"
    assert store.claim_deliveries(["slack"]) == []  # not due yet
    for attempt in range(2, 9):
        clock.advance(hours=2)
        (claimed,) = store.claim_deliveries(["slack"])
        last = store.record_delivery(claimed.delivery_id, f"HTTP 503 #{attempt}")
    assert last.state == "failed" and last.attempts == 8 and last.next_attempt_at is None
    clock.advance(days=1)
    assert store.claim_deliveries(["slack"]) == []  # given up, but kept and listed
    assert store.deliveries(state="failed") == [last]
    assert store.retry_failed("jo") == 1
    (claimed,) = store.claim_deliveries(["slack"])
    sent = store.record_delivery(claimed.delivery_id)
    assert sent.state == "sent" and sent.attempts == 9 and sent.sent_at
    with pytest.raises(RequestError, match="already sent"):
        store.record_delivery(claimed.delivery_id)


# ---- listing, overdue, purge -------------------------------------------------------------------


def test_list_filters(store, clock):
    store.log("Question about the Cabinet budget?", ALICE, committee="Cabinet")
    clock.advance(days=10)
    store.log("Question about the County Council pay policy?", BOB, committee="County Council")
    store.answer(2, "jo", "Yes.")
    assert [r.request_id for r in store.list()] == [1, 2]
    assert [r.request_id for r in store.list(RequestFilter(states=(ANSWERED,)))] == [2]
    before = (START + timedelta(days=5)).isoformat()
    assert [r.request_id for r in store.list(RequestFilter(created_before=before))] == [1]
    assert [r.request_id for r in store.list(RequestFilter(committee="county"))] == [2]
    assert [r.request_id for r in store.list(RequestFilter(asker="alice"))] == [1]
    assert [r.request_id for r in store.list(RequestFilter(asker="bob@"))] == [2]
    assert store.list(RequestFilter(asker_id="U0ALIC")) == []  # exact, unlike `asker`
    assert [r.request_id for r in store.list(RequestFilter(asker_id="U0ALICE"))] == [1]


def test_overdue_counts_working_days_oldest_first(store, clock):
    # Monday 3 March: ten working days later is Monday 17 March
    assert overdue_cutoff(START + timedelta(days=14), 10) == START
    store.log("Old question about Dover?", ALICE)
    clock.advance(days=1)
    store.log("Newer question about Ashford?", BOB)
    store.log("Answered question about Thanet?", CAROL)
    store.answer(3, "jo", "Done.")
    assert store.overdue(10, now=START + timedelta(days=14)) == []  # exactly ten: not yet
    late = START + timedelta(days=15, hours=1)  # Tuesday 18 March
    assert [r.request_id for r in store.overdue(10, now=late)] == [1, 2]
    assert [r.request_id for r in store.overdue(11, now=late)] == [1]


def test_purge_removes_finished_requests_and_personal_data(store, clock, tmp_path):
    closed = store.log("Purge me about Canterbury?", ALICE).request.request_id
    store.answer(closed, "jo", "Answer.")
    store.close(closed, "jo")
    declined = store.log("Purge me too about Dover?", BOB).request.request_id
    store.decline(declined, "jo", "No.")
    waiting = store.log("Keep me about Thanet?", CAROL).request.request_id
    clock.advance(days=400)
    fresh = store.log("Recently closed about Swale?", BOB).request.request_id
    store.answer(fresh, "jo", "Yes.")
    store.close(fresh, "jo")

    purged = store.purge(clock.now - timedelta(days=365), "dpo")
    assert purged == [closed, declined]
    assert [r.request_id for r in store.list()] == [waiting, fresh]
    for gone in purged:
        with pytest.raises(RequestError):
            store.get(gone)
    (event,) = [e for e in store.history() if e.action == "purge"]
    assert event.request_id == STORE_EVENT and event.actor == "dpo"
    assert "purged 2 finished request(s)" in event.detail and "#1, #2" in event.detail
    assert all(e.request_id not in purged for e in store.history())
    if not isinstance(store, SqliteRequestStore):
        return
    db = sqlite3.connect(tmp_path / "requests.sqlite3")
    dump = "\n".join(db.iterdump())
    db.close()
    assert "U0ALICE" not in dump and "Purge me" not in dump and "C1" not in dump


def test_migrations_are_recorded_and_run_once(tmp_path, clock):
    path = tmp_path / "requests.sqlite3"
    SqliteRequestStore(path, clock=clock).close_store()
    with SqliteRequestStore(path, clock=clock) as again:
        again.log("Still works?", CAROL)
    db = sqlite3.connect(path)
    names = [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    assert names == [name for name, _ in MIGRATIONS] and mode == "wal"


def test_a_request_is_announced_once_and_a_failed_post_is_claimed_again(store, clock):
    first = store.log("Which car parks in Maidstone charge on Sundays?", BOB).request
    second = store.log("How many potholes were filled in Swale?", CAROL).request
    answered = store.log("Who chairs the Cabinet?", CAROL).request
    store.answer(answered.request_id, "jo", "The Leader.")  # finished before its turn: never

    claimed = store.claim_announcements()
    assert [r.request_id for r in claimed] == [first.request_id, second.request_id]
    assert store.claim_announcements() == []  # claimed: no other process posts them meanwhile

    store.record_announcement(first.request_id)  # Slack accepted the post
    store.record_announcement(second.request_id, error="Slack refused it: not_in_channel")
    assert [r.request_id for r in store.claim_announcements()] == [second.request_id]
    store.record_announcement(second.request_id)
    store.record_announcement(second.request_id)  # recorded twice: still one announcement

    clock.advance(hours=1)  # every claim has run out
    assert store.claim_announcements() == []
    assert store.get(first.request_id).announced_at == "2025-03-03T09:00:00+00:00"
    assert store.get(answered.request_id).announced_at is None
    actions = [e.action for e in store.history(second.request_id)]
    assert actions.count("announced") == 1


def test_a_claim_that_was_never_recorded_runs_out(store, clock):
    request = store.log("Which car parks in Maidstone charge on Sundays?", BOB).request
    assert store.claim_announcements(lease_seconds=300)  # then the process died mid-post
    clock.advance(seconds=299)
    assert store.claim_announcements() == []
    clock.advance(seconds=2)
    assert [r.request_id for r in store.claim_announcements()] == [request.request_id]


def test_claims_take_the_oldest_first_up_to_the_limit(store):
    ids = [store.log(f"Question {n} about Ashford bins?", BOB).request.request_id for n in range(3)]
    assert [r.request_id for r in store.claim_announcements(limit=2)] == ids[:2]
    assert [r.request_id for r in store.claim_announcements(limit=2)] == ids[2:]


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_requests_logged_before_the_upgrade_count_as_announced(kind, tmp_path, clock):
    """The first pass after upgrading must not flood the officers' channel with old requests."""
    url = _database_before_announcing(kind, tmp_path)
    if kind == "sqlite":
        store = SqliteRequestStore(url, clock=clock)
    else:
        from bot.requests.stores.postgres import PostgresRequestStore

        store = PostgresRequestStore(url, clock=clock)
    try:
        [old] = store.list()
        assert old.question == "Which roads in Dover were resurfaced?"
        assert old.announced_at == old.created_at == "2025-01-06T10:00:00+00:00"
        new = store.log("Which libraries in Dover open on Sundays?", BOB).request
        assert [r.request_id for r in store.claim_announcements()] == [new.request_id]
    finally:
        store.close_store()


def _database_before_announcing(kind: str, tmp_path) -> str:
    """A request database as the last release left it: steps before m005, and one open request."""
    dialect = schema.SQLITE if kind == "sqlite" else schema.POSTGRES
    steps = [(name, text) for name, text in schema.ddl(dialect) if name < "m005"]
    assert len(steps) == 4
    if kind == "sqlite":
        target = str(tmp_path / "requests.sqlite3")
        db = sqlite3.connect(target, isolation_level=None)
        db.row_factory = sqlite3.Row
        execute = db.execute
    else:
        import psycopg
        from pg_server import fresh_database
        from psycopg.rows import dict_row

        target = fresh_database()
        db = psycopg.connect(target, autocommit=True, row_factory=dict_row)

        def execute(sql, args=()):
            return db.execute(sql.replace("?", "%s"), args)

    def run(_db, text):
        for statement in filter(str.strip, text.split(";")):
            execute(statement)

    apply_migrations(SimpleNamespace(execute=execute), steps, run, "2025-01-01T00:00:00+00:00")
    at = "2025-01-06T10:00:00+00:00"
    question = "Which roads in Dover were resurfaced?"
    execute(
        "INSERT INTO requests (question, normalised, state, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (question, question.lower(), OPEN, at, at),
    )
    db.close()
    return target
