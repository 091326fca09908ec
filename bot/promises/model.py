"""The promise classifier at use: word and word-pair weights learnt from labelled sentences.

A sentence's words and adjacent word pairs, weighted tf-idf (sublinear counts, unit length) as
the trainer weighted them, against a logistic regression's weights: the chance that the
sentence promises information later. The weights are a small JSON artifact beside this module
(`model.json`), rebuilt by `python -m bot.promises.train`; using them needs no library beyond
the standard one.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ARTIFACT = Path(__file__).with_name("model.json")
# Words, "I" included, and the marks that turn a line into an action note or a question.
_TOKEN = re.compile(r"\w+|[?:]")


def grams(sentence: str) -> list[str]:
    """The words and adjacent word pairs the classifier weighs (the trainer uses this too)."""
    words = _TOKEN.findall(sentence.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


@dataclass(frozen=True)
class PromiseModel:
    """Per word or pair: (idf, weight); the intercept; the chance above which it is a promise."""

    terms: dict[str, tuple[float, float]]
    intercept: float
    threshold: float
    trained_on: str = ""
    cross_validated: dict | None = None  # precision and recall on the dev sets, for the record

    def chance(self, sentence: str) -> float:
        counts = Counter(g for g in grams(sentence) if g in self.terms)
        values = {g: (1.0 + math.log(n)) * self.terms[g][0] for g, n in counts.items()}
        length = math.sqrt(sum(v * v for v in values.values())) or 1.0
        z = self.intercept + sum(v * self.terms[g][1] for g, v in values.items()) / length
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def is_promise(self, sentence: str) -> bool:
        return self.chance(sentence) >= self.threshold

    def save(self, path: Path = ARTIFACT) -> None:
        data = {
            "threshold": self.threshold,
            "intercept": self.intercept,
            "trained_on": self.trained_on,
            "cross_validated": self.cross_validated,
            "terms": {g: [round(i, 5), round(w, 5)] for g, (i, w) in sorted(self.terms.items())},
        }
        path.write_text(json.dumps(data, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = ARTIFACT) -> PromiseModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        terms = {g: (float(i), float(w)) for g, (i, w) in data["terms"].items()}
        return cls(
            terms,
            float(data["intercept"]),
            float(data["threshold"]),
            data.get("trained_on", ""),
            data.get("cross_validated"),
        )


@lru_cache(maxsize=1)
def default_model() -> PromiseModel:
    return PromiseModel.load()
