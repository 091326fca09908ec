"""Run the real Clerk Bolt app over HTTP against the Web API stand-in, with signed requests.

Used by the Slack tests and bench/bench_slack.py: `SlackRig` starts the stand-in, builds the app
and its workers with `build_bot` and serves it with `SlackHttpServer` on 127.0.0.1 port 0.
`ClerkSlackProcess` runs `clerk slack` itself as a child process, for tests that kill it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import paths
from slack_api_server import TEAM_ID, SlackApiServer, user

from bot.channels.slack.app import build_bot
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
    return Settings.from_env({}, **slack_environment(home, api_url, **overrides))


def slack_environment(home: Path, api_url: str, **overrides) -> dict:
    """The settings of a Slack test, by environment variable."""
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
    return values


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
        self.bot = build_bot(self.settings, answerer, store, web_client(self.settings))
        self.app = self.bot.app
        self.bot.workers.start()
        self.server = SlackHttpServer(self.app, "127.0.0.1", 0).start()

    def close(self) -> None:
        self.server.stop()
        self.bot.workers.stop()
        self.bot.workers.queue.close()
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
        return signed_post(self.server.url, body, content_type, timestamp, secret, headers)

    def event(self, payload: dict, retry: int | None = None, **kwargs) -> Reply:
        return post_event(self.server.url, payload, retry, **kwargs)

    def command(self, form: dict, **kwargs) -> Reply:
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)

    def interaction(self, payload: dict, **kwargs) -> Reply:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)


def signed_post(
    url: str,
    body: bytes,
    content_type: str,
    timestamp: int | None = None,
    secret: str = SIGNING_SECRET,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST a body to a Slack request URL, signed the way Slack signs it."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - loopback
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


def post_event(url: str, payload: dict, retry: int | None = None, **kwargs) -> Reply:
    """POST an Events API payload; `retry` sends it as Slack's retry number `retry`."""
    headers = {}
    if retry is not None:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return signed_post(
        url, json.dumps(payload).encode(), "application/json", headers=headers, **kwargs
    )


class ClerkSlackProcess:
    """`clerk slack` in HTTP mode as a real child process on a free port, its log kept in
    `.log`; `start()` returns once it listens, `kill()` is SIGKILL."""

    def __init__(self, environment: dict) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "SLACK_"))},
            **{name: str(value) for name, value in environment.items()},
            "HF_HUB_OFFLINE": "1",
        }
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 120) -> ClerkSlackProcess:
        self.process = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "bot.cli.main", "slack", "--port", "0"],
            cwd=paths.REPO,
            env=self.env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._listening_url(timeout)
        # keep reading its log, so that a full pipe never stalls it
        self._reader = threading.Thread(target=self._read_log, args=(self.process,), daemon=True)
        self._reader.start()
        return self

    def event(self, payload: dict, retry: int | None = None) -> Reply:
        return post_event(self.url, payload, retry)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self._ended()

    def stop(self) -> None:
        """SIGTERM, and wait for it to end (it finishes the work in hand first)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self._ended()

    def terminate(self) -> None:
        """SIGTERM, without waiting."""
        assert self.process is not None
        self.process.terminate()

    def wait(self) -> int:
        self._ended()
        assert self.process is not None
        return self.process.returncode

    def _ended(self) -> None:
        assert self.process is not None
        self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)

    def _listening_url(self, timeout: float) -> str:
        assert self.process is not None and self.process.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            self.log.append(line)
            if not line and self.process.poll() is not None:
                raise AssertionError(f"clerk slack exited with {self.process.returncode}")
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                return found.group(1)
        raise AssertionError("clerk slack did not start listening")

    def _read_log(self, process: subprocess.Popen) -> None:
        assert process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                self.log.append(line)
