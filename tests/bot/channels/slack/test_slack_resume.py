"""Work Slack was told Clerk had taken in survives the bot being killed: `clerk slack` runs as a
real process, is killed with SIGKILL at a known point (the Web API stand-in holds one of its
calls there), and is started again on the same data directory."""

from __future__ import annotations

import json

import pytest
from slack_api_server import SlackApiServer, user
from slack_harness import (
    BOT_TOKEN,
    COUNCILLOR,
    OFFICERS_CHANNEL,
    ClerkSlackProcess,
    fixture,
    slack_environment,
)

from bot.channels.slack.jobs import JOBS_FILE, JobQueue
from bot.channels.slack.workers import Workers
from bot.requests.service import open_store

UNANSWERABLE = "What did the area committee decide about parking charges at the leisure centre?"
CHANNEL = "C0GENERAL"  # where the mention fixture was posted


@pytest.fixture
def api():
    with SlackApiServer(token=BOT_TOKEN) as api:
        api.directory.users[COUNCILLOR] = user("cllr.jones", "Cllr Alex Jones")
        yield api


@pytest.fixture
def bot(engine_settings, api, encoders_dir):
    environment = slack_environment(
        engine_settings.home,
        api.base_url,
        CLERK_CORPUS=engine_settings.index.corpus,
        CLERK_ENCODER_DIR=encoders_dir,
        CLERK_ANSWER_THRESHOLD=engine_settings.engine.answer_threshold,
    )
    process = ClerkSlackProcess(environment)
    yield process
    process.stop()


def mention(text: str | None = None) -> dict:
    payload = fixture("app_mention.json")
    if text is not None:
        payload["event"]["text"] = f"<@UCLERKBOT> {text}"
    return payload


def to(channel: str):
    """A test of a recorded call: did it go to `channel`?"""
    return lambda call: call.body.get("channel") == channel


def kill_while_held(bot, api, method: str, payload: dict, channel: str = CHANNEL) -> None:
    """Start the bot, send the event, and kill the bot while its call of `method` to `channel`
    is on its way to Slack; that call never arrives. Then start the bot again."""
    api.hold(method, lambda body: body.get("channel") == channel)
    bot.start()
    assert bot.event(payload).status == 200  # acknowledged: Slack will not send it again
    api.wait_held(method)
    bot.kill()
    api.release(method, drop=True)
    bot.start()


def assert_answered_once(api) -> None:
    """One "working" message in the councillor's thread, updated in place once."""
    (working,) = [c for c in api.calls_to("chat.postMessage") if to(CHANNEL)(c)]
    assert "Looking through the papers" in working.body["text"]
    assert working.body["thread_ts"] == "1741870800.000100"
    updates = [c for c in api.calls_to("chat.update") if to(CHANNEL)(c)]
    assert [c.body["ts"] for c in updates] == [working.reply["ts"]]


@pytest.mark.parametrize("method", ["chat.update", "chat.postMessage"])
def test_a_question_acknowledged_before_a_kill_is_answered_once_after_the_restart(bot, api, method):
    # killed after answering but before showing it, or while posting "working on it"
    kill_while_held(bot, api, method, mention())
    assert bot.event(mention(), retry=1).status == 200  # a retry while the work is resumed
    update = api.wait_for("chat.update", where=to(CHANNEL), timeout=120)[0]
    assert bot.event(mention(), retry=2).status == 200  # and one after it is answered
    api.settle(quiet=1.5)

    assert_answered_once(api)
    assert "Area Committee" in json.dumps(update.body["blocks"])


def test_a_bot_stopped_with_sigterm_finishes_the_answer_in_hand(bot, api):
    api.hold("chat.postMessage")  # "working on it" is on its way to Slack ...
    bot.start()
    assert bot.event(mention()).status == 200
    api.wait_held("chat.postMessage")
    bot.terminate()  # ... when the bot is told to stop (docker stop, a deploy)
    api.release("chat.postMessage")
    assert bot.wait() == 0
    api.wait_for("chat.update")  # it answered before it went

    bot.start()
    api.settle(quiet=1.5)
    assert_answered_once(api)  # and nothing was left to resume and post again


@pytest.mark.parametrize(
    "method, channel",
    [("chat.postMessage", OFFICERS_CHANNEL), ("chat.update", CHANNEL)],
    ids=["killed telling officers", "killed showing the answer"],
)
def test_a_request_logged_before_a_kill_is_logged_and_posted_to_officers_once(
    bot, api, engine_settings, method, channel
):
    kill_while_held(bot, api, method, mention(UNANSWERABLE), channel)
    update = api.wait_for("chat.update", where=to(CHANNEL), timeout=120)[0]
    api.settle(quiet=1.5)

    assert_answered_once(api)
    assert "request #1" in update.body["text"]
    (officers,) = [c for c in api.calls_to("chat.postMessage") if to(OFFICERS_CHANNEL)(c)]
    assert "Request #1" in officers.body["text"]
    with open_store(engine_settings) as store:
        (request,) = store.list()
        assert len(request.askers) == 1
        history = [event.action for event in store.history(request.request_id)]
        assert history == ["logged", "announced"]  # logged once, posted to officers once


def test_work_a_running_process_has_claimed_is_left_to_it(bot, api, engine_settings):
    api.hold("chat.update")
    bot.start()
    assert bot.event(mention()).status == 200
    api.wait_held("chat.update")  # the running bot is showing its answer

    queue = JobQueue(engine_settings.home / JOBS_FILE)
    ran: list[dict] = []
    second = Workers(
        queue,
        {"mention": lambda payload, steps: ran.append(payload)},
        lambda job: None,
        1,
        engine_settings.home,
    ).start()
    assert queue.counts()["claimed"] == 1 and ran == []  # not taken over, not run again
    second.stop()
    queue.close()

    api.release("chat.update")
    api.wait_for("chat.update")
    api.settle(quiet=1.0)
    assert_answered_once(api)
