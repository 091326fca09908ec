"""What the bot gives people: an answer and the passages it cites.

Built from `indexer.types.Hit`s; plain frozen dataclasses, serialised with `to_dict` for `--json`,
the request store and the channels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from indexer.types import Hit


@dataclass(frozen=True)
class Citation:
    """A quoted passage given as evidence for an answer."""

    title: str
    council: str
    committee: str
    meeting_date: str | None
    page: int | None
    source: str
    url: str | None
    quote: str
    score: float
    chunk_id: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_hit(cls, hit: Hit, score: float, quote: str | None = None) -> Citation:
        return cls(
            title=hit.title,
            council=hit.council,
            committee=hit.committee,
            meeting_date=hit.meeting_date,
            page=hit.page,
            source=hit.source,
            url=hit.url,
            quote=hit.text if quote is None else quote,
            score=round(score, 4),
            chunk_id=hit.chunk_id,
        )


# The three kinds of reply.
ANSWERED = "answered"  # the fact first, quoted and cited
DISCUSSED = "discussed"  # the papers discuss the topic but not the asked fact: nearest shown
NOT_FOUND = "not_found"  # not in the papers


@dataclass(frozen=True)
class Answer:
    """Clerk's reply to one question. `kind` is the decision; the text never decides it."""

    question: str
    answered: bool  # True only for kind ANSWERED
    text: str
    citations: tuple[Citation, ...] = ()
    # when not answered: the closest passages found, shown to officers, never as an answer
    nearest: tuple[Citation, ...] = ()
    kind: str = NOT_FOUND
    confidence: float = 0.0  # the combiner's chance that the best passage answers
    request_id: int | None = None  # the follow-up request logged for officers, if any

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "kind": self.kind,
            "confidence": self.confidence,
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "nearest": [c.to_dict() for c in self.nearest],
            **({"request_id": self.request_id} if self.request_id is not None else {}),
        }
