"""After an index run: the reader's projections of the newly published passages, kept.

`clerk index` and `clerk nightly` call this once the index is published, so the next question
reads every passage from the store. Only new or changed passages are encoded (a nightly run adds
a few papers: seconds); passages gone from the index are dropped. It never fails the index run:
the index is already published, and the reader projects anything missing when it reads it.
"""

from __future__ import annotations

import logging
import time

from bot.reader.artifact import PASSAGE_GRAPH, RECIPE, read_manifest
from bot.reader.passages import Projector, open_store
from bot.reader.score import reader_encoder
from bot.reader.text import passage_texts
from bot.settings import Settings
from indexer.store import read_build

log = logging.getLogger(__name__)


def keep_published_passages(settings: Settings) -> dict[str, int] | None:
    """Project the published index's new passages for the reader; None when there is no reader
    to project for (off, not built for this encoder, or a cross-encoder, which keeps nothing per
    passage) or the run failed (logged)."""
    if not settings.engine.reader:
        return None
    folder = settings.reader_folder
    manifest = read_manifest(folder)
    encoder = reader_encoder(settings)
    if manifest is None or manifest.recipe != RECIPE or manifest.encoder != encoder.folder.name:
        log.info("no reader built for this encoder: no passages to project")
        return None
    started = time.perf_counter()
    try:
        contents = read_build(settings.index.index_dir)
        texts = passage_texts(contents)
        store = open_store(folder, manifest.sha256)
        try:
            counts = store.keep(texts, encoder.token_vectors, Projector(folder / PASSAGE_GRAPH))
        finally:
            store.close()
    except Exception as exc:  # the index is published; what is missing is projected when read
        log.error("keeping the reader's passage projections failed: %s", type(exc).__name__)
        return None
    log.info(
        "reader passages: %d projected, %d kept, %d dropped in %.1f s",
        counts["projected"],
        counts["kept"],
        counts["dropped"],
        time.perf_counter() - started,
    )
    return counts
