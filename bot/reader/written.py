"""Questions people wrote, as training groups for the cross-encoder.

Mined questions are written by templates from the very sentence that answers them, so they share
its words; councillors' questions do not. Questions written by people (`eval/train/`, never the
dev or the frozen test set) give the reader what it meets when answering: for each answerable
one, the passage that states the fact against the passages Clerk's combiner ranks highest that
do not hold it, the very candidates the reader is shown. A negative never holds the fact, in its
text or beside it on the page, so a passage that answers is never taught as wrong.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.engine.answer import READ, Answerer
from bot.engine.evaluate import holds, load_questions, on_page, wanted_places
from bot.errors import ClerkError
from bot.reader.questions import near_miss
from bot.reader.text import reader_text
from bot.settings import Settings
from indexer.store import BuildContents

NEGATIVES = 4  # as the mined groups: slots 1-4
REFUSED = ("dev", "test")  # eval/dev judges the combiner and reader; eval/test judges everything


@dataclass(frozen=True)
class WrittenGroup:
    question: str
    twin: str | None  # the question with one constraint changed, where one could be
    passage: int  # the chunk row that states the fact
    negatives: tuple[int, ...]  # chunk rows ranked high that do not hold it


def written_groups(
    settings: Settings,
    contents: BuildContents,
    paths: list[Path],
    seed: int,
    say: Callable[[str], None] = print,
) -> list[WrittenGroup]:
    """One group per answerable question whose fact a passage of the index states."""
    for path in paths:
        if any(part in REFUSED for part in path.parts[-3:-1]):
            raise ClerkError(f"refusing to train on {path}: eval/dev and eval/test judge it")
    rows = {c.chunk_id: i for i, c in enumerate(contents.chunks)}
    answerer = Answerer.from_settings(settings.replaced(CLERK_READER="0"))
    rng = random.Random(seed)
    groups, skipped = [], 0
    for question in (q for path in paths for q in load_questions(path)):
        if not question.answerable or not question.answer_contains:
            continue
        judged = answerer.assess(question.question, question.filters)
        places = wanted_places(answerer, question)
        strings = question.answer_contains
        stating = [
            j for j in judged
            if on_page(j, places) and holds(_read_as(j.hit), strings)
        ]  # fmt: skip
        if not stating:  # retrieval missed it, or no one passage states it all: nothing to teach
            skipped += 1
            continue
        negatives = [
            rows[j.hit.chunk_id] for j in judged[:READ]
            if not holds(j.evidence.text, strings) and not holds(_read_as(j.hit), strings)
        ][:NEGATIVES]  # fmt: skip
        passage = rows[stating[0].hit.chunk_id]
        twin = near_miss(question.question, _read_as(stating[0].hit), rng)
        groups.append(WrittenGroup(question.question, twin and twin[0], passage, tuple(negatives)))
    say(f"{len(groups)} written questions as groups ({skipped} skipped: no passage states them)")
    return groups


def _read_as(hit) -> str:
    return reader_text(hit.committee, hit.meeting_date, hit.heading, hit.text)
