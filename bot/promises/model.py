"""The promise classifier at use: word, word-pair and sentence-embedding weights.

A sentence's words and adjacent word pairs, weighted tf-idf (sublinear counts, unit length) as
the trainer weighted them, and its sentence vector from the bundled all-MiniLM-L6-v2 as Clerk's
int8 ONNX encoder gives it, against one logistic regression's weights: the chance that the
sentence promises information later. The words say what kind of sentence it is ("will be
provided", "ACTION:"); the vector adds what the words alone miss in sentences worded unlike any
seen. The weights are a small JSON artifact beside this module (`model.json`), rebuilt by
`python -m bot.promises.train`.

The vector is always the int8 encoder's (never torch's), whatever CLERK_ENCODER says for the
index: the weights were learnt from those vectors. Each sentence is encoded on its own, as in
training, because the int8 encoder scales its activations per batch, so a sentence's vector would
otherwise depend on its neighbours. Most sentences are settled by their words: when even the
largest push the vector gave any training sentence (`reach`) could not lift a sentence to the
threshold, it is not encoded at all.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from indexer.settings import BUNDLED_MODEL, IndexSettings

ARTIFACT = Path(__file__).with_name("model.json")
ENCODER_MODEL = BUNDLED_MODEL  # the sentence vectors the weights were learnt from
# Words, "I" included, and the marks that turn a line into an action note or a question.
_TOKEN = re.compile(r"\w+|[?:]")

SentenceVector = Callable[[str], Sequence[float]]  # one sentence's unit vector from the encoder


def grams(sentence: str) -> list[str]:
    """The words and adjacent word pairs the classifier weighs (the trainer uses this too)."""
    words = _TOKEN.findall(sentence.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


@dataclass(frozen=True)
class PromiseModel:
    """Per word or pair: (idf, weight); the intercept; the chance above which it is a promise;
    the weights on the sentence vector (empty: words only) and the most they moved any training
    sentence's log-odds, with a margin."""

    terms: dict[str, tuple[float, float]]
    intercept: float
    threshold: float
    trained_on: str = ""
    cross_validated: dict | None = None  # precision and recall on the dev sets, for the record
    embedding: tuple[float, ...] = ()
    reach: float = 0.0
    encoder: str = ""  # the encoder the embedding weights were learnt from (for the record)

    def word_score(self, sentence: str) -> float:
        """The log-odds from the intercept, words and pairs alone."""
        counts = Counter(g for g in grams(sentence) if g in self.terms)
        values = {g: (1.0 + math.log(n)) * self.terms[g][0] for g, n in counts.items()}
        length = math.sqrt(sum(v * v for v in values.values())) or 1.0
        return self.intercept + sum(v * self.terms[g][1] for g, v in values.items()) / length

    def chance(self, sentence: str, vector: Sequence[float] | None = None) -> float:
        """The chance the sentence promises; `vector` is its sentence vector (needed when the
        model has embedding weights)."""
        z = self.word_score(sentence)
        if self.embedding:
            if vector is None:
                raise ValueError("this promise model weighs the sentence vector: pass it")
            z += math.fsum(w * float(v) for w, v in zip(self.embedding, vector, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def is_promise(self, sentence: str, vector: SentenceVector | None = None) -> bool:
        """Whether the chance reaches the threshold; the sentence is encoded (by `vector`) only
        when its words leave the answer open."""
        if not self.embedding:
            return self.chance(sentence) >= self.threshold
        if self.word_score(sentence) + self.reach < _log_odds(self.threshold):
            return False
        if vector is None:
            raise ValueError("this promise model weighs the sentence vector: pass an encoder")
        return self.chance(sentence, vector(sentence)) >= self.threshold

    def save(self, path: Path = ARTIFACT) -> None:
        data = {
            "threshold": self.threshold,
            "intercept": self.intercept,
            "trained_on": self.trained_on,
            "cross_validated": self.cross_validated,
            "encoder": self.encoder,
            "reach": round(self.reach, 5),
            "embedding": [round(w, 6) for w in self.embedding],
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
            tuple(float(w) for w in data.get("embedding", ())),
            float(data.get("reach", 0.0)),
            data.get("encoder", ""),
        )


def _log_odds(chance: float) -> float:
    return math.log(chance / (1.0 - chance))


def promise_encoder(settings: IndexSettings):
    """The int8 encoder the classifier's vectors come from, kept beside the index's encoders
    (the same one when the index runs the bundled model on onnxruntime; built once otherwise)."""
    from indexer.embed import resolve_model_path
    from indexer.onnx_encoder import OnnxEmbedder

    return OnnxEmbedder(ENCODER_MODEL, resolve_model_path(ENCODER_MODEL), settings.encoders_dir)


def sentence_vector(encoder) -> SentenceVector:
    """One sentence at a time, so its vector never depends on the others in a batch; a sentence
    met again (the same words in many papers) is not encoded again."""

    @lru_cache(maxsize=4096)
    def vector(sentence: str) -> Sequence[float]:
        return encoder.embed([sentence])[0]

    return vector


@lru_cache(maxsize=1)
def default_model() -> PromiseModel:
    return PromiseModel.load()
