"""Training pairs mined from an index of the papers: (question, passage, does it answer?).

For each question written from a sentence (`bot.reader.questions`): the passage holding the
sentence is the positive; the negatives are the same question against (1) passages of other
papers that BM25 or the embedding ranks high, (2) a passage of the same paper on the topic, and
(3) a near-miss: the question with one constraint changed, against the original passage. A
negative never holds the asked fact, so a copy of the paper filed elsewhere is not taught as
wrong.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.engine.slots import sentences
from bot.reader.questions import DECISION, facts, near_miss, write_question
from bot.reader.text import passage_texts
from indexer.bm25 import BM25Index
from indexer.search import LoadedIndex
from indexer.store import BuildContents, build_dir_of, read_build, text_key

POSITIVE, NEAR_MISS, OTHER_PAPER_BM25, OTHER_PAPER_DENSE, SAME_PAPER = (
    "positive", "near_miss", "other_paper_bm25", "other_paper_dense", "same_paper",
)  # fmt: skip
KINDS = (POSITIVE, NEAR_MISS, OTHER_PAPER_BM25, OTHER_PAPER_DENSE, SAME_PAPER)
PER_PASSAGE = 4  # questions written from one passage at most
_SAME_SLOTS = (SAME_PAPER, SAME_PAPER + "_2")
NEGATIVE_SLOTS = (OTHER_PAPER_BM25, OTHER_PAPER_DENSE, *_SAME_SLOTS)  # slots 1-4 of a group
SLOTS = 6  # pairs per question: positive, BM25, dense, 2 from the same paper, near-miss


@dataclass(frozen=True)
class Papers:
    """What mining reads: one whole build, its BM25 table, and each passage's text key."""

    contents: BuildContents
    bm25: BM25Index
    text_keys: list[int]

    @classmethod
    def of(cls, index_link: Path) -> Papers:
        build = build_dir_of(index_link) or index_link  # resolved once: both reads, one build
        contents = read_build(build)
        bm25 = LoadedIndex.load(build).bm25
        return cls(contents, bm25, [text_key(c.text) for c in contents.chunks])


@dataclass(frozen=True)
class Mined:
    """One written question with its near-miss twin and where its answer is."""

    question: str
    twin: str  # the near-miss: same question, one constraint changed
    passage: int  # chunk row holding the sentence
    kind: str
    answer: str


def passages(index: Papers) -> list[str]:
    """The text the reader reads for each chunk row of the index."""
    return passage_texts(index.contents)


def write_questions(index: Papers, texts: list[str], most: int, seed: int) -> list[Mined]:
    """Up to `most` questions, at most PER_PASSAGE from a passage, each sentence used once."""
    rng = random.Random(seed)
    chunks, docs = index.contents.chunks, index.contents.documents
    rows = list(range(len(chunks)))
    rng.shuffle(rows)
    seen: set[str] = set()
    mined: list[Mined] = []
    for row in rows:
        doc = docs[chunks[row].doc_id]
        written = 0
        for sentence in sentences(chunks[row].text):
            key = _folded(sentence)
            if key in seen or written >= PER_PASSAGE:
                continue
            seen.add(key)
            for kind, fact in facts(sentence)[:2]:
                made = write_question(
                    sentence, kind, fact, doc.committee, doc.meeting_date, rng, chunks[row].heading
                )
                twin = made and near_miss(made.question, texts[row], rng)
                if made and twin:
                    mined.append(Mined(made.question, twin[0], row, kind, made.answer))
                    written += 1
        if len(mined) >= most:
            break
    return mined


def negatives(
    index: Papers,
    texts: list[str],
    mined: list[Mined],
    question_vectors: np.ndarray,
    seed: int,
) -> list[dict[str, int]]:
    """For each question: chunk rows of each negative kind (absent when none qualified)."""
    rng = random.Random(seed)
    chunks, vectors = index.contents.chunks, index.contents.vectors
    folded = [_folded(t) for t in texts]
    found = []
    for m, qvec in zip(mined, question_vectors, strict=True):
        doc = chunks[m.passage].doc_id
        answer = _folded(m.answer)[:60] if m.kind == DECISION else _folded(m.answer)

        def fits(row: int, same_paper: bool, doc=doc, m=m, answer=answer) -> bool:
            return (
                row != m.passage
                and (chunks[row].doc_id == doc) == same_paper
                and index.text_keys[row] != index.text_keys[m.passage]
                and answer not in folded[row]
            )

        lexical = np.argsort(-index.bm25.scores(m.question))[:40]
        dense = np.argsort(-(vectors @ qvec))[:40]
        picked: dict[str, int] = {}
        others = [int(r) for r in lexical if fits(int(r), False)][:3]
        if others:
            picked[OTHER_PAPER_BM25] = rng.choice(others)
        dense_rows = [
            int(r) for r in dense if fits(int(r), False) and int(r) not in picked.values()
        ]
        if dense_rows:
            picked[OTHER_PAPER_DENSE] = dense_rows[0]
        same = [int(r) for r in lexical if fits(int(r), True)]
        for name, row in zip(_SAME_SLOTS, same, strict=False):
            picked[name] = row
        found.append(picked)
    return found


def counts(mined: list[Mined], chosen: list[dict[str, int]]) -> dict[str, int]:
    """Pairs by kind, for the record."""
    tally: Counter[str] = Counter()
    tally[POSITIVE] = tally[NEAR_MISS] = len(mined)
    for picked in chosen:
        for name in picked:
            tally[name.removesuffix("_2")] += 1
    tally.update(Counter(f"questions_{m.kind}" for m in mined))
    return dict(tally)


def _folded(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()
