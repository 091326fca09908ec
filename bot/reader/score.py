"""The reader at answer time: the chance that each of a few passages states the asked fact.

Runs the built head (`clerk reader build`) with onnxruntime over the int8 encoder's token
vectors of the question and the passages; never imports torch. When the reader is switched off,
not built, or built for another encoder, Clerk decides without it and says so once in the log.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from bot.reader.artifact import GRAPH, ReaderManifest, read_manifest
from bot.reader.text import reader_text
from bot.settings import Settings
from indexer.embed import resolve_model_path
from indexer.onnx_encoder import OnnxEmbedder
from indexer.types import Hit

log = logging.getLogger(__name__)
INPUTS = ("q_vectors", "q_mask", "q_exact", "p_vectors", "p_mask")
SPECIAL = (0, 101, 102)  # [PAD], [CLS], [SEP]: not question words


class Reader:
    """Scores (question, passage) pairs with the built head; loads it on first use."""

    def __init__(self, folder, encoder: OnnxEmbedder, manifest: ReaderManifest):
        self.folder = folder
        self.encoder = encoder
        self.manifest = manifest
        self._session: Any = None

    @property
    def session(self):
        if self._session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            self._session = onnxruntime.InferenceSession(
                str(self.folder / GRAPH), options, providers=["CPUExecutionProvider"]
            )
        return self._session

    def score(self, question: str, hits: list[Hit]) -> list[float]:
        """For each passage, the chance (0-1) that it states the answer to the question."""
        if not hits:
            return []
        texts = [reader_text(h.committee, h.meeting_date, h.heading, h.text) for h in hits]
        encoded = self.encoder.token_vectors([question, *texts])
        feed = pair_inputs([encoded[0]] * len(hits), encoded[1:])
        (logits,) = self.session.run(None, feed)
        return [float(p) for p in 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))]


def pair_inputs(
    questions: list[tuple[np.ndarray, np.ndarray]], passages: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Padded float32 inputs for pairs (question i with passage i), as the graph takes them:
    token vectors, masks (special tokens are not question words), and whether each question
    word piece occurs in the passage verbatim."""
    rows, dim = len(questions), questions[0][1].shape[1]
    nq = max(len(ids) for ids, _ in questions)
    npass = max(len(ids) for ids, _ in passages)
    feed = {
        "q_vectors": np.zeros((rows, nq, dim), np.float32),
        "q_mask": np.zeros((rows, nq), np.float32),
        "q_exact": np.zeros((rows, nq), np.float32),
        "p_vectors": np.zeros((rows, npass, dim), np.float32),
        "p_mask": np.zeros((rows, npass), np.float32),
    }
    for i, ((qids, qvec), (pids, pvec)) in enumerate(zip(questions, passages, strict=True)):
        feed["q_vectors"][i, : len(qids)] = qvec
        feed["q_mask"][i, : len(qids)] = ~np.isin(qids, SPECIAL)
        feed["q_exact"][i, : len(qids)] = np.isin(qids, pids) & ~np.isin(qids, SPECIAL)
        feed["p_vectors"][i, : len(pids)] = pvec
        feed["p_mask"][i, : len(pids)] = 1.0
    return feed


def reader_encoder(settings: Settings) -> OnnxEmbedder:
    """The int8 encoder whose token vectors the reader reads (whatever CLERK_ENCODER says)."""
    index = settings.index
    return OnnxEmbedder(index.model, resolve_model_path(index.model), index.encoders_dir)


def load_reader(settings: Settings) -> Reader | None:
    """The reader if switched on and built for this encoder; else None, with one log line why."""
    if not settings.engine.reader:
        log.info("reader off (CLERK_READER): deciding with the combiner alone")
        return None
    folder = settings.reader_folder
    manifest = read_manifest(folder)
    if manifest is None:
        log.warning(
            "reader switched on but not built in %s (run `clerk reader build`): "
            "deciding with the combiner alone",
            folder,
        )
        return None
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
    log.info("reader loaded from %s (%s graph)", folder, manifest.graph)
    return Reader(folder, encoder, manifest)
