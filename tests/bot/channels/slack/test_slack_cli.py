"""`clerk slack`: clear errors for missing tokens, and HTTP mode end to end in a real process."""

from __future__ import annotations

import json

import pytest
from slack_api_server import SlackApiServer, user
from slack_harness import BOT_TOKEN, SIGNING_SECRET, ClerkSlackProcess, fixture

from bot.cli.main import main


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
    with SlackApiServer(token=BOT_TOKEN) as api:
        api.directory.users["U0CLLR001"] = user("cllr.jones", "Cllr Alex Jones")
        process = ClerkSlackProcess(
            {
                "CLERK_HOME": engine_settings.home,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "CLERK_SLACK_API_URL": api.base_url,
            }
        )
        try:
            process.start()
            assert process.event(fixture("app_mention.json")).status == 200
            update = api.wait_for("chat.update", timeout=60)[0]
            assert "Area Committee" in json.dumps(update.body["blocks"])
            # the background pass checked the connection and told the health check so
            assert main(["health", "slack", "--max-age", "120"]) == 0
        finally:
            process.stop()
        assert api.calls_to("auth.test")
