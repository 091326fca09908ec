"""Time the learned reader per question on the dev set, over an index already built.

    CLERK_HOME=/path/with/index-and-reader .venv/bin/python bench/bench_reader.py [--rounds N]

Prints, from one run on the same index: the time to answer a dev question with the reader
(which reads at most 8 passages; for the late-interaction reader, projected at index time:
`passages kept` says how many of the index's are) and without it (p50 / p95 / max, ms), the
reader's share (for the late-interaction reader after retrieval, whose run of the question it
shares), and the p95 with the reader against its target: 60 ms for the late-interaction reader
(issue 13), 100 ms for the cross-encoder (issue 10). The reader must be built (`clerk reader
build [--recipe cross-encoder]`); a combiner fitted with it is not needed here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bot.engine.answer import Answerer
from bot.engine.evaluate import load_questions
from bot.reader.artifact import CROSS_RECIPE, RECIPE
from bot.reader.passages import digest
from bot.reader.score import Reader, load_reader
from bot.reader.text import passage_texts
from bot.settings import Settings
from indexer.store import read_build

REPO = Path(__file__).resolve().parent.parent
# warm p95 per question with the reader, on 2 cores: issue 13 for the late-interaction reader,
# issue 10 for the cross-encoder
TARGET_MS = {RECIPE: 60.0, CROSS_RECIPE: 100.0}
DEV = (REPO / "eval" / "dev" / "questions.jsonl", REPO / "eval" / "dev" / "more-questions.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="passes over the dev questions")
    args = parser.parse_args()
    settings = Settings.from_env().replaced(CLERK_READER="1")
    alone = Answerer.from_settings(settings.replaced(CLERK_READER="0"))
    # as Answerer.from_settings does: the reader shares retrieval's encoder (and question run)
    reader = load_reader(settings, alone.searcher.embedder)
    if reader is None:
        raise SystemExit("no reader built in this data directory: run `clerk reader build`")
    reading = Answerer(settings, alone.searcher, alone.shortlist, reader)
    questions = [q for path in DEV for q in load_questions(path)]
    reading.assess(questions[0].question)  # load the index, the encoder and the graph once
    times: dict[str, list[float]] = {"without reader": [], "with reader": [], "reader alone": []}
    for _ in range(args.rounds):
        for i, q in enumerate(questions):
            # alternate which goes first: the first pays the question's cached term weights
            pair = [("without reader", alone), ("with reader", reading)]
            for name, answerer in pair if i % 2 else pair[::-1]:
                started = time.perf_counter()
                answerer.assess(q.question, q.filters)
                times[name].append((time.perf_counter() - started) * 1000)
            hits = alone.searcher.search(q.question, q.filters, k=8)
            started = time.perf_counter()
            reader.score(q.question, hits)
            times["reader alone"].append((time.perf_counter() - started) * 1000)
    figures = {name: _summary(values) for name, values in times.items()}
    p95, goal = figures["with reader"]["p95"], TARGET_MS[reader.manifest.recipe]
    target = {"with reader, p95 ms": p95, "target": goal, "ratio": round(p95 / goal, 2)}
    found = {"questions": len(questions) * args.rounds, "reader": reader.manifest.recipe,
             "graph": reader.manifest.graph, "ms": figures, "target": target}  # fmt: skip
    if isinstance(reader, Reader) and reader.store is not None:
        texts = passage_texts(read_build(settings.index.index_dir))
        found["passages kept"] = len(reader.store.get([digest(t) for t in texts]))
    print(json.dumps(found, indent=2))


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


if __name__ == "__main__":
    main()
