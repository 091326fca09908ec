"""Retention: purging old requests reaches everything Clerk keeps about the people who asked.

`clerk requests purge` calls `purge_all`: answered requests past CLERK_AUTO_CLOSE_DAYS close
first; finished requests last changed before the cut-off are deleted with their askers,
deliveries and audit lines (one audit line records the purge); their response documents, which
quote the question, are deleted and dropped from the index; and each channel forgets what it
keeps about people from before the cut-off (mail senders and subjects, Slack "Helpful" clicks,
terminal inbox entries).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from bot import channels
from bot.requests.model import RequestStore, iso
from bot.requests.service import close_answered, index_responses, remove_responses
from bot.settings import Settings


@dataclass(frozen=True)
class PurgeReport:
    closed: list[int] = field(default_factory=list)
    purged: list[int] = field(default_factory=list)
    responses_removed: int = 0
    forgotten: dict[str, int] = field(default_factory=dict)  # per channel, items removed
    reindexed: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def purge_all(
    settings: Settings, store: RequestStore, older_than: datetime, actor: str, embedder=None
) -> PurgeReport:
    closed = close_answered(settings, store)
    purged = store.purge(older_than, actor)
    removed = remove_responses(settings, purged)
    forgotten = channels.forget_people(settings, iso(older_than), purged)
    reindexed = False
    if removed and embedder is not None:  # drop the deleted responses from the index now
        reindexed = index_responses(settings, embedder) is not None
    return PurgeReport(closed, purged, removed, forgotten, reindexed)
