"""The built reader on disk: its ONNX graphs and the manifest that says how it was made.

One reader at a time lives in the folder, of one of two recipes. The late-interaction reader:

<reader dir>/passage.onnx       the passage half of the head: token vectors -> projections
             reader.onnx        the pair half: question tokens against kept passage projections
                                (both int8 weights where that kept their scores)
             reader.json        recipe, encoder it reads, seed, pair counts, loss curve; last
             passages.sqlite3   every indexed passage's projections (bot.reader.passages)

The cross-encoder (the whole MiniLM fine-tuned to read question and passage together):

<reader dir>/cross.onnx         the model with its head (int8 weights where that kept its scores)
             reader.json        as above; last
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

RECIPE = "late-interaction-v2"  # v2: the passage half split off, so passages are projected once
CROSS_RECIPE = "cross-encoder-v1"
GRAPH, PASSAGE_GRAPH, MANIFEST = "reader.onnx", "passage.onnx", "reader.json"
CROSS_GRAPH = "cross.onnx"
FILES = {RECIPE: (GRAPH, PASSAGE_GRAPH), CROSS_RECIPE: (CROSS_GRAPH,)}


@dataclass(frozen=True)
class ReaderManifest:
    """What reader.json records about one build."""

    recipe: str
    encoder: str  # the int8 encoder folder whose token vectors it was trained (or mined) with
    seed: int
    seconds: dict[str, float]
    pairs: dict[str, int]
    held_out: dict[str, float]
    curve: list[dict[str, float]]
    graph: str  # "int8" or "fp32"
    agreement: dict[str, float]  # the exported graph against the trained head
    sha256: str  # of both graphs: what kept projections are tagged with
    versions: dict[str, str] = field(default_factory=dict)


def open_graph(path: Path):
    """An onnxruntime session for one of the reader's graphs, on the CPU, warnings only."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_manifest(folder: Path) -> ReaderManifest | None:
    """The finished build in `folder`, or None (absent, half written, an unknown recipe)."""
    try:
        built = ReaderManifest(**json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    files = FILES.get(built.recipe)
    if files is None or not all((folder / name).is_file() for name in files):
        return None
    return built
