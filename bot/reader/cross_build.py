"""`clerk reader build --recipe cross-encoder`: mine pairs from the published index, fine-tune
MiniLM on them (bot.reader.cross_train), export it, publish it into the reader folder.

Seeded and reproducible from the same index and step count. Imports torch; serving never imports
this module.
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
from bot.reader.artifact import CROSS_GRAPH, CROSS_RECIPE, MANIFEST, ReaderManifest
from bot.reader.build import AGREEMENT, _groups, written_questions
from bot.reader.cross import chances, load_tokenizer
from bot.reader.written import NEGATIVES, WrittenGroup, written_groups
from bot.settings import Settings
from indexer.embed import resolve_model_path
from indexer.files import write_atomic
from indexer.onnx_encoder import _versions, quantize_int8

STEPS = 2200  # about 1.7 passes over 2,600 mined questions; some 40 minutes on two cores


def build_cross(
    settings: Settings,
    questions: int = 5000,
    steps: int = STEPS,
    max_seconds: float = 3600.0,
    seed: int = 13,
    say: Callable[[str], None] = print,
    written: tuple[Path, ...] = (),
) -> ReaderManifest:
    """Mine, fine-tune, export and publish the cross-encoder into settings.reader_folder;
    questions people wrote (`written`, JSONL as eval/) join the mined ones as groups."""
    from bot.reader import cross_train

    clock: dict[str, float] = {}
    started = time.perf_counter()
    model_dir = resolve_model_path(settings.index.model)
    index, encoder, texts, mined = written_questions(settings, questions, seed, say)
    asked = [m.question for m in mined]
    chosen = mine.negatives(index, texts, mined, encoder.embed(asked), seed)
    people = written_groups(settings, index.contents, list(written), seed, say) if written else []
    groups = np.vstack([
        np.hstack([_groups(mined, chosen), np.ones((len(mined), 1), np.int64)]),
        np.array([_written_row(w) for w in people], np.int64).reshape(-1, 6),
    ])  # fmt: skip
    asked += [w.question for w in people]
    twins = [m.twin for m in mined] + [w.twin or "" for w in people]
    pairs = {**mine.counts(mined, chosen), **_written_counts(people)}
    say(f"pairs: {json.dumps(pairs)}")
    clock["mining"] = time.perf_counter() - started
    tokenizer = load_tokenizer(model_dir)
    trained = cross_train.train(
        model_dir, tokenizer, asked, twins, texts, groups, seed, steps, max_seconds, say=say
    )
    clock["training"] = trained.seconds
    sample = [(asked[g], texts[int(r)]) for g in range(min(16, len(groups)))
              for r in groups[g, :5] if r >= 0]  # fmt: skip
    expected = cross_train.torch_logits(trained.model, tokenizer, sample)
    graph, kind, agreement = _export(cross_train, trained.model, tokenizer, sample, expected)
    folder = settings.reader_folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)  # no half-replaced reader is ever read as built
    write_atomic(folder / CROSS_GRAPH, graph)
    clock["total"] = time.perf_counter() - started
    built = ReaderManifest(
        recipe=CROSS_RECIPE,
        encoder=encoder.folder.name,
        seed=seed,
        seconds={k: round(v, 1) for k, v in clock.items()},
        pairs=pairs,
        held_out={**trained.held_out, "steps": trained.steps},
        curve=trained.curve,
        graph=kind,
        agreement=agreement,
        sha256=hashlib.sha256(graph).hexdigest(),
        versions=_versions(),
    )
    write_atomic(folder / MANIFEST, json.dumps(asdict(built), indent=2) + "\n")  # last: done
    return built


def _written_row(group: WrittenGroup) -> list[int]:
    """A written question's group as the mined ones are laid out, and whether it has a twin."""
    negatives = list(group.negatives) + [-1] * (NEGATIVES - len(group.negatives))
    return [group.passage, *negatives, 1 if group.twin else -1]


def _written_counts(people: list[WrittenGroup]) -> dict[str, int]:
    if not people:
        return {}
    return {
        "written_questions": len(people),
        "written_negatives": sum(len(w.negatives) for w in people),
        "written_twins": sum(1 for w in people if w.twin),
    }


def _export(cross_train, model, tokenizer, sample, expected) -> tuple[bytes, str, dict]:
    """The graph to publish: int8 if its scores agree with the trained model's, else fp32."""
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="clerk-cross-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        cross_train.export(model, tokenizer, fp32)
        quantize_int8(fp32, int8)
        found = {}
        for name, path in (("fp32", fp32), ("int8", int8)):
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = np.concatenate([
                np.log(c / (1 - c).clip(1e-12)).clip(-30, 30)
                for c in (chances(session, tokenizer, q, [p]) for q, p in sample)
            ])  # fmt: skip
            found[name] = (path.read_bytes(), float(np.corrcoef(got, expected)[0, 1]),
                           float(np.abs(got - expected).max()))  # fmt: skip
    kind = "int8" if found["int8"][1] >= AGREEMENT else "fp32"
    graph, correlation, gap = found[kind]
    return graph, kind, {"correlation": round(correlation, 5), "max_abs_logit_gap": round(gap, 4),
                         "int8_correlation": round(found["int8"][1], 5)}  # fmt: skip
