"""Time the learned reader per question on the dev set, over an index already built.

    CLERK_HOME=/path/with/index-and-reader .venv/bin/python bench/bench_reader.py [--rounds N]

Prints, from one run on the same index: the time to answer a dev question with the reader
(which reads at most 8 passages) and without it (p50 / p95 / max, ms), and the reader's share.
The reader must be built (`clerk reader build`); a combiner fitted with it is not needed here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bot.engine.answer import Answerer
from bot.engine.evaluate import load_questions
from bot.reader.score import load_reader
from bot.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DEV = (REPO / "eval" / "dev" / "questions.jsonl", REPO / "eval" / "dev" / "more-questions.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="passes over the dev questions")
    args = parser.parse_args()
    settings = Settings.from_env().replaced(CLERK_READER="1")
    reader = load_reader(settings)
    if reader is None:
        raise SystemExit("no reader built in this data directory: run `clerk reader build`")
    alone = Answerer.from_settings(settings.replaced(CLERK_READER="0"))
    reading = Answerer(settings, alone.searcher, alone.shortlist, reader)
    questions = [q for path in DEV for q in load_questions(path)]
    reading.assess(questions[0].question)  # load the index, the encoder and the graph once
    times: dict[str, list[float]] = {"without reader": [], "with reader": [], "reader alone": []}
    for _ in range(args.rounds):
        for q in questions:
            for name, answerer in (("without reader", alone), ("with reader", reading)):
                started = time.perf_counter()
                answerer.assess(q.question, q.filters)
                times[name].append((time.perf_counter() - started) * 1000)
            hits = alone.searcher.search(q.question, q.filters, k=8)
            started = time.perf_counter()
            reader.score(q.question, hits)
            times["reader alone"].append((time.perf_counter() - started) * 1000)
    figures = {name: _summary(values) for name, values in times.items()}
    print(json.dumps({"questions": len(questions) * args.rounds, "ms": figures}, indent=2))


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


if __name__ == "__main__":
    main()
