"""Slack latency: signed event POST -> HTTP ack, -> working message, -> answer in place.

Runs the real Bolt app (HTTP mode, real threaded server on 127.0.0.1) with the real Answerer over
an index of real committee papers, against the loopback Web API stand-in from the tests. Each
mention goes to its own channel so its calls can be told apart; events are sent one after another
(the per-question latency a councillor sees), after one warm-up event. Prints figures.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_slack.py [--events 20] [--home DIR]

Without --home it indexes a small subset of ../shared/corpus into a temporary data directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import QUESTIONS, build_home, percentile  # first: it sets sys.path
from slack_harness import SlackRig, fixture

from bot.engine.answer import Answerer
from bot.requests.service import open_store
from bot.settings import Settings


def one(rig: SlackRig, n: int, question: str) -> tuple[float, float, float]:
    """Post one signed mention; seconds to the HTTP ack, the working post, the answer."""
    payload = fixture("app_mention.json")
    channel = f"C0BENCH{n:04d}"
    payload["event_id"] = f"Ev0BENCH{n:04d}"
    payload["event"].update(channel=channel, text=f"<@UCLERKBOT> {question}")
    sent = time.perf_counter()
    reply = rig.event(payload)
    assert reply.status == 200, reply
    working = rig.api.wait_for("chat.postMessage", where=lambda c: c.body["channel"] == channel)
    answer = rig.api.wait_for("chat.update", where=lambda c: c.body["channel"] == channel)
    return reply.seconds, working[0].at - sent, answer[0].at - sent


def report(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name:<34} p50 {percentile(ms, 50):8.1f} ms   p95 {percentile(ms, 95):8.1f} ms   "
        f"max {max(ms):8.1f} ms   mean {statistics.fmean(ms):8.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--home", type=Path, help="an existing CLERK_HOME with a published index")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = (
            Settings.from_env({}, CLERK_HOME=args.home)
            if args.home
            else build_home(Path(tmp) / "home")
        )
        started = time.perf_counter()
        answerer = Answerer.from_settings(base)
        print(f"model loaded in {time.perf_counter() - started:.1f} s")
        with open_store(base) as store, SlackRig(base, answerer, store) as rig:
            cold = one(rig, 0, QUESTIONS[0])
            print(f"cold first event (loads the index): answer after {cold[2] * 1000:.0f} ms")
            numbers = range(1, args.events + 1)
            results = [one(rig, n, QUESTIONS[n % len(QUESTIONS)]) for n in numbers]
            acks, workings, answers = zip(*results, strict=True)
            print(f"{args.events} app_mention events, sequential, real Answerer:")
            report("event POST -> HTTP 200 ack", list(acks))
            report("event -> working chat.postMessage", list(workings))
            report("event -> answer (chat.update)", list(answers))
            logged = len(store.list())
            print(f"requests logged for officers: {logged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
