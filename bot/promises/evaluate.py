"""Precision and recall of promise detection against hand-labelled sentences.

    python -m bot.promises.evaluate [eval/promises/labelled.jsonl] [--json]

Each line of the file: {"source", "page", "sentence", "promise": true|false, "why"?}. Uses the
int8 encoder the classifier reads sentence vectors from (built once under CLERK_HOME if missing).
The development sets are in the classifier's training data: their cross-validated figures are
what `python -m bot.promises.train` reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.promises.detect import is_promise
from bot.promises.model import SentenceVector, promise_encoder, sentence_vector
from indexer.settings import IndexSettings

LABELLED = Path(__file__).resolve().parents[2] / "eval" / "promises" / "labelled.jsonl"


@dataclass(frozen=True)
class Scores:
    sentences: int
    promises: int
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.promises if self.promises else 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


def score(rows: list[dict], vector: SentenceVector) -> tuple[Scores, list[dict]]:
    """The scores, and the sentences detection got wrong."""
    wrong, tp, fp, fn = [], 0, 0, 0
    for row in rows:
        found = is_promise(row["sentence"], vector)
        tp += found and row["promise"]
        fp += found and not row["promise"]
        fn += row["promise"] and not found
        if found != row["promise"]:
            wrong.append(row)
    promises = sum(bool(r["promise"]) for r in rows)
    return Scores(len(rows), promises, tp, fp, fn), wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labelled", nargs="?", type=Path, default=LABELLED)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.labelled.read_text(encoding="utf-8").splitlines()]
    scores, wrong = score(rows, sentence_vector(promise_encoder(IndexSettings.from_env())))
    if args.json:
        json.dump({**scores.to_dict(), "wrong": wrong}, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    print(
        f"{scores.sentences} sentences, {scores.promises} promises: precision "
        f"{scores.precision:.2f}, recall {scores.recall:.2f} "
        f"({scores.true_positives} found, {scores.false_positives} wrongly, "
        f"{scores.false_negatives} missed)"
    )
    for row in wrong:
        kind = "missed" if row["promise"] else "wrongly found"
        print(f"  {kind}: {row['sentence'][:110]}  [{row['source']}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
