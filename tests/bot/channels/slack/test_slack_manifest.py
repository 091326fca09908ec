"""The Slack app manifest asks for exactly what the app uses."""

from __future__ import annotations

from pathlib import Path

import paths
import yaml

from bot.channels.slack import app as slack_app

MANIFEST = paths.REPO / "docker" / "slack-app-manifest.yaml"

# Scope each Web API method or event needs (https://api.slack.com/methods, /events).
METHOD_SCOPES = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.postEphemeral": "chat:write",
    "conversations.open": "im:write",
    "usergroups.users.list": "usergroups:read",
    "users.info": "users:read",
    "views.open": None,
    "views.publish": None,
}
EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.im": "im:history",
    "app_home_opened": None,
}


def load() -> dict:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def called_methods() -> set[str]:
    """Web API methods named anywhere in the Slack modules (client.chat_postMessage -> ...)."""
    import re

    names = set()
    for module in ("app", "guard", "notify"):
        source = (Path(slack_app.__file__).parent / f"{module}.py").read_text()
        names |= set(re.findall(r"client\.([a-z]+_[A-Za-z_]+)\(", source))
    by_python_name = {m.replace(".", "_"): m for m in METHOD_SCOPES}
    unknown = names - set(by_python_name)
    assert not unknown, f"add these to METHOD_SCOPES: {unknown}"
    return {by_python_name[n] for n in names}


def test_scopes_are_exactly_what_the_code_uses():
    manifest = load()
    wanted = {METHOD_SCOPES[m] for m in called_methods()} | {"commands"}
    wanted |= {EVENT_SCOPES[e] for e in manifest["settings"]["event_subscriptions"]["bot_events"]}
    wanted.discard(None)
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == wanted


def test_events_command_interactivity_home_and_socket_mode():
    manifest = load()
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == set(EVENT_SCOPES)
    assert manifest["features"]["slash_commands"][0]["command"] == "/clerk"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert len(manifest["display_information"]["long_description"]) >= 175
