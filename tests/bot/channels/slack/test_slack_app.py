"""The real Bolt app in HTTP mode, driven by signed requests, against the Web API stand-in."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from slack_api_server import TEAM_ID
from slack_harness import (
    BOT_TOKEN,
    COUNCILLOR,
    GROUP_OFFICER,
    OFFICER,
    OFFICERS_CHANNEL,
    SIGNING_SECRET,
    SlackRig,
    fixture,
)

from bot.channels.slack import render
from bot.requests.model import ANSWERED, ASSIGNED, DECLINED, OPEN, Asker
from bot.requests.service import RESPONSES_DIR, open_store

UNANSWERABLE = "What did the area committee decide about parking charges at the leisure centre?"
MENTION_TS = "1741870800.000100"


@pytest.fixture
def store(engine_settings):
    with open_store(engine_settings) as store:
        yield store


@pytest.fixture
def rig(engine_settings, answerer, store):
    with SlackRig(engine_settings, answerer, store) as rig:
        yield rig


def mention(text: str | None = None, event_id: str = "Ev0MENTION01") -> dict:
    payload = fixture("app_mention.json")
    payload["event_id"] = event_id
    if text is not None:
        payload["event"]["text"] = f"<@UCLERKBOT> {text}"
    return payload


def texts(call) -> str:
    """Everything a message shows: fallback text and every text object in its blocks."""
    return call.body.get("text", "") + "\n" + json.dumps(call.body.get("blocks", []))


def posted(rig, channel: str):
    return [c for c in rig.api.calls_to("chat.postMessage") if c.body["channel"] == channel]


def log_unanswered(rig) -> dict:
    """A mention the papers do not answer; returns the officers' channel post."""
    assert rig.event(mention(UNANSWERABLE)).status == 200
    rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == "C0GENERAL")
    return rig.api.wait_for(
        "chat.postMessage", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL
    )[0]


def test_mention_is_answered_in_its_thread_with_a_citation(rig):
    reply = rig.event(mention())
    assert reply.status == 200 and reply.seconds < 3

    working = rig.api.wait_for("chat.postMessage")[0]
    assert working.body["channel"] == "C0GENERAL"
    assert working.body["thread_ts"] == MENTION_TS
    assert "Looking through the papers" in working.body["text"]

    update = rig.api.wait_for("chat.update")[0]
    assert update.body["channel"] == "C0GENERAL"
    assert update.body["ts"] == rig.api.calls_to("chat.postMessage")[0].body.get(
        "ts", update.body["ts"]
    )
    shown = texts(update)
    assert "Protecting vulnerable children and adults at risk of exploitation" in shown
    assert "Area Committee" in shown  # the citation line: title, committee, date
    actions = [b for b in update.body["blocks"] if b["type"] == "actions"][0]
    assert [e["text"]["text"] for e in actions["elements"]] == [
        "Helpful",
        "Not answered: ask officers",
    ]
    assert rig.store.list() == []  # answered: nothing logged


def test_direct_message_is_answered_beside_it(rig):
    assert rig.event(fixture("message_im.json")).status == 200
    working = rig.api.wait_for("chat.postMessage")[0]
    assert working.body["channel"] == "D0CLLR001"
    assert "thread_ts" not in working.body  # a DM answer stands beside the question
    update = rig.api.wait_for("chat.update")[0]
    assert "Area Committee" in texts(update)


def test_slash_command_acks_at_once_and_answers_in_a_dm(rig):
    reply = rig.command(fixture("slash_command.json"))
    assert reply.status == 200 and reply.seconds < 3
    assert "Looking through the papers" in reply.json()["text"]

    rig.api.wait_for("conversations.open")
    update = rig.api.wait_for("chat.update")[0]
    assert update.body["channel"] == "D0CLLR001"
    shown = texts(update)
    assert "You asked" in shown and "Area Committee" in shown


def test_unanswerable_question_is_logged_and_posted_to_officers(rig):
    officers = log_unanswered(rig)
    update = rig.api.calls_to("chat.update")[0]
    assert "request #1" in update.body["text"]
    assert "could not find" in update.body["text"]

    request = rig.store.get(1)
    assert request.state == OPEN and request.question == UNANSWERABLE
    (asker,) = request.askers
    assert asker == Asker("slack", COUNCILLOR, "Cllr Alex Jones")
    assert asker.reply_to == {"channel": "C0GENERAL", "thread_ts": MENTION_TS}

    shown = texts(officers)
    assert "Request #1" in shown and "parking charges" in shown
    assert "Cllr Alex Jones" in shown and f"<@{COUNCILLOR}>" not in shown  # named, not pinged
    buttons = [
        e["action_id"]
        for b in officers.body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert buttons == ["clerk_assign", "clerk_answer_open", "clerk_decline_open"]


def test_officer_answers_in_the_modal_and_the_councillor_gets_it_in_the_thread(rig):
    log_unanswered(rig)
    rig.api.reset()

    assert rig.interaction(fixture("block_actions_answer.json")).status == 200
    opened = rig.api.wait_for("views.open")[0]
    view = opened.body["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "clerk_answer"
    assert json.loads(view["private_metadata"])["request_id"] == 1

    reply = rig.interaction(fixture("view_submission_answer.json"))
    assert reply.status == 200 and reply.body == ""  # the modal closes

    delivered = rig.api.wait_for(
        "chat.postMessage", where=lambda c: c.body["channel"] == "C0GENERAL"
    )[0]
    assert delivered.body["thread_ts"] == MENTION_TS
    assert "next review is due in July" in texts(delivered)
    assert "request #1" in delivered.body["text"]

    updated = rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL)
    assert "answered" in texts(updated[0]) and "clerk_answer_open" not in texts(updated[0])
    request = rig.store.get(1)
    assert request.state == ANSWERED and request.answered_by == OFFICER
    assert [d.state for d in rig.store.deliveries(1)] == ["sent"]  # recorded before the update
    assert list((rig.settings.home / RESPONSES_DIR).glob("request-1/*.txt"))  # a cited source now


def test_officer_in_the_user_group_assigns_a_request(rig):
    log_unanswered(rig)
    payload = fixture("block_actions_assign.json")
    payload["user"]["id"] = GROUP_OFFICER
    assert rig.interaction(payload).status == 200
    update = rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL)
    assert f"<@{GROUP_OFFICER}>" in texts(update[0])
    assert rig.store.get(1).state == ASSIGNED
    assert rig.store.get(1).assigned_to == GROUP_OFFICER
    rig.api.wait_for("usergroups.users.list")


def test_officer_closes_an_answered_request_from_its_message(rig):
    log_unanswered(rig)
    rig.store.answer(1, OFFICER, "The charges are not set yet.")
    assert render.request_actions(rig.store.get(1))["elements"][0]["action_id"] == render.CLOSE
    assert rig.interaction(fixture("block_actions_close.json")).status == 200
    rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL)
    assert rig.store.get(1).state == "closed"


def test_officer_declines_with_a_reason(rig):
    log_unanswered(rig)
    assert rig.interaction(fixture("block_actions_decline.json")).status == 200
    rig.api.wait_for("views.open")
    assert rig.interaction(fixture("view_submission_decline.json")).status == 200
    rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL)
    request = rig.store.get(1)
    assert request.state == DECLINED and "police" in request.reason


@pytest.mark.parametrize(
    "name", ["block_actions_assign.json", "block_actions_answer.json", "block_actions_decline.json"]
)
def test_non_officer_is_refused_politely(rig, name):
    log_unanswered(rig)
    rig.api.reset()
    payload = fixture(name)
    payload["user"]["id"] = COUNCILLOR
    assert rig.interaction(payload).status == 200
    refusal = rig.api.wait_for("chat.postEphemeral")[0]
    assert refusal.body["user"] == COUNCILLOR and "only officers" in refusal.body["text"]
    rig.api.settle()
    assert rig.api.calls_to("views.open") == [] and rig.api.calls_to("chat.update") == []
    assert rig.store.get(1).state == OPEN


def test_non_officer_modal_submission_is_refused_in_the_modal(rig):
    log_unanswered(rig)
    payload = fixture("view_submission_answer.json")
    payload["user"]["id"] = COUNCILLOR
    reply = rig.interaction(payload)
    assert reply.json()["response_action"] == "errors"
    assert rig.store.get(1).state == OPEN


def test_answering_a_closed_request_shows_the_error_in_the_modal(rig):
    log_unanswered(rig)
    rig.store.answer(1, "U0SOMEONE", "Already answered elsewhere.")
    reply = rig.interaction(fixture("view_submission_answer.json"))
    assert reply.json()["response_action"] == "errors"
    assert rig.store.get(1).answered_by == "U0SOMEONE"


@pytest.mark.parametrize(
    "how",
    [
        {"secret": "not-the-signing-secret"},
        {"timestamp": int(time.time()) - 6 * 60},  # more than five minutes old
    ],
    ids=["forged", "stale"],
)
def test_forged_or_stale_requests_are_rejected_and_nothing_is_posted(rig, how):
    assert rig.event(mention(), **how).status == 401
    assert rig.command(fixture("slash_command.json"), **how).status == 401
    assert rig.interaction(fixture("block_actions_helpful.json"), **how).status == 401
    rig.api.settle()
    assert {c.method for c in rig.api.calls} <= {"auth.test"}


def test_an_oversized_or_unmeasured_body_is_refused_before_it_is_read(rig):
    host, port = rig.server.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        # claims 2 GB and sends none of it: refused at once, nothing buffered
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000000\r\n\r\n"
        )
        assert conn.recv(100).startswith(b"HTTP/1.0 413")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\n\r\n")  # no length at all
        assert conn.recv(100).startswith(b"HTTP/1.0 411")
    assert {c.method for c in rig.api.calls} <= {"auth.test"}


def test_a_client_that_stalls_is_dropped(rig):
    host, port = rig.server.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\n")  # ...and never finishes the headers
        started = time.monotonic()
        assert conn.recv(100) == b""  # the server hung up on us
        assert time.monotonic() - started < 25


def test_retried_event_is_answered_once(rig):
    assert rig.event(mention()).status == 200
    assert rig.event(mention(), retry=1).status == 200
    assert rig.event(mention(), retry=2).status == 200
    rig.api.wait_for("chat.update")
    rig.api.settle()
    assert len(rig.api.calls_to("chat.postMessage")) == 1
    assert len(rig.api.calls_to("chat.update")) == 1


def test_a_retry_arriving_after_a_restart_is_not_answered_again(engine_settings, answerer, store):
    with SlackRig(engine_settings, answerer, store) as first:
        assert first.event(mention()).status == 200
        first.api.wait_for("chat.update")
    with SlackRig(engine_settings, answerer, store) as restarted:  # same data directory
        assert restarted.event(mention(), retry=1).status == 200
        restarted.api.settle()
        assert not restarted.api.calls_to("chat.postMessage")


def test_event_from_another_workspace_is_ignored(rig):
    payload = mention()
    payload["team_id"] = payload["event"]["team"] = "T0ELSEWHERE"
    payload["authorizations"][0]["team_id"] = "T0ELSEWHERE"
    assert rig.event(payload).status == 200
    rig.api.settle()
    assert rig.api.calls_to("chat.postMessage") == []
    assert TEAM_ID != "T0ELSEWHERE"


def test_rate_limited_post_is_retried_after_retry_after(rig):
    rig.api.rate_limit_once("chat.postMessage", retry_after=0)
    assert rig.event(mention()).status == 200
    rig.api.wait_for("chat.update")
    statuses = [c.status for c in rig.api.calls if c.method == "chat.postMessage"]
    assert statuses == [429, 200]


def test_helpful_is_recorded_and_thanked(rig):
    assert rig.interaction(fixture("block_actions_helpful.json")).status == 200
    thanks = rig.api.wait_for("chat.postEphemeral")[0]
    assert thanks.body["user"] == COUNCILLOR and "Thank you" in thanks.body["text"]
    lines = (rig.settings.home / "slack-feedback.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    assert (
        record["helpful"] and record["user"] == COUNCILLOR and "exploitation" in record["question"]
    )


def test_not_answered_button_logs_a_request_for_officers(rig):
    assert rig.interaction(fixture("block_actions_ask_officers.json")).status == 200
    rig.api.wait_for("chat.postMessage", where=lambda c: c.body["channel"] == OFFICERS_CHANNEL)
    note = rig.api.wait_for("chat.postEphemeral")[0]
    assert "request #1" in note.body["text"]
    request = rig.store.get(1)
    assert request.askers[0].reply_to == {"channel": "C0GENERAL", "thread_ts": MENTION_TS}
    assert request.nearest  # the passages the councillor found wanting go to officers


def test_app_home_shows_a_councillor_their_requests_and_an_officer_the_queue(rig):
    log_unanswered(rig)
    assert rig.event(fixture("app_home_opened.json")).status == 200
    home = rig.api.wait_for("views.publish")[0]
    assert home.body["user_id"] == COUNCILLOR
    assert "Your questions to officers" in json.dumps(home.body["view"])
    assert "parking charges" in json.dumps(home.body["view"])

    payload = fixture("app_home_opened.json")
    payload["event_id"] = "Ev0HOME02"
    payload["event"]["user"] = OFFICER
    assert rig.event(payload).status == 200
    home = rig.api.wait_for("views.publish", where=lambda c: c.body["user_id"] == OFFICER)[0]
    view = json.dumps(home.body["view"])
    assert "Requests waiting for officers" in view and "clerk_answer_open" in view


def test_failure_apologises_to_the_user(rig, caplog):
    payload = fixture("block_actions_answer.json")
    payload["actions"][0]["value"] = "999"  # no such request
    with caplog.at_level(logging.DEBUG):
        assert rig.interaction(payload).status == 200
        apology = rig.api.wait_for("chat.postEphemeral")[0]
    assert "Sorry" in apology.body["text"] and apology.body["user"] == OFFICER
    assert "RequestError" in caplog.text


def test_tokens_and_secrets_never_reach_the_logs(rig, caplog):
    with caplog.at_level(logging.DEBUG):
        rig.event(mention())
        rig.api.wait_for("chat.update")
        rig.event(mention(), retry=1)
        rig.event(mention(), secret="forged")  # noqa: S106
        rig.api.settle()
    assert BOT_TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text


def test_edits_and_bot_messages_in_a_dm_are_not_answered(rig):
    edited = fixture("message_im.json")
    edited["event"]["subtype"] = "message_changed"
    from_bot = fixture("message_im.json")
    from_bot["event_id"] = "Ev0DIRECT02"
    from_bot["event"]["bot_id"] = "B0OTHER"
    assert rig.event(edited).status == 200
    assert rig.event(from_bot).status == 200
    rig.api.settle()
    assert rig.api.calls_to("chat.postMessage") == []


def test_url_verification_challenge_is_answered_for_http_mode_setup(rig):
    payload = {
        "token": "XXYYZZverificationtoken",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3g",
        "type": "url_verification",
    }
    reply = rig.event(payload)
    assert reply.status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3g" in reply.body


def test_work_that_keeps_failing_is_given_up_with_an_apology(rig, caplog):
    rig.api.refuse("chat.update", "internal_error", times=100)  # Slack keeps refusing the answer
    with caplog.at_level(logging.INFO):
        assert rig.event(mention()).status == 200
        apology = rig.api.wait_for("chat.postEphemeral", timeout=60)[0]
        rig.api.settle()
    assert "Sorry" in apology.body["text"] and apology.body["user"] == COUNCILLOR
    assert len(rig.api.refused_calls("chat.update")) == 3  # three tries, then no more
    assert len(rig.api.calls_to("chat.postMessage")) == 1  # one "working" message for all three
    (failure,) = rig.bot.workers.queue.failures()
    assert failure[1:] == ("mention", "SlackApiError: internal_error")
    assert "failed after 3 attempt(s)" in caplog.text
    assert COUNCILLOR not in caplog.text and "exploitation" not in caplog.text  # no personal data
