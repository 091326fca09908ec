"""The reader at answer time: the chance that each of a few passages states the asked fact.

Runs the built head (`clerk reader build`) with onnxruntime: the int8 encoder's token vectors
of the question against the passages' kept projections (bot.reader.passages), so a question
costs one short encoding, not nine; never imports torch. When the reader is switched off,
not built, or built for another encoder, Clerk decides without it and says so once in the log.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from bot.reader.artifact import (
    CROSS_GRAPH,
    CROSS_RECIPE,
    GRAPH,
    PASSAGE_GRAPH,
    ReaderManifest,
    open_graph,
    read_manifest,
)
from bot.reader.cross import CrossReader
from bot.reader.passages import (
    PassageStore,
    Projected,
    Projector,
    Tokens,
    digest,
    open_store,
    unit,
)
from bot.reader.text import reader_text
from bot.settings import Settings
from indexer.embed import resolve_model_path
from indexer.onnx_encoder import OnnxEmbedder
from indexer.types import Hit

log = logging.getLogger(__name__)
PAIR_INPUTS = ("q_vectors", "q_mask", "q_exact", "p_keys", "p_kinds", "p_mask")
SPECIAL = (0, 101, 102)  # [PAD], [CLS], [SEP]: not question words


class Reader:
    """Scores (question, passage) pairs with the built head; loads it on first use. Passages
    come projected from the store where kept, else are encoded and projected here."""

    def __init__(self, folder: Path, encoder: OnnxEmbedder, manifest: ReaderManifest):
        self.folder = folder
        self.encoder = encoder
        self.manifest = manifest
        self.projector = Projector(folder / PASSAGE_GRAPH)
        self.store: PassageStore | None = None
        try:
            self.store = open_store(folder, manifest.sha256)
        except (sqlite3.Error, OSError) as exc:  # e.g. a read-only folder: project when reading
            log.warning("the reader's passage store is not usable (%s): projecting passages "
                        "as they are read", type(exc).__name__)  # fmt: skip
        self._session: Any = None

    @property
    def session(self):
        if self._session is None:
            self._session = open_graph(self.folder / GRAPH)
        return self._session

    def score(self, question: str, hits: list[Hit]) -> list[float]:
        """For each passage, the chance (0-1) that it states the answer to the question."""
        if not hits:
            return []
        texts = [reader_text(h.committee, h.meeting_date, h.heading, h.text) for h in hits]
        keys = [digest(t) for t in texts]
        kept = self._kept(keys)
        missing = [i for i, key in enumerate(keys) if key not in kept]
        projected: dict[int, Projected] = {}
        if missing:
            encoded = self.encoder.token_vectors([texts[i] for i in missing])
            projected = dict(zip(missing, self.projector.project(encoded), strict=True))
        passages = [kept[key] if key in kept else projected[i] for i, key in enumerate(keys)]
        # the question alone, as retrieval ran it a moment ago (the encoder keeps that run)
        (asked,) = self.encoder.token_vectors([question])
        (logits,) = self.session.run(None, pair_inputs(asked, passages))
        return [float(p) for p in 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))]

    def _kept(self, keys: list[bytes]) -> dict[bytes, Projected]:
        """The passages' kept projections; none (each projected here) if the store fails."""
        if self.store is None:
            return {}
        try:
            return self.store.get(keys)
        except sqlite3.Error as exc:
            log.warning("reading the reader's passage store failed: %s", type(exc).__name__)
            return {}


def question_marks(qids: np.ndarray, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which question tokens are words (special tokens are not), and which of those occur in
    the passage verbatim."""
    words = ~np.isin(qids, SPECIAL)
    return words, np.isin(qids, pids) & words


def pair_inputs(question: Tokens, passages: list[Projected]) -> dict[str, np.ndarray]:
    """Padded float32 inputs of the pair graph: the question against each passage."""
    qids, qvec = question
    rows, longest = len(passages), max(len(p.ids) for p in passages)
    feed = {
        "q_vectors": np.repeat(qvec.astype(np.float32)[None], rows, axis=0),
        "q_mask": np.zeros((rows, len(qids)), np.float32),
        "q_exact": np.zeros((rows, len(qids)), np.float32),
        "p_keys": np.zeros((rows, longest, passages[0].keys.shape[1]), np.float32),
        "p_kinds": np.zeros((rows, longest, passages[0].kinds.shape[1]), np.float32),
        "p_mask": np.zeros((rows, longest), np.float32),
    }
    for i, p in enumerate(passages):
        feed["q_mask"][i], feed["q_exact"][i] = question_marks(qids, p.ids)
        feed["p_keys"][i, : len(p.ids)] = unit(p.keys)
        feed["p_kinds"][i, : len(p.ids)] = unit(p.kinds)
        feed["p_mask"][i, : len(p.ids)] = 1.0
    return feed


def reader_encoder(settings: Settings) -> OnnxEmbedder:
    """The int8 encoder whose token vectors the reader reads (whatever CLERK_ENCODER says)."""
    index = settings.index
    return OnnxEmbedder(index.model, resolve_model_path(index.model), index.encoders_dir)


def load_reader(settings: Settings, serving: object = None) -> Reader | CrossReader | None:
    """The reader if switched on and built for this encoder; else None, with one log line why.
    `serving`, the encoder retrieval uses, is shared when it is the reader's own."""
    if not settings.engine.reader:
        log.info("reader off (CLERK_READER): deciding with the combiner alone")
        return None
    folder = settings.reader_folder
    manifest = read_manifest(folder)
    if manifest is None:  # on by default, so a fresh install says how, without alarm
        log.info(
            "no reader built in %s (run `clerk reader build`): deciding with the combiner alone",
            folder,
        )
        return None
    if manifest.recipe == CROSS_RECIPE:  # reads the words itself: no encoder to agree with
        return _load_cross(folder, resolve_model_path(settings.index.model), manifest)
    encoder = reader_encoder(settings)
    if manifest.encoder != encoder.folder.name:
        log.warning(
            "reader in %s was built for encoder %s, not %s (run `clerk reader build`): "
            "deciding with the combiner alone",
            folder,
            manifest.encoder,
            encoder.folder.name,
        )
        return None
    if isinstance(serving, OnnxEmbedder) and serving.folder == encoder.folder and not serving.graph:
        encoder = serving  # one model in memory, and the question run once
    log.info("reader loaded from %s (%s graph)", folder, manifest.graph)
    return Reader(folder, encoder, manifest)


def _load_cross(folder: Path, model_dir: Path, manifest: ReaderManifest) -> CrossReader | None:
    """The cross-encoder, its graph checked and loaded now: a damaged file is found at start-up,
    logged, and Clerk decides without it, rather than failing the first question."""
    graph = folder / CROSS_GRAPH
    if hashlib.sha256(graph.read_bytes()).hexdigest() != manifest.sha256:
        log.error("the reader's graph %s is not the one built (run `clerk reader build`): "
                  "deciding with the combiner alone", graph)  # fmt: skip
        return None
    reader = CrossReader(folder, model_dir, manifest)
    try:
        reader.session  # noqa: B018 (loading it is the check)
    except Exception as exc:  # onnxruntime's own errors: the file is there but unusable
        log.error("the reader's graph %s could not be loaded (%s): deciding with the combiner "
                  "alone", graph, type(exc).__name__)  # fmt: skip
        return None
    log.info("cross-encoder reader loaded from %s (%s graph)", folder, manifest.graph)
    return reader
