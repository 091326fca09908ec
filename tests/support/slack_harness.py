"""Run the real Clerk Bolt app over HTTP against the Web API stand-in, with signed requests.

Used by the Slack tests and bench/bench_slack.py: `SlackRig` starts the stand-in, builds the app
with `build_app` and serves it with `SlackHttpServer` on 127.0.0.1 port 0.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import paths
from slack_api_server import TEAM_ID, SlackApiServer, user

from bot.channels.slack.app import build_app
from bot.channels.slack.client import web_client
from bot.channels.slack.http import SlackHttpServer
from bot.settings import Settings

FIXTURES = paths.FIXTURES / "slack"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # noqa: S105 - Slack's documented example
BOT_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"  # noqa: S105 - made up
OFFICERS_CHANNEL = "C0OFFICERS"
OFFICER = "U0OFFICER1"  # listed in CLERK_SLACK_OFFICERS
GROUP_OFFICER = "U0OFFICER2"  # member of the officers' user group only
OFFICER_GROUP = "S0OFFICERS"
COUNCILLOR = "U0CLLR001"


def fixture(name: str) -> dict:
    """A fresh copy of a payload fixture."""
    return copy.deepcopy(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def sign(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    """Slack's v0 request signature."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    seconds: float  # from sending to the full HTTP response (Slack's 3-second budget)

    def json(self) -> dict:
        return json.loads(self.body) if self.body else {}


def slack_settings(home: Path, api_url: str, **overrides) -> Settings:
    values = dict(
        CLERK_HOME=home,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        CLERK_SLACK_API_URL=api_url,
        CLERK_SLACK_OFFICERS_CHANNEL=OFFICERS_CHANNEL,
        CLERK_SLACK_OFFICERS=OFFICER,
        CLERK_SLACK_OFFICER_GROUP=OFFICER_GROUP,
        CLERK_SLACK_TEAM_ID=TEAM_ID,
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


class SlackRig:
    """The stand-in Web API, and the real app behind a real HTTP server, for one test."""

    def __init__(self, base: Settings, answerer, store, **overrides) -> None:
        self.api = SlackApiServer(token=BOT_TOKEN).__enter__()
        self.api.directory.users[COUNCILLOR] = user("cllr.jones", "Cllr Alex Jones")
        self.api.directory.users[OFFICER] = user("a.officer", "Asha Officer")
        self.api.directory.usergroups[OFFICER_GROUP] = [GROUP_OFFICER]
        self.settings = slack_settings(base.home, self.api.base_url, **overrides)
        self.answerer = answerer
        self.store = store
        self.app = build_app(self.settings, answerer, store, web_client(self.settings))
        self.server = SlackHttpServer(self.app, "127.0.0.1", 0).start()

    def close(self) -> None:
        self.server.stop()
        self.api.__exit__(None, None, None)

    def __enter__(self) -> SlackRig:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def post(
        self,
        body: bytes,
        content_type: str,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """POST a body to /slack/events, signed the way Slack signs it."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        request = urllib.request.Request(self.server.url, data=body, method="POST")  # noqa: S310
        request.add_header("Content-Type", content_type)
        request.add_header("X-Slack-Request-Timestamp", str(timestamp))
        request.add_header("X-Slack-Signature", sign(body, timestamp, secret))
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                text = response.read().decode()
                return Reply(response.status, text, time.perf_counter() - start)
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read().decode(), time.perf_counter() - start)

    def event(self, payload: dict, retry: int | None = None, **kwargs) -> Reply:
        headers = {}
        if retry is not None:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        body = json.dumps(payload).encode()
        return self.post(body, "application/json", headers=headers, **kwargs)

    def command(self, form: dict, **kwargs) -> Reply:
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)

    def interaction(self, payload: dict, **kwargs) -> Reply:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)
