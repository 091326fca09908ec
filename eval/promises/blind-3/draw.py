"""How blind-3 and look-alikes were drawn: two pools of candidate sentences, split by paper.

    CLERK_HOME=DIR python eval/promises/blind-3/draw.py OUTPUT_FOLDER

A quarter of the papers (by a hash of their path) give blind-3's pool, the rest the look-alikes'
pool. From each: sentences with a broad promise keyword drawn at random, plus a few without one.
Every sentence of an earlier labelled set, and of the random training negatives, is left out. No
classifier is run. Seeded: the same index gives the same pools.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from pathlib import Path

from bot.promises.detect import split_sentences
from bot.promises.sample import OUTPUT, PROMISES, _overlaps, squashed
from bot.settings import Settings
from indexer.store import read_build

KEYWORD = re.compile(
    r"\b(will|would|shall|to be|undert(ook|ake)|agreed to|offered|circulat\w*|provid\w*"
    r"|report\w* back|bring|brought|come back|return\w*|writ\w*|respond\w*|follow[- ]?up"
    r"|share\w*|send|sent|brief\w*|action|confirm\w*|clarif\w*|look into|update\w*"
    r"|in due course|next meeting|outside (of )?the meeting|contact|inform\w*|detail\w*"
    r"|requested|asked)\b",
    re.IGNORECASE,
)
DRAWN_HERE = ("blind-3", "look-alikes")  # labelled after this draw: not left out of it
SIZES = {"train": (720, 80), "blind3": (170, 20)}  # (with a keyword, without), per pool


def main(folder: Path) -> None:
    contents = read_build(Settings.from_env().index.index_dir)
    earlier = [p for p in PROMISES.rglob("labelled.jsonl") if p.parent.name not in DRAWN_HERE]
    left_out = {
        squashed(json.loads(line)["sentence"])
        for path in [*earlier, OUTPUT]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    seen: set[str] = set()
    keyworded: dict[str, list[dict]] = {"train": [], "blind3": []}
    others: dict[str, list[dict]] = {"train": [], "blind3": []}
    for chunk in contents.chunks:
        source = contents.documents[chunk.doc_id].source
        quarter = int(hashlib.sha256(source.encode()).hexdigest(), 16) % 4
        side = "blind3" if quarter == 0 else "train"
        found = split_sentences(chunk.text)
        for i, sentence in enumerate(found):
            key = squashed(sentence)
            if len(sentence.split()) < 5 or key in seen or _overlaps(key, left_out):
                continue
            seen.add(key)
            row = {
                "source": source,
                "page": chunk.page,
                "sentence": sentence,
                "before": found[i - 1] if i else "",
                "after": found[i + 1] if i + 1 < len(found) else "",
            }
            (keyworded if KEYWORD.search(sentence) else others)[side].append(row)
    rng = random.Random(5)
    folder.mkdir(parents=True, exist_ok=True)
    for side, (with_keyword, without) in SIZES.items():
        rows = rng.sample(keyworded[side], with_keyword) + rng.sample(others[side], without)
        rng.shuffle(rows)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (folder / f"{side}.jsonl").write_text(lines, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
