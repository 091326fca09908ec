"""A loopback HTTP server standing in for Slack's Web API, for tests and the benchmark.

It answers the methods Clerk calls with JSON shaped like Slack's, records every call (method,
parsed body, headers, arrival time, the reply) and can be told to rate-limit a method once (429
with Retry-After), to refuse a method (`{"ok": false}`) a number of times, or to hold a method's
calls until released, so a test can stop the bot at a known point (then kill it) and decide
whether the held call ever reached "Slack". Point `slack_sdk.WebClient(base_url=...)` at it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

TEAM_ID = "T0CLERK01"
BOT_USER_ID = "UCLERKBOT"
BOT_ID = "BCLERKBOT"


@dataclass
class Call:
    """One Web API call as it reached the stand-in."""

    method: str
    body: dict
    headers: dict[str, str]
    at: float  # time.perf_counter() on arrival
    status: int = 200
    error: str = ""  # the refusal it got ({"ok": false, "error": ...}), if any
    reply: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200 and not self.error


@dataclass
class Held:
    """A call waiting at the stand-in until the test releases it."""

    method: str
    body: dict
    outcome: str = ""  # "answer" (it reaches Slack) or "drop" (it never did)


@dataclass
class Directory:
    """Workspace data the stand-in answers with."""

    users: dict[str, dict] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)


class SlackApiServer:
    """Start with `with SlackApiServer() as api:`; `api.base_url` ends in `/api/`."""

    def __init__(self, token: str = "xoxb-test-token") -> None:  # noqa: S107 - a test token
        self.token = token
        self.calls: list[Call] = []
        self.directory = Directory()
        self._lock = threading.Condition()
        self._rate_limit: dict[str, int] = {}  # method -> Retry-After seconds, for one call
        # method -> (error, calls left, only calls to this channel)
        self._refuse: dict[str, tuple[str, int, str | None]] = {}
        self._holds: dict[str, Callable[[dict], bool]] = {}  # method -> which calls to hold
        self.held: list[Held] = []
        self._ts = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    def __enter__(self) -> SlackApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---- control and inspection -------------------------------------------------------------

    def rate_limit_once(self, method: str, retry_after: int = 0) -> None:
        """The next call of `method` gets 429 with Retry-After; the one after succeeds."""
        with self._lock:
            self._rate_limit[method] = retry_after

    def refuse(
        self,
        method: str,
        error: str = "internal_error",
        times: int = 1,
        channel: str | None = None,
    ) -> None:
        """The next `times` calls of `method` (to `channel`, if given) get `{"ok": false,
        "error": error}`, as Slack refuses a post to a channel the bot is not in."""
        with self._lock:
            self._refuse[method] = (error, times, channel)

    def hold(self, method: str, where: Callable[[dict], bool] | None = None) -> None:
        """Calls of `method` (whose body matches `where`) wait, unrecorded, until released."""
        with self._lock:
            self._holds[method] = where or (lambda body: True)

    def wait_held(self, method: str, timeout: float = 60.0) -> Held:
        """Block until a call of `method` is being held; that call."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [h for h in self.held if h.method == method and not h.outcome]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} call was held")
                self._lock.wait(left)

    def release(self, method: str, drop: bool = False) -> None:
        """Stop holding `method`; the held calls are answered, or dropped unanswered and
        unrecorded as if they never reached Slack (their sender is usually dead by then)."""
        with self._lock:
            self._holds.pop(method, None)
            for held in self.held:
                if held.method == method and not held.outcome:
                    held.outcome = "drop" if drop else "answer"
            self._lock.notify_all()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def calls_to(self, method: str) -> list[Call]:
        """The calls of `method` that succeeded."""
        with self._lock:
            return [c for c in self.calls if c.method == method and c.ok]

    def refused_calls(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and c.error]

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 30.0, where=None
    ) -> list[Call]:
        """Block until `count` successful calls of `method` (matching `where`) have arrived."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [
                    c
                    for c in self.calls
                    if c.method == method and c.ok and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self.calls]
                    raise TimeoutError(f"waited for {count} x {method}; calls so far: {seen}")
                self._lock.wait(left)

    def settle(self, quiet: float = 0.3, timeout: float = 10.0) -> None:
        """Wait until no call has arrived for `quiet` seconds (to assert nothing more comes)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = self.calls[-1].at if self.calls else 0.0
            if time.perf_counter() - last >= quiet:
                return
            time.sleep(quiet / 3)

    # ---- the server -----------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
            self._lock.notify_all()

    def _take_rate_limit(self, method: str) -> int | None:
        with self._lock:
            return self._rate_limit.pop(method, None)

    def _take_refusal(self, method: str, body: dict) -> str:
        with self._lock:
            error, left, channel = self._refuse.get(method, ("", 0, None))
            if not error or channel not in (None, body.get("channel")):
                return ""
            if left <= 1:
                self._refuse.pop(method, None)
            else:
                self._refuse[method] = (error, left - 1, channel)
            return error

    def _wait_if_held(self, method: str, body: dict) -> bool:
        """Hold the call while its method is held; False when the test drops it."""
        with self._lock:
            where = self._holds.get(method)
            if where is None or not where(body):
                return True
            held = Held(method, body)
            self.held.append(held)
            self._lock.notify_all()
            while not held.outcome:
                self._lock.wait()
            return held.outcome == "answer"

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
                pass

            def do_POST(self):
                arrived = time.perf_counter()
                method = self.path.split("/api/", 1)[-1].split("?")[0]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8") if length else ""
                body = _parse_body(raw, self.headers.get("Content-Type", ""))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if not server._wait_if_held(method, body):
                    self.close_connection = True  # dropped: no answer, nothing recorded
                    return
                retry_after = server._take_rate_limit(method)
                if retry_after is not None:
                    server._record(Call(method, body, headers, arrived, status=429))
                    self._send(429, {"ok": False, "error": "ratelimited"}, retry_after)
                    return
                if headers.get("authorization") != f"Bearer {server.token}":
                    reply = {"ok": False, "error": "invalid_auth"}
                elif refusal := server._take_refusal(method, body):
                    reply = {"ok": False, "error": refusal}
                else:
                    reply = server._answer(method, body)
                error = "" if reply.get("ok") else str(reply.get("error", "?"))
                server._record(Call(method, body, headers, arrived, error=error, reply=reply))
                self._send(200, reply)

            def _send(self, status: int, payload: dict, retry_after: int | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", str(retry_after))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _next_ts(self) -> str:
        return f"{1700000000 + next(self._ts)}.{next(self._ts):06d}"

    def _answer(self, method: str, body: dict) -> dict:
        """Realistic success payloads for the methods Clerk uses."""
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(body)

    def _m_auth_test(self, body: dict) -> dict:
        return {
            "ok": True,
            "url": "https://clerk-test.slack.com/",
            "team": "Clerk Test Council",
            "user": "clerk",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, body: dict) -> dict:
        ts = self._next_ts()
        message = {"type": "message", "text": body.get("text", ""), "user": BOT_USER_ID, "ts": ts}
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        if body.get("blocks"):
            message["blocks"] = body["blocks"]
        return {"ok": True, "channel": body.get("channel"), "ts": ts, "message": message}

    def _m_chat_update(self, body: dict) -> dict:
        return {
            "ok": True,
            "channel": body.get("channel"),
            "ts": body.get("ts"),
            "text": body.get("text", ""),
            "message": {"text": body.get("text", ""), "user": BOT_USER_ID},
        }

    def _m_chat_postEphemeral(self, body: dict) -> dict:
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_reactions_add(self, body: dict) -> dict:
        return {"ok": True}

    _m_reactions_remove = _m_reactions_add

    def _m_views_open(self, body: dict) -> dict:
        view = _as_dict(body.get("view"))
        return {"ok": True, "view": {"id": "V0CLERK01", "team_id": TEAM_ID, **view}}

    def _m_views_publish(self, body: dict) -> dict:
        view = _as_dict(body.get("view"))
        return {"ok": True, "view": {"id": "V0HOME01", "team_id": TEAM_ID, **view}}

    def _m_usergroups_users_list(self, body: dict) -> dict:
        group = body.get("usergroup", "")
        if group not in self.directory.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.directory.usergroups[group])}

    def _m_users_info(self, body: dict) -> dict:
        user_id = body.get("user", "")
        user = self.directory.users.get(user_id)
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": user_id, "team_id": TEAM_ID, **user}}

    def _m_conversations_open(self, body: dict) -> dict:
        users = str(body.get("users", ""))
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0][1:], "is_im": True}}


def _parse_body(raw: str, content_type: str) -> dict:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        return json.loads(raw)
    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    for key in ("blocks", "view", "attachments"):  # slack_sdk sends these JSON-encoded in forms
        if isinstance(form.get(key), str) and form[key][:1] in "[{":
            form[key] = json.loads(form[key])
    return form


def _as_dict(value) -> dict:
    if isinstance(value, str):
        return json.loads(value)
    return dict(value or {})


def user(name: str, real_name: str, display_name: str = "") -> dict:
    """A users.info `user` object."""
    return {
        "name": name,
        "real_name": real_name,
        "is_bot": False,
        "profile": {"real_name": real_name, "display_name": display_name or real_name},
    }
