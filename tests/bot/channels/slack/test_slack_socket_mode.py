"""The same app fed Socket Mode envelopes, through the path Bolt's Socket Mode handler takes."""

from __future__ import annotations

import json

import pytest
from slack_bolt.adapter.socket_mode.internals import run_bolt_app
from slack_harness import OFFICERS_CHANNEL, SlackRig, fixture
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.requests.service import open_store

UNANSWERABLE = "What did the area committee decide about parking charges at the leisure centre?"


@pytest.fixture
def rig(engine_settings, answerer):
    # Socket Mode needs no signing secret: Slack's WebSocket is the authentication
    with (
        open_store(engine_settings) as store,
        SlackRig(engine_settings, answerer, store, SLACK_SIGNING_SECRET="") as rig,
    ):
        yield rig


def envelope(name: str, **changes) -> SocketModeRequest:
    message = fixture(name)
    message.update(changes)
    return SocketModeRequest.from_dict(message)


def test_events_api_envelope_is_acked_and_answered_in_thread(rig):
    response = run_bolt_app(rig.app, envelope("socket_mode_events_api.json"))
    assert response.status == 200
    working = rig.api.wait_for("chat.postMessage")[0]
    assert working.body["thread_ts"] == "1741870800.000100"
    update = rig.api.wait_for("chat.update")[0]
    assert "Area Committee" in json.dumps(update.body["blocks"])


def test_retried_envelope_is_answered_once(rig):
    assert run_bolt_app(rig.app, envelope("socket_mode_events_api.json")).status == 200
    retry = envelope("socket_mode_events_api.json", retry_attempt=1, retry_reason="timeout")
    assert run_bolt_app(rig.app, retry).status == 200
    rig.api.wait_for("chat.update")
    rig.api.settle()
    assert len(rig.api.calls_to("chat.postMessage")) == 1


def test_slash_command_envelope_acks_with_the_working_text(rig):
    response = run_bolt_app(rig.app, envelope("socket_mode_slash_commands.json"))
    assert response.status == 200
    assert "Looking through the papers" in json.loads(response.body)["text"]
    update = rig.api.wait_for("chat.update")[0]
    assert update.body["channel"] == "D0CLLR001"


def test_unanswerable_question_in_socket_mode_reaches_officers(rig):
    message = fixture("socket_mode_events_api.json")
    message["payload"]["event"]["text"] = f"<@UCLERKBOT> {UNANSWERABLE}"
    assert run_bolt_app(rig.app, SocketModeRequest.from_dict(message)).status == 200
    officers = rig.api.wait_for(
        "chat.postMessage", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL
    )[0]
    assert "Request #1" in officers.body["text"]


def test_interactive_envelope_from_a_non_officer_is_refused(rig):
    payload = fixture("block_actions_assign.json")
    payload["user"]["id"] = "U0CLLR001"
    request = SocketModeRequest(type="interactive", envelope_id="e-1", payload=payload)
    assert run_bolt_app(rig.app, request).status == 200
    refusal = rig.api.wait_for("chat.postEphemeral")[0]
    assert "only officers" in refusal.body["text"]
