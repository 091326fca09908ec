"""`clerk encoder tune`: the retrieval model fine-tuned on questions people wrote about the papers.

all-MiniLM-L6-v2 learnt from web pairs; a councillor's "what's our government money for new school
places" is far from a budget table's words. Each answerable question people wrote (`eval/train/`,
never the dev or the frozen test set) is paired with the passage of the published index that
states its fact and one passage ranked high that does not (`bot.reader.written`), and the whole
model is fine-tuned to find its passage among the batch's (a contrastive loss with in-batch
negatives). Questions mined from the papers' sentences were tried beside them and did not help
(README). Seeded. The model is written to `<CLERK_HOME>/models/tuned-<digest>` once complete,
a new folder per build, so an index is never searched with another build's vectors: point
CLERK_MODEL at it and index again. Imports torch; serving never imports this module.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import ClerkError
from bot.reader.mine import Papers
from bot.reader.written import WrittenGroup, written_groups
from bot.settings import Settings
from indexer.embed import TUNED_MANIFEST, resolve_model_path
from indexer.onnx_encoder import _versions
from indexer.settings import BUNDLED_MODEL

RECIPE = "contrastive-written-v1"
EPOCHS = 3
BATCH = 32
LEARNING_RATE = 2e-5
SCALE = 20.0  # cosines times this are the logits: the usual temperature for this loss
WARM_UP = 0.1  # share of steps the learning rate climbs over, then falls to zero


@dataclass(frozen=True)
class TunedModel:
    """What `tuned.json` in the model folder records."""

    recipe: str
    base: str
    seed: int
    epochs: int
    steps: int
    questions: int
    written: list[str]
    losses: list[float]  # mean loss of each tenth of training
    seconds: float
    sha256: str
    versions: dict[str, str]


def tune(
    settings: Settings,
    written: tuple[Path, ...],
    epochs: int = EPOCHS,
    seed: int = 13,
    say: Callable[[str], None] = print,
) -> Path:
    """Fine-tune the bundled model on the written questions; the new model's folder."""
    started = time.perf_counter()
    if not written:
        raise ClerkError("no written questions to tune on (CLERK_READER_WRITTEN matched nothing)")
    index = Papers.of(settings.index.index_dir)
    groups = written_groups(settings, index.contents, list(written), seed, say)
    if len(groups) < 2:
        raise ClerkError(f"{len(groups)} written question(s) found their passage: too few to tune")
    passages = [f"{c.heading}\n{c.text}" for c in index.contents.chunks]  # as the index embeds
    model, losses, steps = _train(groups, passages, epochs, seed, say)
    return _publish(settings.home / "models", model, TunedModel(
        recipe=RECIPE, base=BUNDLED_MODEL, seed=seed, epochs=epochs, steps=steps,
        questions=len(groups), written=[str(p) for p in written], losses=losses,
        seconds=round(time.perf_counter() - started, 1), sha256="", versions=_versions(),
    ))  # fmt: skip


def _train(groups: list[WrittenGroup], passages: list[str], epochs: int, seed: int, say):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(seed)
    model = SentenceTransformer(str(resolve_model_path(BUNDLED_MODEL)), device="cpu")
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    order = _order(len(groups), epochs, seed)
    steps = len(order) // BATCH
    warm = max(1, int(steps * WARM_UP))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: (s + 1) / warm if s < warm else (steps - s) / max(1, steps - warm)
    )

    def encode(texts: list[str]):
        features = model.preprocess(texts)
        return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

    losses: list[float] = []
    for step in range(steps):
        batch = _one_per_passage([groups[i] for i in order[step * BATCH : (step + 1) * BATCH]])
        answering = {g.passage for g in batch}
        hard = [g.negatives[0] for g in batch if g.negatives]
        negatives = [row for row in hard if row not in answering]
        scores = (
            encode([g.question for g in batch])
            @ encode([passages[g.passage] for g in batch] + [passages[r] for r in negatives]).T
        )
        loss = torch.nn.functional.cross_entropy(scores * SCALE, torch.arange(len(batch)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.item()))
        if step % 10 == 0 or step == steps - 1:
            say(f"step {step + 1} of {steps}: loss {losses[-1]:.3f}")
    model.eval()
    tenth = max(1, len(losses) // 10)
    curve = [round(sum(losses[i : i + tenth]) / len(losses[i : i + tenth]), 4)
             for i in range(0, len(losses), tenth)]  # fmt: skip
    return model, curve, steps


def _order(count: int, epochs: int, seed: int) -> list[int]:
    """Each epoch a fresh shuffle of every question."""
    rng, order = random.Random(seed), []
    for _ in range(epochs):
        shuffled = list(range(count))
        rng.shuffle(shuffled)
        order += shuffled
    return order


def _one_per_passage(batch: list[WrittenGroup]) -> list[WrittenGroup]:
    """Two questions on one passage in a batch would each be taught the other's is wrong."""
    seen: set[int] = set()
    kept = []
    for group in batch:
        if group.passage not in seen:
            seen.add(group.passage)
            kept.append(group)
    return kept


def _publish(models: Path, model, record: TunedModel) -> Path:
    """Saved into a scratch folder, named by its weights' digest, then renamed into place whole."""
    models.mkdir(parents=True, exist_ok=True)
    scratch = models / f".tuning-{time.time_ns()}"
    try:
        model.save(str(scratch))
        weights = next(scratch.glob("*.safetensors"), None) or next(scratch.glob("*.bin"))
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        record = TunedModel(**{**asdict(record), "sha256": digest})
        (scratch / TUNED_MANIFEST).write_text(json.dumps(asdict(record), indent=2) + "\n")
        target = models / f"tuned-{digest[:12]}"
        if target.exists():  # the same weights again: keep the folder an index may be using
            return target
        scratch.rename(target)
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
