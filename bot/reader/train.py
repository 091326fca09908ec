"""Training the reader's head on mined pairs, and exporting it as an ONNX graph. Needs torch;
only `clerk reader build` imports this module.

The reader is late interaction over the int8 encoder's token vectors: the question's and the
passage's tokens are projected into a shared space; each question token finds its best match in
the passage (and whether its word piece is there verbatim), a small network scores each question
token from that, and a learned weight per token (from the token itself: a year or a place counts
more than "the") pools them, with a soft minimum so that one unmet constraint sinks the passage.
A probe from the whole question looks for the asked kind of answer among the passage's tokens.
The encoder stays frozen, so its token vectors are computed once and training is cheap.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from bot.reader.score import PAIR_INPUTS, question_marks

INPUTS = ("q_vectors", "q_mask", "q_exact", "p_vectors", "p_mask")  # the whole head's, in training

log = logging.getLogger(__name__)


class LateReader(nn.Module):
    """(question tokens, passage tokens) -> logit that the passage states the answer."""

    def __init__(self, dim: int = 384, space: int = 128):
        super().__init__()
        self.key = nn.Linear(dim, space)
        self.importance = nn.Linear(dim, 1)
        self.probe = nn.Linear(dim, 64)
        self.kind = nn.Linear(dim, 64)
        self.token = nn.Sequential(nn.Linear(2 * space + 2, 64), nn.GELU(), nn.Linear(64, 1))
        self.out = nn.Linear(4, 1)

    def forward(self, q_vectors, q_mask, q_exact, p_vectors, p_mask):
        return self.pair(q_vectors, q_mask, q_exact, *self.project(p_vectors), p_mask)

    def project(self, p_vectors):
        """A passage's tokens in the matching space and the answer-kind space: what depends on
        the passage alone, so it is computed once per passage and kept (bot.reader.passages)."""
        return F.normalize(self.key(p_vectors), dim=-1), F.normalize(self.kind(p_vectors), dim=-1)

    def pair(self, q_vectors, q_mask, q_exact, p_keys, p_kinds, p_mask):
        qm, pm = q_mask > 0.5, p_mask > 0.5
        qk = F.normalize(self.key(q_vectors), dim=-1)
        sim = (qk @ p_keys.transpose(1, 2)).masked_fill(~pm[:, None, :], -1e4)
        best = sim.max(dim=-1).values
        context = torch.softmax(sim * 20.0, dim=-1) @ p_keys
        features = torch.cat([qk, context, best[..., None], q_exact[..., None]], dim=-1)
        per_token = self.token(features).squeeze(-1)
        weight = torch.softmax(self.importance(q_vectors).squeeze(-1).masked_fill(~qm, -1e4), -1)
        mean = (weight * per_token).sum(-1)
        soft_min = -torch.logsumexp(-4.0 * per_token + torch.log(weight + 1e-9), dim=-1) / 4.0
        counted = q_mask[..., None]
        pooled = (q_vectors * counted).sum(1) / counted.sum(1).clamp(min=1.0)
        probe = F.normalize(self.probe(pooled), dim=-1)
        kind = (p_kinds @ probe[..., None]).squeeze(-1).masked_fill(~pm, -1e4).max(-1).values
        matched = (weight * best).sum(-1)
        return self.out(torch.stack([mean, soft_min, kind, matched], dim=-1)).squeeze(-1)


class _Projection(nn.Module):
    """The passage half of the head, exported as its own graph."""

    def __init__(self, reader: LateReader):
        super().__init__()
        self.reader = reader

    def forward(self, p_vectors):
        return self.reader.project(p_vectors)


class _Pair(nn.Module):
    """The question-meets-passage half of the head, over kept passage projections."""

    def __init__(self, reader: LateReader):
        super().__init__()
        self.reader = reader

    def forward(self, q_vectors, q_mask, q_exact, p_keys, p_kinds, p_mask):
        return self.reader.pair(q_vectors, q_mask, q_exact, p_keys, p_kinds, p_mask)


@dataclass
class Tokens:
    """Ragged token vectors of many texts, stored end to end."""

    ids: np.ndarray  # (tokens,) int
    vectors: np.ndarray  # (tokens, dim) float16
    offsets: np.ndarray  # (texts + 1,)

    @classmethod
    def of(cls, encoded: list[tuple[np.ndarray, np.ndarray]]) -> Tokens:
        sizes = np.array([len(ids) for ids, _ in encoded])
        return cls(
            ids=np.concatenate([ids for ids, _ in encoded]),
            vectors=np.concatenate([v for _, v in encoded]),
            offsets=np.concatenate([[0], np.cumsum(sizes)]),
        )

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets[i], self.offsets[i + 1]
        return self.ids[a:b], self.vectors[a:b]


@dataclass(frozen=True)
class Trained:
    model: LateReader
    steps: int
    seconds: float
    curve: list[dict[str, float]]  # the loss as it went, every few steps
    held_out: dict[str, float]


def train(
    questions: Tokens,
    passages: Tokens,
    groups: np.ndarray,
    seed: int,
    epochs: int = 4,
    groups_per_step: int = 16,
    max_seconds: float = 1800.0,
    say: Callable[[str], None] = print,
) -> Trained:
    """Fit the head on groups: row g is question g with its passages in slots 0-4 (slot 0
    answers; -1 where no negative was found) and its near-miss twin (question g + G) against the
    answering passage in slot 5."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    order = list(range(len(groups)))
    rng.shuffle(order)
    held = order[: max(1, len(order) // 20)]
    fit_on = order[len(held) :]
    model = LateReader(passages.vectors.shape[1])
    steps_total = max(1, epochs * math.ceil(len(fit_on) / groups_per_step))
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / steps_total)
    )
    curve = Curve(steps_total)
    started, step = time.perf_counter(), 0
    for epoch in range(epochs):
        rng.shuffle(fit_on)
        for start in range(0, len(fit_on), groups_per_step):
            chosen = fit_on[start : start + groups_per_step]
            model.train()
            step += 1
            losses = descend(
                _losses(model, questions, passages, groups, chosen), optimiser, schedule
            )
            point = curve.add(step, losses, epoch=epoch)
            if point:
                say(f"step {step}/{steps_total} epoch {epoch}: {point}")
            if time.perf_counter() - started > max_seconds:
                say(f"stopping at the time box ({max_seconds:.0f} s)")
                break
        else:
            held_out = evaluate(model, questions, passages, groups, held)
            say(f"epoch {epoch} held-out mined groups: {held_out}")
            continue
        break
    held_out = evaluate(model, questions, passages, groups, held)
    return Trained(
        model.eval(), step, round(time.perf_counter() - started, 1), curve.points, held_out
    )


class Curve:
    """The loss as training goes, averaged over every few steps (about ten points in all)."""

    def __init__(self, steps: int):
        self.every = max(1, min(50, steps // 10))
        self.points: list[dict[str, float]] = []
        self._window: list[dict[str, float]] = []

    def add(self, step: int, losses: dict[str, float], **extra: int) -> dict[str, float] | None:
        """Record one step's losses; the new average when a point is due, else None."""
        self._window.append(losses)
        if step % self.every:
            return None
        point = {k: round(float(np.mean([w[k] for w in self._window])), 4) for k in losses}
        self.points.append({"step": step, **extra, **point})
        self._window = []
        return point


def descend(parts: dict, optimiser, schedule) -> dict[str, float]:
    """One optimiser step on the sum of the loss parts; the parts' values."""
    loss = sum(parts.values())
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    schedule.step()
    return {k: float(v.detach()) for k, v in parts.items()}


def group_pairs(groups: np.ndarray, chosen: list[int]):
    """(question index, passage row, label, group position, slot) for the chosen groups; the
    near-miss twin of question g is question g + len(groups), unless a sixth column says the
    group has none (-1)."""
    total = len(groups)
    for position, g in enumerate(chosen):
        for slot in range(5):
            row = int(groups[g, slot])
            if row >= 0:
                yield g, row, float(slot == 0), position, slot
        if groups.shape[1] < 6 or groups[g, 5] >= 0:
            yield g + total, int(groups[g, 0]), 0.0, position, 5


def group_losses(logits, pairs: list, count: int) -> dict:
    """Pick the answering passage from its group, rank it over the twin, and each pair's own
    yes or no: the three parts of every reader's loss."""
    labels = torch.tensor([label for _, _, label, _, _ in pairs])
    table = torch.full((count, 6), -1e4)
    index = torch.tensor([[pos, slot] for *_, pos, slot in pairs])
    table = table.index_put((index[:, 0], index[:, 1]), logits)
    zero = torch.zeros(count, dtype=torch.long)
    return {
        "listwise": F.cross_entropy(table[:, :5], zero),
        "near_miss": F.cross_entropy(table[:, [0, 5]], zero),
        "pointwise": F.binary_cross_entropy_with_logits(logits, labels),
    }


def held_out_counts(pairs: list, logits: np.ndarray, count: int) -> tuple[int, int]:
    """Of `count` groups: how many rank the answering passage first, and the twin below it."""
    table = np.full((count, 6), -1e4)
    for (_, _, _, pos, slot), value in zip(pairs, logits, strict=True):
        table[pos, slot] = value
    first = int((table[:, 0] >= table[:, 1:5].max(axis=1)).sum())
    return first, int((table[:, 0] > table[:, 5]).sum())  # a group with no twin counts as below


def held_out_figures(groups: int, first: int, twin_below: int) -> dict[str, float]:
    return {
        "groups": groups,
        "answering_first": round(first / max(1, groups), 3),
        "near_miss_below": round(twin_below / max(1, groups), 3),
    }


def _losses(model, questions: Tokens, passages: Tokens, groups: np.ndarray, chosen: list[int]):
    pairs = list(group_pairs(groups, chosen))
    feed = batch_inputs(
        [questions.get(q) for q, *_ in pairs], [passages.get(p) for _, p, *_ in pairs]
    )
    logits = model(*(torch.from_numpy(feed[name]) for name in INPUTS))
    return group_losses(logits, pairs, len(chosen))


@torch.no_grad()
def evaluate(model, questions: Tokens, passages: Tokens, groups: np.ndarray, held: list[int]):
    """On held-out mined groups: answering passage first; near-miss scored below the original."""
    model.eval()
    first = twin_below = 0
    for start in range(0, len(held), 32):
        chosen = held[start : start + 32]
        parts = list(group_pairs(groups, chosen))
        feed = batch_inputs(
            [questions.get(q) for q, *_ in parts], [passages.get(p) for _, p, *_ in parts]
        )
        logits = model(*(torch.from_numpy(feed[name]) for name in INPUTS)).numpy()
        found = held_out_counts(parts, logits, len(chosen))
        first, twin_below = first + found[0], twin_below + found[1]
    return held_out_figures(len(held), first, twin_below)


def batch_inputs(
    questions: list[tuple[np.ndarray, np.ndarray]], passages: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Padded float32 inputs of the whole head for pairs (question i with passage i)."""
    rows, dim = len(questions), questions[0][1].shape[1]
    nq = max(len(ids) for ids, _ in questions)
    npass = max(len(ids) for ids, _ in passages)
    feed = {
        "q_vectors": np.zeros((rows, nq, dim), np.float32),
        "q_mask": np.zeros((rows, nq), np.float32),
        "q_exact": np.zeros((rows, nq), np.float32),
        "p_vectors": np.zeros((rows, npass, dim), np.float32),
        "p_mask": np.zeros((rows, npass), np.float32),
    }
    for i, ((qids, qvec), (pids, pvec)) in enumerate(zip(questions, passages, strict=True)):
        feed["q_vectors"][i, : len(qids)] = qvec
        feed["q_mask"][i, : len(qids)], feed["q_exact"][i, : len(qids)] = question_marks(qids, pids)
        feed["p_vectors"][i, : len(pids)] = pvec
        feed["p_mask"][i, : len(pids)] = 1.0
    return feed


def export(model: LateReader, passage_target: Path, pair_target: Path, dim: int = 384) -> None:
    """The head as two ONNX graphs with batch and token axes free: the passage half (token
    vectors -> projections) and the pair half (question tokens against projections)."""
    model = model.eval()
    space, kinds = model.key.out_features, model.kind.out_features
    example = batch_inputs(
        [(np.array([101, 2000, 102]), np.ones((3, dim), np.float16))] * 2,
        [(np.array([101, 2000, 2001, 102]), np.ones((4, dim), np.float16))] * 2,
    )
    pair_example = {
        **{k: example[k] for k in ("q_vectors", "q_mask", "q_exact", "p_mask")},
        "p_keys": np.full((2, 4, space), 0.1, np.float32),
        "p_kinds": np.full((2, 4, kinds), 0.1, np.float32),
    }
    passage_axes = {"p_vectors": {0: "passages", 1: "p_tokens"}}
    passage_axes |= {name: {0: "passages", 1: "p_tokens"} for name in ("p_keys", "p_kinds")}
    pair_axes = {
        "q_vectors": {0: "pairs", 1: "q_tokens"},
        "q_mask": {0: "pairs", 1: "q_tokens"},
        "q_exact": {0: "pairs", 1: "q_tokens"},
        "p_keys": {0: "pairs", 1: "p_tokens"},
        "p_kinds": {0: "pairs", 1: "p_tokens"},
        "p_mask": {0: "pairs", 1: "p_tokens"},
        "logit": {0: "pairs"},
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Projection(model),
            (torch.from_numpy(example["p_vectors"]),),
            str(passage_target),
            input_names=["p_vectors"],
            output_names=["p_keys", "p_kinds"],
            dynamic_axes=passage_axes,
            opset_version=17,
            dynamo=False,
        )
        torch.onnx.export(
            _Pair(model),
            tuple(torch.from_numpy(pair_example[name]) for name in PAIR_INPUTS),
            str(pair_target),
            input_names=list(PAIR_INPUTS),
            output_names=["logit"],
            dynamic_axes=pair_axes,
            opset_version=17,
            dynamo=False,
        )


def torch_logits(model: LateReader, feed: dict[str, np.ndarray]) -> np.ndarray:
    """The trained head's logits in torch, to check the exported graphs against."""
    with torch.no_grad():
        return model(*(torch.from_numpy(feed[name]) for name in INPUTS)).numpy()
