"""A small combiner: the chance that a passage answers a question, from its evidence.

Logistic regression over `bot.engine.features.FEATURES`, fitted by `clerk eval --fit` on the dev
set only (never the frozen test set), with its thresholds chosen by cross-validation on the same
dev questions: the answer threshold is the lowest whose wrong answers stay within the risk
budget (`RISK_BUDGET` of all questions). The result is a small JSON artifact, `combiner.json` beside
this module (`combiner-reader.json` or `combiner-cross-encoder.json` when fitted with that reader's
features too; `-tuned-encoder` when fitted on an index a tuned encoder built), so what decides is
plain to read and rebuilt by one command.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bot.engine.features import FEATURES
from bot.reader.artifact import CROSS_RECIPE, RECIPE

_NAMES = {None: "combiner", RECIPE: "combiner-reader", CROSS_RECIPE: "combiner-cross-encoder"}


def fitted_path(recipe: str | None = None, tuned: bool = False) -> Path:
    """The combiner fitted with a reader recipe's features too (None: no reader), for the bundled
    encoder or for one `clerk encoder tune` fine-tuned, whose cosines read differently."""
    return Path(__file__).with_name(f"{_NAMES[recipe]}{'-tuned-encoder' if tuned else ''}.json")


ARTIFACT = fitted_path()
# A wrong answer misleads a councillor; a false decline costs an officer some time. Clerk may
# answer wrongly at most this share of all questions (the product's target), and otherwise
# answers as much as it can.
RISK_BUDGET = 0.03
L2 = 1.0


@dataclass(frozen=True)
class Combiner:
    """Weights per feature, a bias, and the two decision thresholds."""

    weights: dict[str, float]
    bias: float
    answer_threshold: float  # answer when the best passage's chance reaches this
    discussed_threshold: float  # below it, and not answered: the topic is not in the papers
    fitted_on: str = ""  # which question files, for the record

    def chance(self, values: dict[str, float]) -> float:
        z = self.bias + sum(weight * values[name] for name, weight in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def save(self, path: Path = ARTIFACT) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = ARTIFACT) -> Combiner:
        data = json.loads(path.read_text(encoding="utf-8"))
        missing = set(FEATURES) - set(data["weights"])
        if missing:
            raise ValueError(f"{path} lacks weights for {sorted(missing)}: run `clerk eval --fit`")
        return cls(**data)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """Weights and bias by Newton's method on the L2-penalised log-loss (bias not penalised)."""
    rows, cols = x.shape
    design = np.hstack([x, np.ones((rows, 1))])
    theta = np.zeros(cols + 1)
    penalty = np.full(cols + 1, l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ theta, -30, 30)))
        gradient = design.T @ (p - y) + penalty * theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1])


def best_answer_threshold(outcomes: Sequence[tuple[float, bool]], total: int) -> float:
    """The lowest threshold on the best passage's chance that keeps wrong answers within the
    risk budget (RISK_BUDGET of all `total` questions), so Clerk answers as much as it can
    without misleading more often than that.

    Each outcome is (chance of the passage Clerk would answer from, whether answering from it
    would be fully right); cuts fall midway between neighbouring chances.
    """
    chances = sorted({c for c, _ in outcomes})
    cuts = [(a + b) / 2 for a, b in zip(chances, chances[1:], strict=False)] + [1.0]
    for cut in cuts:  # ascending: the first that fits the budget answers the most
        wrong = sum(1 for c, right in outcomes if c >= cut and not right)
        if wrong <= RISK_BUDGET * total:
            return cut
    return 1.0


def best_separation(on_topic: Sequence[float], off_topic: Sequence[float]) -> float:
    """The cut that best tells near-misses (the topic is there) from off-topic questions."""
    values = sorted(set(on_topic) | set(off_topic))
    cuts = [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)] or values or [0.5]

    def balanced(cut: float) -> float:
        near = sum(v >= cut for v in on_topic) / max(1, len(on_topic))
        off = sum(v < cut for v in off_topic) / max(1, len(off_topic))
        return near + off

    return max(cuts, key=balanced)
