"""The cross-encoder reader at answer time: MiniLM reads the question and each passage together.

Built by `clerk reader build --recipe cross-encoder` (bot.reader.cross_train) into the reader
folder as one ONNX graph; run here with onnxruntime and the model's fast tokenizer, never torch.
Unlike the late-interaction reader nothing is kept per passage: each question costs one run of
the model over the few passages it reads, each cut at MAX_TOKENS word pieces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bot.reader.artifact import CROSS_GRAPH, ReaderManifest, open_graph
from bot.reader.text import reader_text
from indexer.types import Hit

MAX_TOKENS = 192  # question and passage together; most passages fit, and it keeps a read quick


def load_tokenizer(model_dir: Path):
    """The model's fast tokenizer, set to cut pairs in the passage and pad to the longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pad = tokenizer.padding or {}
    tokenizer.enable_truncation(max_length=MAX_TOKENS, strategy="only_second")
    tokenizer.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
    return tokenizer


def pair_encodings(tokenizer, pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """int64 model inputs for (question, passage) pairs."""
    encoded = tokenizer.encode_batch(pairs)
    return {
        "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
    }


class CrossReader:
    """Scores (question, passage) pairs with the built graph; loads it on first use."""

    def __init__(self, folder: Path, model_dir: Path, manifest: ReaderManifest):
        self.folder = folder
        self.manifest = manifest
        self.tokenizer = load_tokenizer(model_dir)
        self._session: Any = None

    @property
    def session(self):
        if self._session is None:
            self._session = open_graph(self.folder / CROSS_GRAPH)
        return self._session

    def score(self, question: str, hits: list[Hit]) -> list[float]:
        """For each passage, the chance (0-1) that it states the answer to the question."""
        if not hits:
            return []
        texts = [reader_text(h.committee, h.meeting_date, h.heading, h.text) for h in hits]
        return [float(p) for p in chances(self.session, self.tokenizer, question, texts)]


def chances(session, tokenizer, question: str, texts: list[str]) -> np.ndarray:
    """The graph's chance for the question against each text, each pair run on its own: int8
    weights quantise activations per run, so in a batch a passage's score would depend on the
    passages beside it (and no run pays for padding)."""
    logits = np.concatenate(
        [session.run(None, pair_encodings(tokenizer, [(question, t)]))[0] for t in texts]
    )
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
