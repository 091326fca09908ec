"""Slack soak: signed events at a steady rate against `clerk slack` (HTTP mode, a real process),
some retried, the bot killed with SIGKILL and restarted mid-run.

The bot answers from an index of a small real subset of ../shared/corpus (or --home) and calls
the loopback Web API stand-in from the tests (tests/support/slack_api_server.py). Each event is an
app_mention in its own channel, so the stand-in's calls tell who was answered how often. The
sender behaves like Slack: an event whose POST fails (the bot is down, a timeout, not 200) is
sent again with X-Slack-Retry-Num after 1, 15 and 60 seconds (Slack waits about 0, 60 and 300),
then given up; and --retry-share of the events are sent a second time with X-Slack-Retry-Num: 1
a moment after their ack, as Slack does when an ack reached it late. The bot is killed at 1/3
and 2/3 of the schedule and started again at once.

Counts: events lost (acked, or given up by the sender, and never answered), answered twice
(more than one reply in an event's channel; split by whether a restart lies between them), and
the time from sending to the HTTP ack (p50, p95, p99). Prints figures; asserts nothing.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/soak_slack.py [--events 10000] [--rate 50]
        [--retry-share 0.1] [--kills 2] [--home DIR]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from _common import (  # first: it sets sys.path for the imports below
    QUESTIONS,
    REPO,
    clerk,
    clerk_env,
    percentile,
    scratch_home,
)
from slack_api_server import SlackApiServer, user
from slack_harness import (
    BOT_TOKEN,
    COUNCILLOR,
    OFFICER,
    OFFICERS_CHANNEL,
    SIGNING_SECRET,
    fixture,
    sign,
)

RETRY_AFTER = (1.0, 15.0, 60.0)  # the sender's retries of a failed POST, seconds after it
SENDERS = 16  # concurrent POSTs at most
SETTLE = 10.0  # seconds without a Web API call before the answers are taken as complete


def channel_of(n: int) -> str:
    return f"C0SOAK{n:06d}"


def payload(n: int) -> bytes:
    """Event n: a mention in its own channel, with its own event id."""
    event = fixture("app_mention.json")
    event["event_id"] = f"Ev0SOAK{n:06d}"
    event["event_time"] = int(time.time())
    ts = f"{1741870800 + n}.000100"
    event["event"].update(
        channel=channel_of(n), ts=ts, event_ts=ts, text=f"<@UCLERKBOT> {QUESTIONS[n % 10]}"
    )
    return json.dumps(event).encode()


def post(url: str, body: bytes, retry: int) -> tuple[int, float]:
    """POST a signed event; (HTTP status or 0 when it failed to connect or timed out, seconds)."""
    stamp = int(time.time())
    request = urllib.request.Request(url, data=body, method="POST")  # noqa: S310 - loopback
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Slack-Request-Timestamp", str(stamp))
    request.add_header("X-Slack-Signature", sign(body, stamp))
    if retry:
        request.add_header("X-Slack-Retry-Num", str(retry))
        request.add_header("X-Slack-Retry-Reason", "http_timeout")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            response.read()
            return response.status, time.perf_counter() - started
    except urllib.error.HTTPError as exc:
        return exc.code, time.perf_counter() - started
    except OSError:
        return 0, time.perf_counter() - started


@dataclass
class Bot:
    """`clerk slack` in HTTP mode as a real process on a fixed port (Slack's URL does not move)."""

    home: Path
    api_url: str
    port: int
    proc: subprocess.Popen | None = None
    lives: list[tuple[float, float]] = field(default_factory=list)  # (started, killed) times

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self) -> None:
        env = clerk_env(
            self.home,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            CLERK_SLACK_API_URL=self.api_url,
            CLERK_SLACK_OFFICERS_CHANNEL=OFFICERS_CHANNEL,
            CLERK_SLACK_OFFICERS=OFFICER,
            CLERK_SLACK_TEAM_ID="T0CLERK01",
        )
        command = clerk("slack", "--port", str(self.port))
        self.proc = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
        self.lives.append((time.perf_counter(), float("inf")))

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.lives[-1] = (self.lives[-1][0], time.perf_counter())

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until the port accepts connections."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return time.perf_counter() - started
            time.sleep(0.05)
        raise SystemExit("clerk slack did not start")

    def life_of(self, at: float) -> int:
        return next((i for i, (a, b) in enumerate(self.lives) if a <= at < b), -1)


class Sender:
    """Sends events on schedule and retries like Slack; records every POST's outcome."""

    def __init__(self, url: str, rng: random.Random, retry_share: float) -> None:
        self.url, self.rng, self.retry_share = url, rng, retry_share
        self.pool = ThreadPoolExecutor(SENDERS)
        self.lock = threading.Lock()
        self.queue: list[tuple[float, int, int, int]] = []  # (due, seq, event, retry number)
        self.seq = itertools.count()
        self.acks: list[float] = []
        self.acked: set[int] = set()
        self.first_sent: dict[int, float] = {}  # event -> perf_counter() of its first POST
        self.given_up: set[int] = set()
        self.counts: Counter[str] = Counter()

    def schedule(self, due: float, n: int, retry: int) -> None:
        with self.lock:
            heapq.heappush(self.queue, (due, next(self.seq), n, retry))

    def send_due(self) -> None:
        """Hand every POST that is due to the pool."""
        now = time.perf_counter()
        with self.lock:
            due = []
            while self.queue and self.queue[0][0] <= now:
                due.append(heapq.heappop(self.queue))
        for _, _, n, retry in due:
            self.pool.submit(self._send, n, retry)

    def pending(self) -> int:
        with self.lock:
            return len(self.queue)

    def _send(self, n: int, retry: int) -> None:
        if retry == 0:
            self.first_sent[n] = time.perf_counter()
        status, seconds = post(self.url, payload(n), retry)
        now = time.perf_counter()
        with self.lock:
            self.counts["POSTs"] += 1
            if status == 200:
                self.acks.append(seconds)
                first = n not in self.acked
                self.acked.add(n)
            else:
                self.counts[f"failed POSTs ({status or 'no connection'})"] += 1
        if status == 200:
            if retry == 0 and first and self.rng.random() < self.retry_share:
                self.counts["retried on purpose"] += 1
                self.schedule(now + self.rng.uniform(0.2, 3.0), n, 1)
        elif retry < len(RETRY_AFTER):
            self.schedule(now + RETRY_AFTER[retry], n, retry + 1)
        else:
            with self.lock:
                self.given_up.add(n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace, home: Path) -> None:
    rng = random.Random(args.seed)
    with SlackApiServer(token=BOT_TOKEN) as api:
        api.directory.users[COUNCILLOR] = user("cllr.jones", "Cllr Alex Jones")
        bot = Bot(home, api.base_url, free_port())
        bot.start()
        try:
            print(f"bot ready in {bot.wait_ready():.1f} s")
            sender = Sender(bot.url, rng, args.retry_share)
            started = time.perf_counter()
            send_all(args, bot, sender, started)
            sending = time.perf_counter() - started
            while sender.pending():
                sender.send_due()
                time.sleep(0.05)
            sender.pool.shutdown(wait=True)
            api.settle(quiet=SETTLE, timeout=3600)
            elapsed = time.perf_counter() - started - SETTLE
        finally:
            bot.kill()
        report(args, api, bot, sender, sending, elapsed)


def send_all(args: argparse.Namespace, bot: Bot, sender: Sender, started: float) -> None:
    """Send every event on schedule; kill and restart the bot at evenly spread events."""
    kills = {args.events * (k + 1) // (args.kills + 1) for k in range(args.kills)}
    for n in range(args.events):
        due = started + n / args.rate
        while time.perf_counter() < due:
            sender.send_due()
            time.sleep(min(0.002, max(0.0, due - time.perf_counter())))
        if n in kills:
            bot.kill()
            bot.start()
            print(
                f"killed and restarted the bot at event {n} ({time.perf_counter() - started:.0f} s)"
            )
        sender.schedule(due, n, 0)
        sender.send_due()


def report(args, api: SlackApiServer, bot: Bot, sender: Sender, sending: float, elapsed: float):
    posts: dict[str, list[float]] = {}
    for call in api.calls_to("chat.postMessage"):
        posts.setdefault(call.body.get("channel", ""), []).append(call.at)
    updates = api.calls_to("chat.update")
    answered = {c.body.get("channel") for c in updates}
    events = range(args.events)
    acked_unanswered = [n for n in events if n in sender.acked and channel_of(n) not in answered]
    never_acked = [n for n in events if n not in sender.acked]
    twice = [n for n in events if len(posts.get(channel_of(n), [])) > 1]
    across = [n for n in twice if len({bot.life_of(t) for t in posts[channel_of(n)]}) > 1]
    acks = [s * 1000 for s in sender.acks]
    print(
        f"events: {args.events} at {args.rate:g}/s (sent over {sending:.0f} s), "
        f"bot killed (SIGKILL) and restarted {args.kills} times"
    )
    for what, count in sorted(sender.counts.items()):
        print(f"  {what}: {count}")
    print(f"answered: {sum(1 for n in events if channel_of(n) in answered)}")
    print(f"lost: {len(acked_unanswered) + len(never_acked)}")
    working = sum(1 for n in acked_unanswered if channel_of(n) in posts)
    print(f"  acked but never answered: {len(acked_unanswered)} ({working} left at 'working')")
    print(f"  never acked (sender gave up after {len(RETRY_AFTER)} retries): {len(never_acked)}")
    print(f"answered twice: {len(twice)} (across a restart: {len(across)})")
    print(
        f"ack (send to HTTP 200): p50 {percentile(acks, 50):.1f} ms, p95 "
        f"{percentile(acks, 95):.1f} ms, p99 {percentile(acks, 99):.1f} ms, max {max(acks):.1f} ms"
    )
    sent = {channel_of(n): at for n, at in sender.first_sent.items()}
    waits = [c.at - sent[c.body["channel"]] for c in updates if c.body.get("channel") in sent]
    if waits:
        print(
            f"event to answer (first send to chat.update): p50 {percentile(waits, 50):.1f} s, "
            f"p99 {percentile(waits, 99):.1f} s, max {max(waits):.1f} s"
        )
    print(f"time: {elapsed:.0f} s to the last Web API call")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--retry-share", type=float, default=0.1)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--home", type=Path, help="an existing CLERK_HOME with a published index")
    args = parser.parse_args()
    with scratch_home("clerk-soak-slack-", args.home) as home:
        run(args, home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
