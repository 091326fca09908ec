"""Sentences drawn at random from indexed papers, as the classifier's everyday negatives.

    CLERK_HOME=DIR python -m bot.promises.sample [--count 1500] [--output FILE]

Labelled sentences were picked because they look like promises, so a classifier trained on them
alone has never seen the run of ordinary sentences it meets in a whole paper ("Deposit: a
regulated placing of cash", a resident's comment). Promises are rare (a few dozen in a year of
papers), so sentences drawn at random are taken as not promising, knowing that one in a hundred
or so may be. Every labelled sentence, the held-out set's included, is left out of the draw,
with any sentence that holds one or lies within one (compared on letters and digits alone, so a
different extraction or sentence split still matches): the held-out set stays unseen.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from bot.promises.detect import split_sentences
from bot.settings import Settings
from indexer.store import read_build

PROMISES = Path(__file__).resolve().parents[2] / "eval" / "promises"
OUTPUT = PROMISES / "train" / "corpus-sentences.jsonl"
SEED = 11
MIN_WORDS = 5


def squashed(sentence: str) -> str:
    """Letters and digits only: "202 4-25" and "2024-25" read alike."""
    return re.sub(r"[^0-9a-z]", "", sentence.casefold())


def labelled_sentences() -> set[str]:
    """Every sentence of every labelled set under eval/promises/, squashed."""
    return {
        squashed(json.loads(line)["sentence"])
        for path in PROMISES.rglob("labelled.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }


def draw(settings: Settings, count: int) -> list[dict]:
    contents = read_build(settings.index.index_dir)
    labelled = labelled_sentences()
    seen: set[str] = set()
    pool = []
    for chunk in contents.chunks:
        document = contents.documents[chunk.doc_id]
        for sentence in split_sentences(chunk.text):
            key = squashed(sentence)
            if len(sentence.split()) < MIN_WORDS or key in seen or _overlaps(key, labelled):
                continue
            seen.add(key)
            pool.append({"source": document.source, "page": chunk.page, "sentence": sentence})
    rows = random.Random(SEED).sample(pool, min(count, len(pool)))
    return [{**row, "promise": False, "type": "random_corpus_sentence"} for row in rows]


def _overlaps(key: str, labelled: set[str]) -> bool:
    return any(key in other or other in key for other in labelled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    rows = draw(Settings.from_env(), args.count)
    args.output.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    print(f"{len(rows)} sentences written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
