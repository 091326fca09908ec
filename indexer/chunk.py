"""Cut pages into passages along the structure of committee papers (pure functions).

Committee papers are built from headings ("1. Introduction", "Recommendation(s):", "Resolved"),
numbered paragraphs ("1.3 The new minimum salary ...") and question/answer pairs. A passage
starts where the paper starts a new unit, never crosses a page (citations need the page), stays
under the model's window, and carries the document title and the heading it sits under.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from indexer.types import Chunk, Page, chunk_id

_NUMBERED_PARA = re.compile(
    r"^(\(?[0-9]{1,2}(\.[0-9]{1,2}){1,3}\)?|\([a-z0-9]{1,3}\)|[A-Z]\.)\s+\S"
)
_NUMBERED_HEADING = re.compile(r"^[0-9]{1,2}\.?\s+[A-Z][^.]*$")
_LABEL = re.compile(
    r"^(recommend(ed|ation|ations|ation\(s\))|resolved|minutes|decision|action|summary|"
    r"question|answer|response|reason|background|purpose|introduction|conclusions?|"
    r"financial implications|legal implications|equalities implications|options considered|"
    r"supplementary question)\b.{0,60}$",
    re.IGNORECASE,
)
# Change when papers are cut differently: the next index run then re-reads every paper.
CHUNKER_VERSION = 2
# A recorded vote in minutes: "For (39)", "Against: 19", "Abstain (1)", then lists of names.
_VOTE_TALLY = re.compile(r"^(for|against|abstain(ed|ing|ers|ions?)?)\s*[:(]?\s*\d+\)?:?$", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(£\"'‘“])")
MAX_HEADING_WORDS = 12
MAX_NUMBERED_HEADING_WORDS = 8
_CONNECTIVES = frozenset(
    "a an and as at by for from in of on or that the to was were which with".split()
)


@dataclass(frozen=True)
class Block:
    """A run of lines the paper presents as one unit, with the heading in force."""

    heading: str
    text: str
    vote: bool = False  # a tally of a recorded vote with its names: a passage of its own


def chunk_pages(doc_id: str, title: str, pages: Iterable[Page], max_words: int) -> list[Chunk]:
    """All passages of a document, in reading order."""
    chunks: list[Chunk] = []
    heading = ""
    for page in pages:
        blocks, heading = split_blocks(page.text, heading)
        for heading_text, text in pack_blocks(blocks, max_words):
            context = f"{title} — {heading_text}" if heading_text else title
            chunks.append(Chunk(chunk_id(doc_id, page.number, text), page.number, context, text))
    return chunks


def split_blocks(text: str, heading: str) -> tuple[list[Block], str]:
    """Blocks of one page; returns them and the heading still in force at the page end."""
    blocks: list[Block] = []
    current: list[str] = []
    previous = ""

    def flush() -> None:
        if current:
            blocks.append(Block(heading, " ".join(current), bool(_VOTE_TALLY.match(current[0]))))
            current.clear()

    in_vote = False  # a tally's list of names runs on across blank lines
    for line in (ln.strip() for ln in text.split("\n")):
        if not line:
            if not in_vote:
                previous = ""
            continue
        if _VOTE_TALLY.match(line):  # each tally starts a unit; none is a heading
            in_vote = True
            flush()
            current.append(line)
            previous = line
            continue
        if in_vote and (is_heading(line, "") or _NUMBERED_PARA.match(line)):
            in_vote = False
        if in_vote:
            current.append(line)
            previous = line
            continue
        if is_heading(line, previous):
            flush()
            heading = line.rstrip(":–- ").strip()
            current.append(line)
            previous = ""  # what follows a heading starts a unit of its own
            continue
        elif _NUMBERED_PARA.match(line) or (not previous and current):
            flush()
            current.append(line)
        else:
            current.append(line)
        previous = line
    flush()
    return blocks, heading


def is_heading(line: str, previous: str) -> bool:
    """A short line standing on its own that names what follows."""
    words = line.split()
    if not words or len(words) > MAX_HEADING_WORDS or len(line) > 90 or _VOTE_TALLY.match(line):
        return False
    if _LABEL.match(line) and len(words) <= 6:
        return True
    starts_unit = not previous or previous.endswith((".", ":", ";", "?", "!"))
    if (
        not starts_unit
        or line.endswith((".", ",", ";"))
        or not line[0].isupper()
        and not line[0].isdigit()
    ):
        return False
    if _NUMBERED_HEADING.match(line):
        # "3. Background" is a heading; "2. Further to comments it was" opens a paragraph.
        return len(words) <= MAX_NUMBERED_HEADING_WORDS and words[-1].lower() not in _CONNECTIVES
    if "," in line:  # lists of names in votes, addresses
        return False
    letters = sum(ch.isalpha() for ch in line)
    return letters >= 0.6 * len(line.replace(" ", "")) and (line.isupper() or line.istitle())


def pack_blocks(blocks: list[Block], max_words: int) -> list[tuple[str, str]]:
    """Join small blocks under one heading, split long ones at sentences; (heading, text) pairs.

    A heading with nothing under it yet travels with what follows, so no passage is a lone
    heading and no paragraph is filed under the next section's heading.
    """
    out: list[tuple[str, str]] = []
    buffer: list[str] = []
    buffer_heading, size, has_body = "", 0, False
    for block in blocks:
        words = len(block.text.split())
        # name lists run to more word pieces than words, so a tally never joins its neighbours
        joins = block.heading == buffer_heading and size + words <= max_words and not block.vote
        if has_body and not joins:
            out.append((buffer_heading, " ".join(buffer)))
            buffer, size, has_body = [], 0, False
        if words > max_words:
            pieces = split_long(block.text, max_words)
            pieces[0] = " ".join([*buffer, pieces[0]])  # any lone heading joins the first piece
            out.extend((block.heading, piece) for piece in pieces)
            buffer, size = [], 0
            continue
        buffer_heading = block.heading
        buffer.append(block.text)
        size += words
        has_body = has_body or not _lone_heading(block)
    if buffer:
        out.append((buffer_heading, " ".join(buffer)))
    return out


def _lone_heading(block: Block) -> bool:
    return block.text.rstrip(":–- ").strip() == block.heading


def split_long(text: str, max_words: int) -> list[str]:
    """Windows of whole sentences up to max_words, each repeating the previous last sentence."""
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    pieces: list[str] = []
    window: list[str] = []
    for sentence in _bounded(sentences, max_words):
        if window and sum(len(s.split()) for s in window) + len(sentence.split()) > max_words:
            pieces.append(" ".join(window))
            overlap = window[-1]
            fits = len(overlap.split()) + len(sentence.split()) <= max_words // 2
            window = [overlap] if fits else []
        window.append(sentence)
    if window:
        pieces.append(" ".join(window))
    return pieces


def _bounded(sentences: list[str], max_words: int) -> Iterable[str]:
    """Sentences, with any longer than max_words (tables, lists) cut into word windows."""
    for sentence in sentences:
        words = sentence.split()
        if len(words) <= max_words:
            yield sentence
            continue
        for start in range(0, len(words), max_words):
            yield " ".join(words[start : start + max_words])
