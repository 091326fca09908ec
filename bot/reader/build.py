"""`clerk reader build`: mine pairs from the published index, train the head, export it.

Seeded and reproducible from the same index. Imports torch (through `bot.reader.train`); serving
never imports this module.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bot.reader import mine
from bot.reader.artifact import GRAPH, MANIFEST, PASSAGE_GRAPH, RECIPE, ReaderManifest
from bot.reader.passages import Projector, open_store
from bot.reader.score import pair_inputs, reader_encoder
from bot.settings import Settings
from indexer.files import write_atomic
from indexer.onnx_encoder import OnnxEmbedder, _versions, quantize_int8

AGREEMENT = 0.995  # int8 graphs are kept only if their scores correlate this well with the head


def build(
    settings: Settings,
    questions: int = 5000,
    epochs: int = 3,
    max_seconds: float = 1200.0,
    seed: int = 13,
    say: Callable[[str], None] = print,
) -> ReaderManifest:
    """Mine, train, export and publish the reader into settings.reader_folder."""
    from bot.reader import train

    clock: dict[str, float] = {}
    started = time.perf_counter()
    index, encoder, texts, mined = written_questions(settings, questions, seed, say)
    clock["mining"] = time.perf_counter() - started
    passages = train.Tokens.of(encoder.token_vectors(texts))
    asked = train.Tokens.of(
        encoder.token_vectors([m.question for m in mined] + [m.twin for m in mined])
    )
    clock["encoding"] = time.perf_counter() - started - clock["mining"]
    pooled = _pooled(asked, len(mined))
    chosen = mine.negatives(index, texts, mined, pooled, seed)
    groups = _groups(mined, chosen)
    pairs = mine.counts(mined, chosen)
    say(f"pairs: {json.dumps(pairs)}")
    trained = train.train(
        asked, passages, groups, seed, epochs=epochs, max_seconds=max_seconds, say=say
    )
    clock["training"] = trained.seconds
    folder = settings.reader_folder
    (passage_graph, pair_graph), kind, agreement = _export(
        train, trained.model, asked, passages, groups
    )
    write_atomic(folder / PASSAGE_GRAPH, passage_graph)
    write_atomic(folder / GRAPH, pair_graph)
    sha = hashlib.sha256(passage_graph + pair_graph).hexdigest()
    kept = _keep_projections(folder, sha, texts, passages)
    say(f"passages projected and kept: {json.dumps(kept)}")
    clock["total"] = time.perf_counter() - started
    built = ReaderManifest(
        recipe=RECIPE,
        encoder=encoder.folder.name,
        seed=seed,
        seconds={k: round(v, 1) for k, v in clock.items()},
        pairs=pairs,
        held_out=trained.held_out,
        curve=trained.curve,
        graph=kind,
        agreement=agreement,
        sha256=sha,
        versions=_versions(),
    )
    write_atomic(folder / MANIFEST, json.dumps(asdict(built), indent=2) + "\n")  # last: done
    return built


def written_questions(
    settings: Settings, questions: int, seed: int, say: Callable[[str], None]
) -> tuple[mine.Papers, OnnxEmbedder, list[str], list[mine.Mined]]:
    """The published index, the int8 encoder, every passage's reader text, and up to
    `questions` questions written from the passages: what every reader recipe trains from."""
    index = mine.Papers.of(settings.index.index_dir)
    encoder = reader_encoder(settings)
    encoder.ensure_built()
    texts = mine.passages(index)
    mined = mine.write_questions(index, texts, questions, seed)
    say(f"{len(mined)} questions written from {len(texts)} passages")
    return index, encoder, texts, mined


def _keep_projections(folder: Path, sha: str, texts: list[str], passages) -> dict[str, int]:
    """Every indexed passage's projections into the store, from the token vectors in hand."""
    row = {text: i for i, text in enumerate(texts)}
    store = open_store(folder, sha)
    try:
        return store.keep(
            texts,
            lambda chunk: [passages.get(row[t]) for t in chunk],
            Projector(folder / PASSAGE_GRAPH),
        )
    finally:
        store.close()


def _pooled(asked, count: int) -> np.ndarray:
    """Each written question's mean token vector, normalised: its embedding, for dense negatives."""
    vectors = np.zeros((count, asked.vectors.shape[1]), np.float32)
    for i in range(count):
        vectors[i] = asked.get(i)[1].astype(np.float32).mean(axis=0)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-9)


def _groups(mined: list[mine.Mined], chosen: list[dict[str, int]]) -> np.ndarray:
    """Rows: the answering passage, then the negatives in mine.NEGATIVE_SLOTS order."""
    groups = np.full((len(mined), 5), -1, dtype=np.int64)
    for g, (m, picked) in enumerate(zip(mined, chosen, strict=True)):
        groups[g, 0] = m.passage
        for s, name in enumerate(mine.NEGATIVE_SLOTS, 1):
            groups[g, s] = picked.get(name, -1)
    return groups


def _export(train, model, asked, passages, groups) -> tuple[tuple[bytes, bytes], str, dict]:
    """The graphs to publish: int8 if the scores they give through kept (int8) projections agree
    with the trained head, else fp32."""
    import onnxruntime

    sample = [(g, [int(p) for p in groups[g] if p >= 0]) for g in range(min(64, len(groups)))]
    pairs = [(g, p) for g, rows in sample for p in rows]
    expected = train.torch_logits(
        model,
        train.batch_inputs([asked.get(g) for g, _ in pairs], [passages.get(p) for _, p in pairs]),
    )
    with tempfile.TemporaryDirectory(prefix="clerk-reader-") as tmp:
        found = {}
        for name in ("fp32", "int8"):
            passage_path, pair_path = Path(tmp) / f"passage-{name}.onnx", Path(tmp) / f"{name}.onnx"
            if name == "fp32":
                train.export(model, passage_path, pair_path)
            else:
                quantize_int8(Path(tmp) / "passage-fp32.onnx", passage_path)
                quantize_int8(Path(tmp) / "fp32.onnx", pair_path)
            projector = Projector(passage_path)
            session = onnxruntime.InferenceSession(
                str(pair_path), providers=["CPUExecutionProvider"]
            )
            logits = np.concatenate(
                [
                    session.run(None, pair_inputs(asked.get(g), projector.project(
                        [passages.get(p) for p in rows])))[0]
                    for g, rows in sample
                ]
            )  # fmt: skip
            found[name] = ((passage_path.read_bytes(), pair_path.read_bytes()),
                           float(np.corrcoef(logits, expected)[0, 1]),
                           float(np.abs(logits - expected).max()))  # fmt: skip
    kind = "int8" if found["int8"][1] >= AGREEMENT else "fp32"
    graphs, correlation, gap = found[kind]
    return graphs, kind, {"correlation": round(correlation, 5), "max_abs_logit_gap": round(gap, 4),
                          "int8_correlation": round(found["int8"][1], 5)}  # fmt: skip
