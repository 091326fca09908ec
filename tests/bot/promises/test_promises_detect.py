"""Promises in the papers: found in the sentences that undertake to give information later."""

from __future__ import annotations

import json

import paths
import pytest

from bot.promises.detect import find_promises, is_promise
from bot.promises.evaluate import main, score
from bot.promises.model import promise_encoder, sentence_vector
from indexer.settings import IndexSettings

BRADFORD = paths.CORPUS / "bradford" / "area-committee"


@pytest.fixture(scope="module")
def vector(encoders_dir):
    """One sentence's vector from the int8 encoder the classifier was trained with."""
    settings = IndexSettings.from_env({"CLERK_ENCODER_DIR": str(encoders_dir)})
    return sentence_vector(promise_encoder(settings))


def test_the_bradford_agenda_item_promise_is_found_with_to_whom(vector):
    (page,) = [p for p in BRADFORD.iterdir() if p.suffix == ".txt"]
    found = find_promises(page.read_text(encoding="utf-8"), vector)
    sentences = [p.sentence for p in found]
    assert "Further information could be provided to Members on this aspect." in sentences
    offer = next(p for p in found if p.sentence.startswith("Further information"))
    assert offer.made_to == "Members"
    assert any(s.startswith("ACTION:") for s in sentences)


def test_who_made_a_promise_and_to_whom_where_the_sentence_says(vector):
    (promise,) = find_promises(
        "Ms Coombs offered to provide Members with further details about the number of "
        "adoptions by age, outside of the meeting.",
        vector,
    )
    assert promise.made_by == "Ms Coombs"
    (written,) = find_promises(
        "A written answer will be sent to Mr Hook after the meeting.", vector
    )
    assert written.made_to == "Mr Hook" and written.made_by is None


def test_reports_owed_back_to_a_body_and_letters_to_follow_are_promises(vector):
    for sentence in (
        "A detailed update on the reuse shops would be brought back to Cabinet in due course.",
        "RESOLVED that a further report come to the Committee before the summer.",
        "Any changes made following the debate will be communicated to Members in writing.",
        "I have asked the Area Manager to contact you directly once the dates are known.",
        "AB will circulate the slides to all members.",
    ):
        assert is_promise(sentence, vector), sentence


def test_promises_worded_unlike_the_usual_ones_are_found(vector):
    # the words alone left these just under the line; the sentence vector lifts them over it
    for sentence in (
        "The service manager will let the Committee have the waiting list numbers.",
        "Numbers for each district would be shared after the meeting.",
    ):
        assert is_promise(sentence, vector), sentence


def test_look_alikes_are_not_promises(vector):
    for sentence in (
        "Members noted the information provided.",
        "The report had been circulated to Members before the meeting.",
        "Mr Love, Cabinet Member for Education and Skills, provided an update on the following:",
        "Does the privacy notice state that data will be shared with your team?",
        "We will provide system leadership and make the most of our collective resources.",
        "Detailed information regarding what services will be provided, if this is actioned.",
        "That a further report be presented in 12 months' time.",
    ):
        assert not is_promise(sentence, vector), sentence


def test_the_saved_classifier_is_what_training_from_the_repository_gives(tmp_path, capsys):
    from bot.promises.model import ARTIFACT, PromiseModel
    from bot.promises.train import main as train

    assert train(["--output", str(tmp_path / "model.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rebuilt, saved = PromiseModel.load(tmp_path / "model.json"), PromiseModel.load(ARTIFACT)
    assert rebuilt == saved, "bot/promises/model.json is stale: run python -m bot.promises.train"
    # the threshold was chosen by cross-validation on the development sets, for precision
    assert report["cross_validated"]["precision"] >= 0.9


# Four labelled sentences: enough to check that our scorer weighs them as scikit-learn does.
TINY_TRAINING = [
    ("Officers will circulate the figures to Members.", True),
    ("The figures were circulated to Members.", False),
    ("A written answer will follow.", True),
    ("Will the Cabinet Member publish the answer?", False),
]


def test_the_classifier_scores_sentences_as_the_trainer_weighed_them():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from bot.promises.model import PromiseModel, grams

    rows = TINY_TRAINING
    vectoriser = TfidfVectorizer(analyzer=grams, sublinear_tf=True)
    x = vectoriser.fit_transform([s for s, _ in rows])
    regression = LogisticRegression().fit(x, [label for _, label in rows])
    model = PromiseModel(
        {
            g: (vectoriser.idf_[c], regression.coef_[0][c])
            for g, c in vectoriser.vocabulary_.items()
        },
        float(regression.intercept_[0]),
        0.5,
    )
    for sentence in ("Officers will circulate a written answer.", "Nothing in common here"):
        expected = regression.predict_proba(vectoriser.transform([sentence]))[0][1]
        assert abs(model.chance(sentence) - expected) < 1e-9


def test_the_classifier_weighs_the_sentence_vector_as_the_trainer_did(vector):
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from bot.promises.model import PromiseModel, grams
    from bot.promises.train import EMBEDDING_SCALE

    rows = TINY_TRAINING
    vectoriser = TfidfVectorizer(analyzer=grams, sublinear_tf=True)
    words = vectoriser.fit_transform([s for s, _ in rows])

    def features(sentences, word_rows):
        vectors = np.array([vector(s) for s in sentences], dtype=np.float64)
        return hstack([word_rows, csr_matrix(EMBEDDING_SCALE * vectors)]).tocsr()

    x = features([s for s, _ in rows], words)
    regression = LogisticRegression().fit(x, [label for _, label in rows])
    coef, width = regression.coef_[0], words.shape[1]
    model = PromiseModel(
        {g: (vectoriser.idf_[c], coef[c]) for g, c in vectoriser.vocabulary_.items()},
        float(regression.intercept_[0]),
        0.5,
        embedding=tuple(EMBEDDING_SCALE * coef[width:]),
    )
    for sentence in ("Officers will circulate a written answer.", "Nothing in common here"):
        row = features([sentence], vectoriser.transform([sentence]))
        expected = regression.predict_proba(row)[0][1]
        assert abs(model.chance(sentence, vector(sentence)) - expected) < 1e-6


def test_only_sentences_whose_words_leave_it_open_are_encoded(vector):
    from bot.promises.model import default_model

    model, encoded = default_model(), []

    def recording(sentence):
        encoded.append(sentence)
        return vector(sentence)

    assert not is_promise("The Committee noted the annual complaints report.", recording)
    assert encoded == []
    # and skipping the encoder never changes the answer, on any development sentence
    promises = paths.REPO / "eval" / "promises"
    for path in (promises / "labelled.jsonl", promises / "blind-1" / "labelled.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = " ".join(json.loads(line)["sentence"].split())
            full = model.chance(text, vector(text)) >= model.threshold
            assert model.is_promise(text, recording) == full, text


def test_the_evaluation_reports_precision_and_recall(capsys, vector):
    promises = paths.REPO / "eval" / "promises"
    rows = [json.loads(line) for line in (promises / "labelled.jsonl").read_text().splitlines()]
    scores, wrong = score(rows, vector)
    assert scores.sentences == 76 and scores.promises == 14
    assert len(wrong) == scores.false_positives + scores.false_negatives
    assert main([]) == 0 and "precision" in capsys.readouterr().out
