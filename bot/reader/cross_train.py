"""Training the cross-encoder reader: MiniLM reading question and passage together.

The whole of all-MiniLM-L6-v2 is fine-tuned with a one-number head on its mean-pooled token
vectors (the pooling it was trained with; a head on [CLS] starts from nothing and, tried here
earlier, never learned). Pairs are the reader's mined groups (`bot.reader.mine`): per written
question its answering passage, up to four passages that do not answer, and its near-miss twin
against the answering passage. Each step's loss is the same three parts as the late-interaction
reader's: pick the answering passage from its group, rank it over the twin, and each pair's own
yes or no. Seeded; the number of steps, not the clock, ends training, so the same index and
seed give the same weights (a time box only stops a run that would overrun, and says so).
Imports torch; serving never imports this module.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bot.reader.cross import MAX_TOKENS, pair_encodings
from bot.reader.train import (
    Curve,
    descend,
    group_losses,
    group_pairs,
    held_out_counts,
    held_out_figures,
)

GROUPS_PER_STEP = 2  # 12 pairs a step: what two cores train at about a second a step
LEARNING_RATE = 3e-5
NAMES = ("input_ids", "attention_mask", "token_type_ids")


class CrossReader(nn.Module):
    """MiniLM and a linear head on its mean-pooled token vectors: one logit per pair."""

    def __init__(self, model_dir: Path):
        super().__init__()
        from transformers import AutoModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" in the build's log
        self.encoder = AutoModel.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager"
        )
        self.head = nn.Linear(self.encoder.config.hidden_size, 1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)


@dataclass
class Trained:
    model: CrossReader
    steps: int
    seconds: float
    curve: list[dict[str, float]]
    held_out: dict[str, float]


def train(
    model_dir: Path,
    tokenizer,
    questions: list[str],
    twins: list[str],
    texts: list[str],
    groups: np.ndarray,
    seed: int,
    steps: int,
    max_seconds: float,
    say: Callable[[str], None] = print,
) -> Trained:
    """Fine-tune on groups (row g: question g's passages in slots 0-4, slot 0 answering, -1
    where no negative was found; its twin goes against slot 0) for `steps` steps."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    asked = questions + twins  # group_pairs numbers question g's twin g + len(groups)
    order = list(range(len(groups)))
    rng.shuffle(order)
    held = order[: max(1, len(order) // 20)]
    fit_on = order[len(held) :]
    model = CrossReader(model_dir)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / 100) * max(0.1, 1 - s / max(1, steps))
    )
    curve = Curve(steps)
    started, step = time.perf_counter(), 0
    batches = _batches(fit_on, rng)
    while step < steps:
        model.train()
        step += 1
        losses = descend(
            _losses(model, tokenizer, asked, texts, groups, next(batches)), optimiser, schedule
        )
        point = curve.add(step, losses)
        if point:
            say(f"step {step}/{steps} ({time.perf_counter() - started:.0f} s): {point}")
        if time.perf_counter() - started > max_seconds:
            say(f"stopping at the time box ({max_seconds:.0f} s) after {step} of {steps} steps")
            break
    held_out = evaluate(model, tokenizer, asked, texts, groups, held)
    say(f"held-out mined groups: {held_out}")
    return Trained(
        model.eval(), step, round(time.perf_counter() - started, 1), curve.points, held_out
    )


def _batches(fit_on: list[int], rng: random.Random):
    """GROUPS_PER_STEP groups at a time, reshuffled every pass, for ever."""
    while True:
        rng.shuffle(fit_on)
        for start in range(0, len(fit_on) - GROUPS_PER_STEP + 1, GROUPS_PER_STEP):
            yield fit_on[start : start + GROUPS_PER_STEP]


def _logits(model, tokenizer, pairs: list[tuple[str, str]]) -> torch.Tensor:
    feed = pair_encodings(tokenizer, pairs)
    return model(*(torch.from_numpy(feed[name]) for name in NAMES))


def _read(model, tokenizer, asked: list[str], texts: list[str], pairs: list) -> torch.Tensor:
    """Logits for group pairs; `asked` is the questions, then their twins."""
    return _logits(model, tokenizer, [(asked[q], texts[row]) for q, row, *_ in pairs])


def _losses(model, tokenizer, asked, texts, groups, chosen):
    pairs = list(group_pairs(groups, chosen))
    return group_losses(_read(model, tokenizer, asked, texts, pairs), pairs, len(chosen))


@torch.no_grad()
def evaluate(model, tokenizer, asked, texts, groups, held: list[int]):
    """On held-out mined groups: answering passage first; near-miss scored below the original."""
    model.eval()
    first = twin_below = 0
    for start in range(0, len(held), 4):
        chosen = held[start : start + 4]
        pairs = list(group_pairs(groups, chosen))
        logits = _read(model, tokenizer, asked, texts, pairs).numpy()
        found = held_out_counts(pairs, logits, len(chosen))
        first, twin_below = first + found[0], twin_below + found[1]
    return held_out_figures(len(held), first, twin_below)


def export(model: CrossReader, tokenizer, target: Path) -> None:
    """The fine-tuned model as one fp32 ONNX graph, batch and token axes free."""
    feed = pair_encodings(tokenizer, [("How many?", "Twelve were."), ("Who?", "The Leader")])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
        torch.onnx.export(
            model.eval(),
            tuple(torch.from_numpy(feed[name]) for name in NAMES),
            str(target),
            input_names=list(NAMES),
            output_names=["logit"],
            dynamic_axes={**{n: {0: "pairs", 1: "tokens"} for n in NAMES}, "logit": {0: "pairs"}},
            opset_version=17,
            dynamo=False,
        )


@torch.no_grad()
def torch_logits(model: CrossReader, tokenizer, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The trained model's logits in torch, to check the exported graph against."""
    return _logits(model.eval(), tokenizer, pairs).numpy()


__all__ = ["MAX_TOKENS", "CrossReader", "Trained", "evaluate", "export", "torch_logits", "train"]
