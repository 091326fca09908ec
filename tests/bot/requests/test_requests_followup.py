"""Orchestration: questions become requests, answers reach every asker and become sources."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from requests_support import ALICE, BOB, CAROL, Clock, RecordingNotifier, citation

from bot.channels.terminal.notify import CliNotifier
from bot.errors import RequestError
from bot.requests.model import DELIVERY_PENDING, DELIVERY_SENT, Asker
from bot.requests.service import (
    deliver_answers,
    escalate,
    handle_question,
    open_store,
    publish_response,
)
from bot.requests.stores.sqlite import SqliteRequestStore
from bot.settings import Settings
from indexer.errors import ConfigError
from indexer.sources import discover


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    with SqliteRequestStore(tmp_path / "requests.sqlite3", clock=clock) as s:
        yield s


def test_two_askers_on_two_channels_are_both_told(store):
    first = store.log("What is the budget for road repairs in Canterbury?", ALICE)
    second = store.log("What is the budget for road repairs in Canterbury?", BOB)
    assert first.created and not second.created
    slack, email = RecordingNotifier("slack"), RecordingNotifier("email")
    assert deliver_answers(store, {"slack": slack, "email": email}).results == ()  # not answered

    store.answer(first.request.request_id, "Jane Officer", "£3m this year.")
    report = deliver_answers(store, {"slack": slack, "email": email})
    assert slack.delivered == [(1, ALICE.user_id, "£3m this year.")]
    assert email.delivered == [(1, BOB.user_id, "£3m this year.")]
    assert [d.asker for d in report.sent] == [ALICE, BOB] and report.failed == ()
    assert deliver_answers(store, {"slack": slack, "email": email}).results == ()  # sent once


def test_failed_delivery_is_recorded_then_retried(store, clock):
    request_id = store.log("When is the next Cabinet meeting?", ALICE).request.request_id
    store.answer(request_id, "jo", "13 March.")
    slack = RecordingNotifier("slack", fail_times=1)

    report = deliver_answers(store, {"slack": slack})
    (failed,) = report.failed
    assert failed.state == DELIVERY_PENDING and failed.attempts == 1
    assert "channel unavailable" in failed.last_error and slack.delivered == []
    assert store.deliveries(request_id)[0].last_error == failed.last_error

    report = deliver_answers(store, {"slack": slack}, now=clock.now + timedelta(minutes=2))
    assert [d.state for d in report.results] == [DELIVERY_SENT]
    assert slack.delivered == [(request_id, ALICE.user_id, "13 March.")]
    actions = [e.action for e in store.history(request_id)]
    assert actions[-2:] == ["delivery will be retried", "delivered"]


def test_a_broken_notifier_does_not_lose_the_answer(store):
    class Broken:
        channel = "cli"

        def deliver(self, request, asker):
            raise RuntimeError("bug in a channel")

    request_id = store.log("Who chairs the Cabinet?", CAROL).request.request_id
    store.answer(request_id, "jo", "The Leader.")
    (failed,) = deliver_answers(store, {"cli": Broken()}).failed
    assert failed.last_error == "RuntimeError: bug in a channel"
    assert store.deliveries(request_id)[0].state == DELIVERY_PENDING


def test_cli_notifier_appends_to_the_inbox_file(tmp_path, store):
    request_id = store.log("Who chairs the Cabinet?", Asker("cli", "../carol")).request.request_id
    store.answer(request_id, "jo", "The Leader.")
    notifier = CliNotifier(tmp_path / "inbox")
    deliver_answers(store, {"cli": notifier})
    (inbox,) = (tmp_path / "inbox").iterdir()  # the name cannot escape the inbox
    assert inbox == notifier.path_for("../carol")
    assert (
        "request #1 was answered by jo" in inbox.read_text() and "The Leader." in inbox.read_text()
    )


def test_escalate_turns_an_answer_into_a_request(store):
    from bot.types import Answer

    answer = Answer("What did the Cabinet decide?", True, "It agreed.", citations=(citation(),))
    logged = escalate(store, answer, ALICE)
    assert logged.created and logged.request.nearest == (citation(),)
    assert logged.request.committee == "Cabinet"


def test_publish_response_is_a_document_the_indexer_reads(tmp_path, store):
    request = store.log(
        "How much has Kent spent on potholes?", ALICE, [citation(score=0.3)]
    ).request
    answered = store.answer(request.request_id, "Jane Officer", "£12m in 2024-25.")
    settings = Settings.from_env({}, CLERK_HOME=tmp_path / "home")
    path = publish_response(settings, answered)

    assert path.parent == settings.home / "responses" / "request-1"
    text = path.read_text()
    assert text.splitlines()[0] == "Officer response to request #1 (2025-03-03, Jane Officer)"
    assert "Question: How much has Kent spent on potholes?" in text and "£12m in 2024-25." in text
    meeting = json.loads((path.parent / "meeting.json").read_text())
    assert meeting == {
        "council": "Kent County Council",
        "committee": "Officer responses",
        "meeting_date": "2025-03-03",
        "site": None,
    }
    (paper,) = discover(settings.home / "responses")
    assert paper.title == "Officer response to request #1 (2025-03-03, Jane Officer)"
    assert paper.meeting.committee == "Officer responses" and paper.kind == "text"
    assert publish_response(settings, answered) == path  # idempotent
    with pytest.raises(RequestError, match="no answer to publish"):
        publish_response(settings, store.log("Other question?", BOB).request)


def test_open_store_chooses_the_backend(tmp_path):
    settings = Settings.from_env({}, CLERK_HOME=tmp_path)
    store = open_store(settings)
    try:
        assert isinstance(store, SqliteRequestStore) and store.path == settings.requests_db
    finally:
        store.close_store()
    with pytest.raises(ConfigError, match="scheme 'mysql'"):
        open_store(Settings.from_env({}, CLERK_HOME=tmp_path, CLERK_DATABASE_URL="mysql://x"))


# ---- with the real answering engine ------------------------------------------------------------

UNANSWERABLE = "When will the Sittingbourne swimming pool reopen after the roof repairs?"


def test_handle_question_logs_only_unanswered_questions(answerer, engine_settings):
    with open_store(engine_settings) as store:
        answer, logged = handle_question(answerer, store, UNANSWERABLE, ALICE)
        assert not answer.answered and logged.created
        assert logged.request.question == UNANSWERABLE and logged.request.askers == (ALICE,)
        assert logged.request.nearest == answer.nearest and answer.nearest
        again, linked = handle_question(answerer, store, UNANSWERABLE.lower(), BOB)
        assert not linked.created and linked.request.askers == (ALICE, BOB)
        assert len(store.list()) == 1
        answered, none = handle_question(
            answerer,
            store,
            "How much LEVI capital funding did the Liberal Democrats' amendment propose?",
            CAROL,
        )
        assert answered.answered and none is None and len(store.list()) == 1


def test_officer_answer_becomes_a_cited_source(engine_settings, embedder):
    from bot.engine.answer import Answerer
    from bot.requests.service import answer_request

    answerer = Answerer.from_settings(engine_settings, embedder)
    with open_store(engine_settings) as store:
        _, logged = handle_question(answerer, store, UNANSWERABLE, ALICE)
        done = answer_request(  # what every channel goes through
            engine_settings,
            store,
            logged.request.request_id,
            "Jane Officer",
            "The Sittingbourne swimming pool will reopen on 1 September 2025, once the roof "
            "repairs (costing £1.2m) are finished.",
            notifiers={},
            embedder=embedder,
        )
        request, summary = done.request, done.indexed
        assert summary.published and summary.added == 1 and summary.unchanged > 0, summary

        later, none = handle_question(
            answerer, store, "When does the swimming pool in Sittingbourne reopen?", BOB
        )
    assert later.answered and none is None, later
    top = later.citations[0]
    assert top.title == "Officer response to request #1 (2025-03-03, Jane Officer)".replace(
        "2025-03-03", request.answered_at[:10]
    )
    assert top.committee == "Officer responses" and "1 September 2025" in top.quote


def test_clerk_ask_logs_unanswered_questions(engine_settings, monkeypatch, capsys):
    from bot.cli.main import main

    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    monkeypatch.setenv("CLERK_CORPUS", str(engine_settings.index.corpus))
    monkeypatch.setattr("getpass.getuser", lambda: "cllr.dave")
    assert main(["ask", "--json", UNANSWERABLE]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["answered"] is False and "request #1" in printed["answer"]
    with open_store(engine_settings) as store:
        (request,) = store.list()
    assert request.question == UNANSWERABLE
    assert request.askers == (Asker("cli", "cllr.dave", "cllr.dave"),)
