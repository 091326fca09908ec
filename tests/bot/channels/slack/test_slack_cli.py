"""`clerk slack`: clear errors for missing tokens, and HTTP mode end to end in a real process."""

from __future__ import annotations

import json

import pytest
from slack_api_server import SlackApiServer, user
from slack_harness import BOT_TOKEN, OFFICERS_CHANNEL, SIGNING_SECRET, ClerkSlackProcess, fixture

from bot.cli.main import main
from bot.requests.model import Asker
from bot.requests.service import open_store


@pytest.mark.parametrize(
    "env, words",
    [
        ({}, "SLACK_BOT_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-wrong"}, "app-level token"),
    ],
)
def test_bad_tokens_are_a_clear_config_error(monkeypatch, tmp_path, capsys, env, words):
    monkeypatch.setenv("CLERK_HOME", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["slack"]) == 2
    err = capsys.readouterr().err
    assert "clerk: error:" in err and words in err
    for secret in env.values():
        assert secret not in err


def test_clerk_slack_serves_http_mode_and_answers_a_mention(engine_settings, monkeypatch):
    monkeypatch.setenv("CLERK_HOME", str(engine_settings.home))
    with open_store(engine_settings) as store:  # logged at the terminal, before Slack started
        waiting = store.log("Who chairs the Cabinet?", Asker("cli", "carol")).request
    with SlackApiServer(token=BOT_TOKEN) as api:
        api.directory.users["U0CLLR001"] = user("cllr.jones", "Cllr Alex Jones")
        process = ClerkSlackProcess(
            {
                "CLERK_HOME": engine_settings.home,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "CLERK_SLACK_API_URL": api.base_url,
                "CLERK_SLACK_OFFICERS_CHANNEL": OFFICERS_CHANNEL,
            }
        )
        try:
            process.start()
            assert process.event(fixture("app_mention.json")).status == 200
            update = api.wait_for("chat.update", timeout=60)[0]
            assert "Area Committee" in json.dumps(update.body["blocks"])
            # the background pass checked the connection and told the health check so
            assert main(["health", "slack", "--max-age", "120"]) == 0
            # ... and posted the request logged elsewhere to the officers' channel
            api.wait_for(
                "chat.postMessage",
                where=lambda c: (
                    c.body["channel"] == OFFICERS_CHANNEL
                    and c.body["text"] == f"Request #{waiting.request_id}: Who chairs the Cabinet?"
                ),
            )
        finally:
            process.stop()
        assert api.calls_to("auth.test")
        heads = [  # with a mention left unanswered, its listener posted that one too
            c.body["text"].split(":")[0]
            for c in api.calls_to("chat.postMessage")
            if c.body["channel"] == OFFICERS_CHANNEL
        ]
        assert len(heads) == len(set(heads))  # no request posted twice
