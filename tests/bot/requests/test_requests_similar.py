"""Which questions count as the same question: content words, names, and real embeddings."""

from __future__ import annotations

import pytest
from requests_support import ALICE, BOB, CAROL, Clock

from bot.requests.similar import EmbeddingSimilarity, TokenSimilarity, content_words, names_agree
from bot.requests.stores.sqlite import SqliteRequestStore

SAME = [
    (
        "When will the Dover bypass consultation close?",
        "When does the consultation on the Dover bypass close?",
    ),
    (
        "What is the council tax increase for 2025-26?",
        "what is the Council Tax increase for 2025-26",
    ),
]
DIFFERENT = [
    (
        "What is the budget for road repairs in Canterbury?",
        "What is the budget for road repairs in Dover?",
    ),
    (
        "What is the council tax increase for 2025-26?",
        "What is the council tax increase for 2024-25?",
    ),
    ("How many potholes were repaired in 2023?", "How many potholes were reported in 2023?"),
    (
        "What is the cost of the new school in Sittingbourne?",
        "When will the new school in Sittingbourne open?",
    ),
]
# Reworded beyond shared words: only the embedding sees these as one question.
PARAPHRASE = (
    "What is the budget for road repairs in Canterbury?",
    "How much is being spent on road repairs in Canterbury?",
)


def test_content_words_drop_framing_and_plurals():
    assert content_words("How many Potholes were repaired?") == {"pothole", "repaired"}


def test_names_and_numbers_must_agree():
    assert not names_agree("Road repairs in Canterbury?", "Road repairs in Dover?")
    assert names_agree("Road repairs in Canterbury?", "road repairs in canterbury")
    assert not names_agree("Tax rise in 2025?", "Tax rise?")


@pytest.mark.parametrize(("a", "b"), SAME)
def test_token_similarity_links_rewordings(a, b):
    assert TokenSimilarity().similar(a, b) and TokenSimilarity().similar(b, a)


@pytest.mark.parametrize(("a", "b"), DIFFERENT + [PARAPHRASE])
def test_token_similarity_keeps_different_questions_apart(a, b):
    assert not TokenSimilarity().similar(a, b)


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, real):
        self.real, self.texts = real, []

    def embed(self, texts):
        self.texts += list(texts)
        return self.real.embed(texts)


def test_embedding_similarity_with_the_real_model(embedder):
    counting = CountingEmbedder(embedder)
    similar = EmbeddingSimilarity(counting)
    assert similar.similar(*PARAPHRASE)
    for a, b in SAME:
        assert similar.similar(a, b)
    for a, b in DIFFERENT:
        assert not similar.similar(a, b), (a, b, similar.score(a, b))
    similar.similar(PARAPHRASE[0], PARAPHRASE[1])
    assert len(counting.texts) == len(set(counting.texts))  # each text embedded once


def test_store_with_embeddings_links_a_paraphrase_but_not_a_neighbour(tmp_path, embedder):
    path = tmp_path / "requests.sqlite3"
    with SqliteRequestStore(path, similarity=EmbeddingSimilarity(embedder), clock=Clock()) as store:
        first = store.log(PARAPHRASE[0], ALICE)
        reworded = store.log(PARAPHRASE[1], BOB)
        store.log("How many potholes were repaired in 2023?", CAROL)
        neighbour = store.log("How many potholes were reported in 2023?", CAROL)
    assert not reworded.created and reworded.request.request_id == first.request.request_id
    assert reworded.request.askers == (ALICE, BOB)
    assert neighbour.created
