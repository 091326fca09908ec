"""The built reader on disk: a small ONNX graph and the manifest that says how it was made.

<reader dir>/passage.onnx       the passage half of the head: token vectors -> projections
             reader.onnx        the pair half: question tokens against kept passage projections
                                (both int8 weights where that kept their scores)
             reader.json        recipe, encoder it reads, seed, pair counts, loss curve; last
             passages.sqlite3   every indexed passage's projections (bot.reader.passages)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RECIPE = "late-interaction-v2"  # v2: the passage half split off, so passages are projected once
GRAPH, PASSAGE_GRAPH, MANIFEST = "reader.onnx", "passage.onnx", "reader.json"


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
    sha256: str  # of both graphs: what kept projections are tagged with
    versions: dict[str, str] = field(default_factory=dict)


def read_manifest(folder: Path) -> ReaderManifest | None:
    """The finished build in `folder`, or None (absent, half written, another recipe)."""
    if not all((folder / name).is_file() for name in (MANIFEST, GRAPH, PASSAGE_GRAPH)):
        return None
    try:
        built = ReaderManifest(**json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (ValueError, TypeError):
        return None
    return built if built.recipe == RECIPE else None
