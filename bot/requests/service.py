"""From an unanswered question to an officer's answer in the councillor's hands.

- `handle_question` answers a question and, when the papers do not answer it, logs a request.
- `escalate` turns an answer the councillor found unhelpful into a request ("this didn't
  answer it").
- `deliver_answers` sends officers' answers through each asker's channel, recording every success
  and failure in the store so a failure is retried later and never lost.
- `record_answer` stores an officer's answer; `follow_through` then publishes it, delivers it
  and indexes it, the same way for every channel (`answer_request` does both).
- `publish_response` files an officer's answer where the indexer reads it, so that the next
  councillor asking the same thing gets it at once as a cited source.

Response documents (read by `indexer.refresh`, which always indexes `<home>/responses`):

    <home>/responses/request-<N>/meeting.json
        {"council": <council of the nearest passage, else "Officer responses">,
         "committee": "Officer responses", "meeting_date": <answer date, YYYY-MM-DD>,
         "site": null}
    <home>/responses/request-<N>/Officer response to request #<N> (<date>, <officer>).txt
        first line: the same title; then "Question:" and "Answer:" paragraphs

One folder per request because meeting.json describes every document beside it, and each response
has its own date and council; the file name is the title because `indexer.sources` takes titles
from file names. Purging a request leaves its response: it names the officer, not the asker.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import DeliveryError, RequestError
from bot.requests.model import (
    ANSWERED,
    CLOSED,
    DELIVERY_FAILED,
    DELIVERY_SENT,
    PENDING,
    Asker,
    Delivery,
    InfoRequest,
    Logged,
    Notifier,
    RequestFilter,
    RequestStore,
    iso,
    utc_now,
)
from bot.requests.similar import EmbeddingSimilarity, Similarity
from bot.settings import Settings
from bot.types import Answer
from indexer.errors import ConfigError, LockedError
from indexer.files import write_atomic
from indexer.types import IndexSummary, SearchFilters

if TYPE_CHECKING:
    from bot.engine.answer import Answerer

log = logging.getLogger(__name__)

RESPONSES_DIR = "responses"
RESPONSE_COMMITTEE = "Officer responses"


# ---- questions in --------------------------------------------------------------------------


def handle_question(
    answerer: Answerer,
    store: RequestStore,
    question: str,
    asker: Asker,
    filters: SearchFilters | None = None,
    resumed: bool = False,
) -> tuple[Answer, Logged | None]:
    """Answer from the papers; when they do not answer it, log a request for officers.

    `resumed`: this ask was being handled when its process died; what it logged then is found
    (`logged_before`) rather than logged again."""
    answer = answerer.answer(question, filters)
    if answer.answered:
        return answer, None
    logged = logged_before(store, asker) if resumed else None
    if logged is None:
        committee = filters.committee if filters and filters.committee else _top_committee(answer)
        logged = store.log(answer.question or question, asker, answer.nearest, committee)
    return replace(answer, request_id=logged.request.request_id), logged


def logged_before(store: RequestStore, asker: Asker) -> Logged | None:
    """The pending request this very ask was logged as, if it was: the same asker, asking from
    the same place (`reply_to`: a Slack thread, an email's Message-ID). `created` says whether it
    was this ask that created the request (its first asker).

    For channels that resume work interrupted by a crash: logging again would not make a second
    request, but it would add an "asked again" audit line and lose whether officers still have
    to be told of a new request."""
    if not asker.reply_to:
        return None  # nothing tells this ask from another by the same person
    for request in store.list(RequestFilter(states=PENDING, asker_id=asker.user_id)):
        for n, other in enumerate(request.askers):
            if (other.channel, other.user_id, dict(other.reply_to)) == (
                asker.channel,
                asker.user_id,
                dict(asker.reply_to),
            ):
                return Logged(request, created=n == 0)
    return None


def escalate(store: RequestStore, answer: Answer, asker: Asker) -> Logged:
    """The councillor says the answer did not help: officers get the question and its passages."""
    return store.log(
        answer.question, asker, answer.citations + answer.nearest, _top_committee(answer)
    )


def _top_committee(answer: Answer) -> str | None:
    passages = answer.citations + answer.nearest
    return max(passages, key=lambda c: c.score).committee if passages else None


# ---- answers out -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery round did, one entry per asker tried."""

    results: tuple[Delivery, ...] = ()

    @property
    def sent(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.results if d.state == DELIVERY_SENT)

    @property
    def failed(self) -> tuple[Delivery, ...]:
        """Not delivered this round: to be retried (pending) or given up (failed)."""
        return tuple(d for d in self.results if d.state != DELIVERY_SENT)

    @property
    def gave_up(self) -> tuple[Delivery, ...]:
        return tuple(d for d in self.results if d.state == DELIVERY_FAILED)

    def to_dict(self) -> dict:
        return {
            "sent": [d.to_dict() for d in self.sent],
            "failed": [d.to_dict() for d in self.failed],
        }


def deliver_answers(
    store: RequestStore, notifiers: Mapping[str, Notifier], now: datetime | None = None
) -> DeliveryReport:
    """Send every answer that is due through the asker's channel, and record how it went.

    Only channels in `notifiers` are tried, so the Slack and email processes each deliver their
    own. A notifier signals failure by raising (DeliveryError, or anything else: a bug in a
    channel must not lose the answer); the store schedules a retry with backoff.
    """
    results = []
    requests: dict[int, InfoRequest] = {}
    for delivery in store.claim_deliveries(notifiers.keys(), now=now):
        if delivery.request_id not in requests:
            requests[delivery.request_id] = store.get(delivery.request_id)
        error = None
        try:
            notifiers[delivery.asker.channel].deliver(requests[delivery.request_id], delivery.asker)
        except Exception as exc:  # recorded and retried, whatever it was
            error = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, DeliveryError):
                log.exception("notifier %s failed", delivery.asker.channel)
        results.append(store.record_delivery(delivery.delivery_id, error, now=now))
    return DeliveryReport(tuple(results))


# ---- the store -------------------------------------------------------------------------------


def open_store(settings: Settings, similarity: Similarity | None = None, embedder=None):
    """The configured request store: SQLite in the data directory, or PostgreSQL.

    Pass an `indexer.embed` embedder (or any Similarity) to link reworded duplicate questions by
    meaning; without one, duplicates are found by content words.
    """
    if similarity is None and embedder is not None:
        similarity = EmbeddingSimilarity(embedder)
    url = settings.requests.database_url
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from bot.requests.stores.postgres import PostgresRequestStore
        except ImportError as exc:
            raise ConfigError(
                "CLERK_DATABASE_URL names PostgreSQL, but the PostgreSQL request store is not "
                f"available ({exc}); install clerk[postgres] or leave CLERK_DATABASE_URL empty "
                "for SQLite"
            ) from exc
        return PostgresRequestStore(url, similarity=similarity)
    if url:
        scheme = url.split(":", 1)[0]
        raise ConfigError(
            f"CLERK_DATABASE_URL has scheme {scheme!r}; use postgresql://... or leave it empty"
        )
    from bot.requests.stores.sqlite import SqliteRequestStore

    return SqliteRequestStore(settings.requests_db, similarity=similarity)


# ---- answers become sources ------------------------------------------------------------------


def record_answer(
    settings: Settings, store: RequestStore, request_id: int, officer: str, text: str
) -> InfoRequest:
    """An officer answers: store the answer, which queues a delivery to every asker.

    The first half of answering, quick and checked (a clash or an empty answer raises
    RequestError and changes nothing); `follow_through` does the rest."""
    return store.answer(request_id, officer, text)


@dataclass(frozen=True)
class FollowThrough:
    """What happened after an answer was recorded."""

    request: InfoRequest
    published: Path | None  # the response document, or None when it could not be written
    deliveries: DeliveryReport
    indexed: IndexSummary | None  # None: nothing indexed yet, or another build will include it


def follow_through(
    settings: Settings,
    store: RequestStore,
    request: InfoRequest,
    notifiers: Mapping[str, Notifier],
    embedder=None,
) -> FollowThrough:
    """Everything after an answer is recorded, in one order for every channel: publish it as a
    cited source, deliver it to the askers these notifiers reach, then index it (slowest last).

    No step's failure loses the answer: it is safe in the store, a failed delivery is retried,
    and a response that was not written or indexed is written by the next answer or index run.
    """
    published = None
    try:
        published = publish_response(settings, request)
    except OSError as exc:
        log.error("request #%s answered but not published: %s", request.request_id, exc)
    deliveries = deliver_answers(store, notifiers)
    indexed = None
    if published is not None and embedder is not None:
        indexed = index_responses(settings, embedder)
    return FollowThrough(request, published, deliveries, indexed)


def answer_request(
    settings: Settings,
    store: RequestStore,
    request_id: int,
    officer: str,
    text: str,
    notifiers: Mapping[str, Notifier],
    embedder=None,
) -> FollowThrough:
    """Record an officer's answer and follow it through (the CLI's one call)."""
    request = record_answer(settings, store, request_id, officer, text)
    return follow_through(settings, store, request, notifiers, embedder)


def close_answered(
    settings: Settings, store: RequestStore, now: datetime | None = None
) -> list[int]:
    """Close requests answered more than CLERK_AUTO_CLOSE_DAYS ago; their ids."""
    days = settings.requests.auto_close_days
    if days <= 0:
        return []
    cutoff = iso((now or utc_now()) - timedelta(days=days))
    closed = []
    for request in store.list(RequestFilter(states=(ANSWERED,))):
        if request.answered_at and request.answered_at < cutoff:
            store.close(request.request_id, f"clerk (answered over {days} days ago)")
            closed.append(request.request_id)
    return closed


def remove_responses(settings: Settings, request_ids: list[int]) -> int:
    """Delete the response documents of purged requests (they quote the question); how many."""
    removed = 0
    for request_id in request_ids:
        folder = responses_root(settings) / f"request-{request_id}"
        if folder.is_dir():
            shutil.rmtree(folder)
            removed += 1
    return removed


def responses_root(settings: Settings) -> Path:
    """The folder of officers' answers, one of the roots every index run mirrors."""
    return settings.home / RESPONSES_DIR


def index_roots(settings: Settings, paths: list[Path] | None = None) -> list[Path]:
    """The folders an index run mirrors: those asked for (or the corpus) plus officers' answers.

    Every entry point (`clerk index`, `clerk nightly`, an officer answering) indexes this same
    set, so no run drops what another added."""
    roots = [Path(p) for p in paths] if paths else [settings.index.corpus]
    responses = responses_root(settings)
    if responses.is_dir() and responses.resolve() not in {r.resolve() for r in roots}:
        roots.append(responses)
    return roots


def index_responses(settings: Settings, embedder) -> IndexSummary | None:
    """Index officers' new answers now, beside the folders already indexed, so the next asker
    gets one at once. None when another index build holds the lock (it will include them)."""
    from indexer.refresh import published_roots, refresh

    indexed = published_roots(settings.index)
    if not indexed:
        return None  # nothing indexed yet: the first `clerk index` includes the responses
    try:
        return refresh(settings.index, index_roots(settings, indexed), embedder)
    except LockedError:
        log.info("an index build is running; it will pick up the new response")
        return None


def response_title(request: InfoRequest) -> str:
    return (
        f"Officer response to request #{request.request_id} "
        f"({(request.answered_at or '')[:10]}, {request.answered_by})"
    )


def response_path(settings: Settings, request: InfoRequest) -> Path:
    """Where a request's response document lives (see the module docstring)."""
    folder = responses_root(settings) / f"request-{request.request_id}"
    return folder / f"{_safe_title(response_title(request))}.txt"


def publish_response(settings: Settings, request: InfoRequest) -> Path:
    """Write an answered request as a document the indexer picks up; returns the text file."""
    if request.state not in (ANSWERED, CLOSED) or not request.answer:
        raise RequestError(f"request #{request.request_id} has no answer to publish")
    path = response_path(settings, request)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    title = response_title(request)
    meeting = {
        "council": _response_council(request),
        "committee": RESPONSE_COMMITTEE,
        "meeting_date": (request.answered_at or "")[:10] or None,
        "site": None,
    }
    text = f"{title}\n\nQuestion: {request.question}\n\nAnswer: {request.answer}\n"
    for old in folder.glob("*.txt"):  # a re-publish replaces, never adds a second copy
        if old != path:
            old.unlink()
    write_atomic(folder / "meeting.json", json.dumps(meeting, indent=2) + "\n")
    write_atomic(path, text)
    return path


def _response_council(request: InfoRequest) -> str:
    if not request.nearest:
        return RESPONSE_COMMITTEE
    return max(request.nearest, key=lambda c: c.score).council or RESPONSE_COMMITTEE


def _safe_title(title: str) -> str:
    """A file name that reads as the title: no path separators or control characters."""
    return re.sub(r"[/\\\x00-\x1f]+", " ", title).strip(" .")[:200]
