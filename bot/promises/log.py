"""Promises in the papers become follow-up requests, each logged once.

After an index run, every sentence in the published papers that promises information later
("further information will be provided", "a written answer will be sent", ...; see
`bot.promises.detect`) is logged as a request officers can answer like any other, citing the
meeting, page and sentence. Its asker is the promise itself (channel "promise",
`bot.requests.model.PROMISE_CHANNEL`), so the desk can filter them and Slack shows them as
promises. A promise is known by its sentence, not its file: however often the paper is
re-indexed or copied into another meeting's folder, it is logged once (`promises.sqlite3` in the
data directory remembers every sentence logged, even after its request is closed or purged).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from contextlib import closing
from functools import lru_cache

from bot.promises.detect import PromiseSentence, find_promises
from bot.promises.model import ARTIFACT, promise_encoder, sentence_vector
from bot.requests.model import PROMISE_CHANNEL, Asker, RequestStore
from bot.requests.service import RESPONSE_COMMITTEE
from bot.settings import Settings
from bot.types import Citation
from indexer.store import BuildContents, ChunkRow, DocumentRow

log = logging.getLogger(__name__)
REGISTRY_FILE = "promises.sqlite3"
_MARK_EVERY = 500  # passages remembered as read per commit


def log_promises(settings: Settings, store: RequestStore, contents: BuildContents) -> list[int]:
    """Log every promise not logged before; the new request numbers. A passage already read
    with this classifier is not read again (the registry remembers), so a nightly run reads
    only the new papers' passages, and all of them once after the classifier is retrained."""
    path = settings.home / REGISTRY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    logged: list[int] = []
    vector = sentence_vector(promise_encoder(settings.index))
    model = classifier_version()
    with closing(sqlite3.connect(path, timeout=30)) as registry:
        with registry:
            registry.execute(
                "CREATE TABLE IF NOT EXISTS promises (key TEXT PRIMARY KEY, request_id INTEGER)"
            )
            registry.execute(
                "CREATE TABLE IF NOT EXISTS passages_read (passage TEXT PRIMARY KEY, "
                "classifier TEXT NOT NULL)"
            )
        read_before = {
            p
            for (p,) in registry.execute(
                "SELECT passage FROM passages_read WHERE classifier = ?", (model,)
            )
        }
        published: set[str] = set()
        newly_read: list[str] = []
        read = skipped = 0
        for chunk in contents.chunks:
            document = contents.documents.get(chunk.doc_id)
            if document is None or document.committee == RESPONSE_COMMITTEE:
                continue  # officers' own answers are not the papers
            passage = promise_key(chunk.text)
            if passage in published:
                continue  # the same text twice in the papers (a copy): read once
            published.add(passage)
            if passage in read_before:
                skipped += 1
                continue
            read += 1
            for promise in find_promises(chunk.text, vector):
                key = promise_key(promise.sentence)
                if registry.execute("SELECT 1 FROM promises WHERE key = ?", (key,)).fetchone():
                    continue
                request_id = _log(store, promise, key, document, chunk)
                with registry:
                    registry.execute("INSERT INTO promises VALUES (?, ?)", (key, request_id))
                logged.append(request_id)
            newly_read.append(passage)
            if len(newly_read) >= _MARK_EVERY:
                _mark_read(registry, newly_read, model)
        _mark_read(registry, newly_read, model)
        with registry:  # passages gone from the papers need not be remembered
            remembered = [p for (p,) in registry.execute("SELECT passage FROM passages_read")]
            registry.executemany(
                "DELETE FROM passages_read WHERE passage = ?",
                [(p,) for p in remembered if p not in published],
            )
    log.info(
        "promises: %d passages read, %d read before with this classifier, %d logged",
        read,
        skipped,
        len(logged),
    )
    return logged


def _mark_read(registry: sqlite3.Connection, passages: list[str], model: str) -> None:
    """Remember these passages as read (in batches: a crash only means reading them again)."""
    with registry:
        registry.executemany(
            "INSERT OR REPLACE INTO passages_read VALUES (?, ?)", [(p, model) for p in passages]
        )
    passages.clear()


@lru_cache(maxsize=1)
def classifier_version() -> str:
    """Which classifier read a passage: its artifact's digest (retraining reads all again)."""
    return hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()[:16]


def promise_key(sentence: str) -> str:
    """The same sentence, however it was spaced or cased, is the same promise."""
    normal = " ".join(sentence.casefold().split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:20]


def _log(
    store: RequestStore,
    promise: PromiseSentence,
    key: str,
    document: DocumentRow,
    chunk: ChunkRow,
) -> int:
    where = ", ".join(
        part
        for part in (
            document.committee,
            document.meeting_date,
            f"page {chunk.page}" if chunk.page else "",
        )
        if part
    )
    who = "".join(
        [
            f" Made by {promise.made_by}." if promise.made_by else "",
            f" To {promise.made_to}." if promise.made_to else "",
        ]
    )
    question = f"Promised in {document.title} ({where}): “{promise.sentence}”{who}"
    citation = Citation(
        title=document.title,
        council=document.council,
        committee=document.committee,
        meeting_date=document.meeting_date,
        page=chunk.page,
        source=document.source,
        url=document.url,
        quote=chunk.text,
        score=1.0,
        chunk_id=chunk.chunk_id,
    )
    asker = Asker(PROMISE_CHANNEL, key, promise.made_to or "")
    return store.log(question, asker, (citation,), document.committee).request.request_id


def log_published_promises(settings: Settings) -> list[int]:
    """After an index run: log the promises in the published index (what the CLI calls)."""
    from bot.requests.service import open_store
    from indexer.store import read_build

    contents = read_build(settings.index.index_dir)
    with open_store(settings) as store:
        return log_promises(settings, store, contents)
