"""The built reader on disk: a small ONNX graph and the manifest that says how it was made.

<reader dir>/reader.onnx   the head (int8 weights where that kept its scores)
             reader.json   recipe, encoder it reads, seed, pair counts, loss curve; last
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RECIPE = "late-interaction-v1"
GRAPH, MANIFEST = "reader.onnx", "reader.json"


@dataclass(frozen=True)
class ReaderManifest:
    """What reader.json records about one build."""

    recipe: str
    encoder: str  # the int8 encoder folder whose token vectors it was trained on
    seed: int
    seconds: dict[str, float]
    pairs: dict[str, int]
    held_out: dict[str, float]
    curve: list[dict[str, float]]
    graph: str  # "int8" or "fp32"
    agreement: dict[str, float]  # the exported graph against the trained head
    sha256: str
    versions: dict[str, str] = field(default_factory=dict)


def read_manifest(folder: Path) -> ReaderManifest | None:
    """The finished build in `folder`, or None (absent, half written, another recipe)."""
    manifest = folder / MANIFEST
    if not manifest.is_file() or not (folder / GRAPH).is_file():
        return None
    try:
        built = ReaderManifest(**json.loads(manifest.read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return None
    return built if built.recipe == RECIPE else None
