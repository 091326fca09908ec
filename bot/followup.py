"""From an unanswered question to an officer's answer in the councillor's hands.

- `handle_question` answers a question and, when the papers do not answer it, logs a request.
- `escalate` turns an answer the councillor found unhelpful into a request ("this didn't
  answer it").
- `deliver_answers` sends officers' answers through each asker's channel, recording every success
  and failure in the store so a failure is retried later and never lost.
- `record_answer` stores an officer's answer and publishes it (Slack, CLI: call this, not
  `store.answer`, so that the answer becomes searchable).
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

import importlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.requests import (
    ANSWERED,
    CLOSED,
    DELIVERY_FAILED,
    DELIVERY_SENT,
    Asker,
    Delivery,
    InfoRequest,
    Logged,
    Notifier,
    RequestStore,
)
from bot.similar import EmbeddingSimilarity, Similarity
from indexer.errors import ConfigError, DeliveryError, LockedError, RequestError
from indexer.settings import Settings
from indexer.types import Answer, IndexSummary, SearchFilters

if TYPE_CHECKING:
    from bot.answer import Answerer

log = logging.getLogger(__name__)

RESPONSES_DIR = "responses"
RESPONSE_COMMITTEE = "Officer responses"
INBOX_DIR = "inbox"
# Modules that may offer `notifier_from_settings(settings) -> Notifier | None` for their channel;
# a module not written yet, or a channel not configured, is skipped.
NOTIFIER_MODULES = ("bot.slack_notify", "bot.email_notify")


# ---- questions in --------------------------------------------------------------------------


def handle_question(
    answerer: Answerer,
    store: RequestStore,
    question: str,
    asker: Asker,
    filters: SearchFilters | None = None,
) -> tuple[Answer, Logged | None]:
    """Answer from the papers; when they do not answer it, log a request for officers."""
    answer = answerer.answer(question, filters)
    if answer.answered:
        return answer, None
    committee = filters.committee if filters and filters.committee else _top_committee(answer)
    logged = store.log(answer.question or question, asker, answer.nearest, committee)
    return answer, logged


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


class CliNotifier:
    """Delivers to the terminal user's inbox file: <home>/inbox/<user>.txt."""

    channel = "cli"

    def __init__(self, inbox: Path):
        self.inbox = Path(inbox)

    @classmethod
    def from_settings(cls, settings: Settings) -> CliNotifier:
        return cls(settings.home / INBOX_DIR)

    def path_for(self, user_id: str) -> Path:
        return self.inbox / f"{_safe_name(user_id) or 'unknown'}.txt"

    def deliver(self, request: InfoRequest, asker: Asker) -> None:
        try:
            self.inbox.mkdir(parents=True, exist_ok=True)
            with self.path_for(asker.user_id).open("a", encoding="utf-8") as out:
                out.write(format_answer_message(request) + "\n\n")
        except OSError as exc:
            raise DeliveryError(f"cannot write to the inbox {self.inbox}: {exc}") from exc


def format_answer_message(request: InfoRequest) -> str:
    """Plain text telling an asker their request was answered."""
    date = (request.answered_at or "")[:10]
    return (
        f"Your request #{request.request_id} was answered by {request.answered_by} on {date}.\n"
        f"Question: {request.question}\n"
        f"Answer:\n{request.answer}"
    )


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    """Every channel this process can deliver through: the terminal inbox always, Slack and
    email when their modules exist and are configured."""
    notifiers: dict[str, Notifier] = {"cli": CliNotifier.from_settings(settings)}
    for name in NOTIFIER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        notifier = module.notifier_from_settings(settings)
        if notifier is not None:
            notifiers[notifier.channel] = notifier
    return notifiers


# ---- the store -------------------------------------------------------------------------------


def open_store(settings: Settings, similarity: Similarity | None = None, embedder=None):
    """The configured request store: SQLite in the data directory, or PostgreSQL.

    Pass an `indexer.embed` embedder (or any Similarity) to link reworded duplicate questions by
    meaning; without one, duplicates are found by content words.
    """
    if similarity is None and embedder is not None:
        similarity = EmbeddingSimilarity(embedder)
    url = settings.database_url
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from bot.requests_pg import PostgresRequestStore
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
    from bot.requests_sqlite import SqliteRequestStore

    return SqliteRequestStore(settings.requests_db, similarity=similarity)


# ---- answers become sources ------------------------------------------------------------------


def record_answer(
    settings: Settings, store: RequestStore, request_id: int, officer: str, text: str
) -> InfoRequest:
    """An officer answers: store the answer (queuing a delivery to every asker) and publish it
    as a response document for the index. Every channel that takes answers should call this."""
    request = store.answer(request_id, officer, text)
    try:
        publish_response(settings, request)
    except OSError as exc:  # the answer is safe in the store; the document can be re-published
        log.error("request #%s answered but not published: %s", request_id, exc)
    return request


def index_responses(settings: Settings, embedder) -> IndexSummary | None:
    """Index officers' new answers now, beside the folders already indexed, so the next asker
    gets one at once. None when another index build holds the lock (it will include them)."""
    from indexer.refresh import default_roots, published_roots, refresh

    indexed = published_roots(settings)
    if not indexed:
        return None  # nothing indexed yet: the first `clerk index` includes the responses
    try:
        return refresh(settings, default_roots(settings, indexed), embedder)
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
    folder = settings.home / RESPONSES_DIR / f"request-{request.request_id}"
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
    _write_atomic(folder / "meeting.json", json.dumps(meeting, indent=2) + "\n")
    _write_atomic(path, text)
    return path


def _response_council(request: InfoRequest) -> str:
    if not request.nearest:
        return RESPONSE_COMMITTEE
    return max(request.nearest, key=lambda c: c.score).council or RESPONSE_COMMITTEE


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name).strip("._")[:100]


def _safe_title(title: str) -> str:
    """A file name that reads as the title: no path separators or control characters."""
    return re.sub(r"[/\\\x00-\x1f]+", " ", title).strip(" .")[:200]
