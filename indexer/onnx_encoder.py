"""The embedding model as an int8 ONNX graph: built once on this machine, run without torch.

`build` exports the model's transformer with torch's exporter from the local files, quantises its
weights dynamically to int8 per output channel with onnxruntime (per-tensor scales lost too much:
mean cosine 0.95 to fp32 on corpus passages), and writes it atomically under the encoders folder.
`OnnxEmbedder` runs it with onnxruntime and the model's fast tokenizer, then mean-pools and
L2-normalises exactly as sentence-transformers does. Only `build` imports torch, and at first use
the export and the quantisation each run in a process of their own, so the process that goes on
to embed never holds torch; serving an index needs onnxruntime, tokenizers and numpy.

    <encoders>/<model>-<key>/model.onnx     the int8 graph
                             encoder.json   recipe, source model, versions; written last
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import platform
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import ConfigError
from indexer.files import write_atomic

log = logging.getLogger(__name__)

# Change when the export or the quantisation changes: encoders and indexes built before rebuild.
RECIPE = "onnx-int8-v1"
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class BuiltEncoder:
    """What encoder.json records about one build."""

    recipe: str
    source: str
    dimension: int
    max_tokens: int
    seconds: float
    sha256: str
    versions: dict[str, str]


def encoder_name(spec: str) -> str:
    """The encoder's identity in index params: the model setting and the recipe."""
    return f"{spec}#{RECIPE}"


def encoder_folder(spec: str, model_dir: Path, encoders: Path) -> Path:
    """Where the encoder for this model is kept: a new folder whenever the model files change."""
    digest = hashlib.sha256(RECIPE.encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(
            f"{path.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()
        )
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", spec).strip("-")[-60:] or "model"
    return encoders / f"{slug}-{digest.hexdigest()[:16]}"


def read_sentence_config(model_dir: Path) -> tuple[int, int]:
    """(dimension, max tokens) of a mean-pooled, normalised sentence-transformers model."""
    modules = model_dir / "modules.json"
    if modules.is_file():
        kinds = {m["type"].rsplit(".", 1)[-1] for m in json.loads(modules.read_text())}
        if not kinds <= _SUPPORTED_MODULES:
            raise ConfigError(
                f"CLERK_ENCODER=onnx-int8 runs transformer + mean pooling models; {model_dir} also "
                f"has {sorted(kinds - _SUPPORTED_MODULES)}: use CLERK_ENCODER=torch-fp32"
            )
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file() and not _mean_pooled(json.loads(pooling.read_text())):
        raise ConfigError(f"{model_dir} does not mean-pool: use CLERK_ENCODER=torch-fp32")
    config = json.loads((model_dir / "config.json").read_text())
    return int(config["hidden_size"]), _max_tokens(model_dir, config)


def _max_tokens(model_dir: Path, config: dict) -> int:
    """The window the model was trained to read: sentence-transformers before version 6 kept
    it in sentence_bert_config.json, since then in the tokenizer's config."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"),
                      ("tokenizer_config.json", "model_max_length")):  # fmt: skip
        path = model_dir / name
        limit = json.loads(path.read_text()).get(key) if path.is_file() else None
        if isinstance(limit, int) and 0 < limit < 100_000:  # tokenizers say 1e30 for "none"
            return limit
    return int(config.get("max_position_embeddings", 512))


def _mean_pooled(pooling: dict) -> bool:
    """Pooling configs as sentence-transformers wrote them before version 6 and since."""
    return bool(pooling.get("pooling_mode_mean_tokens")) or pooling.get("pooling_mode") == "mean"


def export_fp32(model_dir: Path, target: Path) -> None:
    """The model's transformer as an fp32 ONNX graph (token vectors out), from local files."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation="eager"
    ).eval()
    # Padding in the example batch, so the traced graph honours the attention mask.
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2023, 102, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
        torch.onnx.export(
            _token_vectors(model),
            (ids, mask, torch.zeros_like(ids)),
            str(target),
            input_names=list(INPUTS),
            output_names=["token_vectors"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in (*INPUTS, "token_vectors")},
            opset_version=OPSET,
            dynamo=False,
        )


def _token_vectors(model):
    """The model wrapped to take keyword inputs and give the last hidden state, its one output."""
    import torch

    class TokenVectors(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    return TokenVectors(model)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 weights with one scale per output channel; activations quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()  # the quantiser logs a pre-processing hint on the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        quiet.setLevel(level)


def build(model_dir: Path, folder: Path, apart: bool = False) -> BuiltEncoder:
    """Export, quantise and publish into `folder`: model.onnx first, encoder.json last.

    `apart` runs the export (torch: near 760 MB at its peak) and the quantisation (near 480 MB)
    each in a fresh process, so neither stays in this one nor adds to the other."""
    dimension, max_tokens = read_sentence_config(model_dir)
    if not (model_dir / "tokenizer.json").is_file():
        raise ConfigError(f"{model_dir} has no tokenizer.json: use CLERK_ENCODER=torch-fp32")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clerk-encoder-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _step(apart, export_fp32, model_dir, fp32)
        _step(apart, quantize_int8, fp32, int8)
        data = int8.read_bytes()
    write_atomic(folder / "model.onnx", data)
    built = BuiltEncoder(
        recipe=RECIPE,
        source=str(model_dir),
        dimension=dimension,
        max_tokens=max_tokens,
        seconds=round(time.perf_counter() - started, 2),
        sha256=hashlib.sha256(data).hexdigest(),
        versions=_versions(),
    )
    write_atomic(folder / "encoder.json", json.dumps(asdict(built), indent=2) + "\n")
    log.info("built the int8 encoder in %.1f s (%d bytes)", built.seconds, len(data))
    return built


def _step(apart: bool, function: Callable[[Path, Path], None], source: Path, target: Path) -> None:
    """One step of the build, here or in a process of its own."""
    if not apart:
        function(source, target)
        return
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(function, source, target).result()


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("torch", "onnxruntime", "onnx", "transformers", "tokenizers"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def read_built(folder: Path) -> BuiltEncoder | None:
    """The finished build in `folder`, or None if there is none (or it is half written)."""
    manifest = folder / "encoder.json"
    if not manifest.is_file() or not (folder / "model.onnx").is_file():
        return None
    try:
        built = BuiltEncoder(**json.loads(manifest.read_text(encoding="utf-8")))
    except (ValueError, TypeError):  # unreadable or from another version of Clerk: build again
        return None
    return built if built.recipe == RECIPE else None


class OnnxEmbedder:
    """The int8 encoder on the CPU: built on first use if missing, loaded on first use.

    Building takes seconds and needs torch once; every later process loads the built file.
    """

    def __init__(
        self,
        spec: str,
        model_dir: Path,
        encoders: Path,
        batch_size: int = 16,  # as fast as 64 here, and a third of the memory (430 MB vs 1.3 GB)
        graph: Path | None = None,
    ):
        self.name = encoder_name(spec)
        self.batch_size = batch_size
        self.model_dir = model_dir
        self.folder = encoder_folder(spec, model_dir, encoders)
        self.graph = graph  # another graph of the same model to run instead (the bench's fp32)
        self.dimension, self.max_tokens = read_sentence_config(model_dir)
        self._session: Any = None
        self._tokenizer: Any = None
        self._counter: Any = None
        # the last text run alone, and its output: a question is run once when both retrieval
        # (its embedding) and the reader (its token vectors) need it
        self._last: tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def ensure_built(self) -> BuiltEncoder:
        """The build for this model, made now if there is none yet."""
        built = read_built(self.folder)
        if built is None:
            log.info("building the int8 encoder into %s (once)", self.folder)
            built = build(self.model_dir, self.folder, apart=True)
        return built

    @property
    def session(self):
        if self._session is None:
            import onnxruntime

            if self.graph is None:
                self.ensure_built()
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            # Idle threads sleep rather than spin: while indexing, the workers reading papers
            # need the cores (spinning cost a third more CPU for the same passages, and time).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(
                str(self.graph or self.folder / "model.onnx"),
                options,
                providers=["CPUExecutionProvider"],
            )
            log.info("loaded the int8 encoder %s", self.folder.name)
        return self._session

    @property
    def tokenizer(self):
        """The fast tokenizer cutting at the model's window and padding to the longest text."""
        if self._tokenizer is None:
            tokenizer = self._load_tokenizer()
            pad = tokenizer.padding or {}  # the file may pad to a fixed length: keep its token only
            tokenizer.enable_truncation(max_length=self.max_tokens)
            tokenizer.enable_padding(
                pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]")
            )
            self._tokenizer = tokenizer
        return self._tokenizer

    def _load_tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # Similar lengths batched together waste less work on padding; the order is restored.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors[rows] = self._embed_batch([texts[i] for i in rows])
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        _, mask, tokens = self._run(texts)
        return mean_pool(tokens, mask)

    def _run(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(word-piece ids, attention mask, token vectors) of one padded batch."""
        last = self._last  # one read: other threads may replace it
        if len(texts) == 1 and last is not None and last[0] == texts[0]:
            return last[1]
        ran = self._run_batch(texts)
        if len(texts) == 1:
            self._last = (texts[0], ran)
        return ran

    def _run_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        wanted = {i.name for i in self.session.get_inputs()}
        (tokens,) = self.session.run(None, {k: v for k, v in feed.items() if k in wanted})
        return ids, mask, tokens

    def token_vectors(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each text's word-piece ids and contextual token vectors (float16), padding dropped:
        what a late-interaction reader compares, token by token."""
        found: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0))] * len(texts)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, mask, tokens = self._run([texts[i] for i in rows])
            for row, i in enumerate(rows):
                size = int(mask[row].sum())
                found[i] = (ids[row, :size].copy(), tokens[row, :size].astype(np.float16))
        return found

    def count_tokens(self, text: str) -> int:
        """Word pieces in the text (uncut), to check chunks fit the model's window."""
        if self._counter is None:
            self._counter = self._load_tokenizer()
            self._counter.no_truncation()
            self._counter.no_padding()
        return len(self._counter.encode(text, add_special_tokens=True).ids)


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the unmasked token vectors, L2-normalised (as sentence-transformers does)."""
    weights = mask[..., None].astype(np.float32)
    summed = (tokens.astype(np.float32) * weights).sum(axis=1)
    means = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return np.ascontiguousarray(means / np.clip(norms, 1e-12, None), dtype=np.float32)
