"""Promises in the papers: found in the sentences that undertake to give information later."""

from __future__ import annotations

import json

import paths

from bot.promises.detect import find_promises, is_promise
from bot.promises.evaluate import main, score

BRADFORD = paths.CORPUS / "bradford" / "area-committee"


def test_the_bradford_agenda_item_promise_is_found_with_to_whom():
    (page,) = [p for p in BRADFORD.iterdir() if p.suffix == ".txt"]
    found = find_promises(page.read_text(encoding="utf-8"))
    sentences = [p.sentence for p in found]
    assert "Further information could be provided to Members on this aspect." in sentences
    offer = next(p for p in found if p.sentence.startswith("Further information"))
    assert offer.made_to == "Members"
    assert any(s.startswith("ACTION:") for s in sentences)


def test_who_made_a_promise_and_to_whom_where_the_sentence_says():
    (promise,) = find_promises(
        "Ms Coombs offered to provide Members with further details about the number of "
        "adoptions by age, outside of the meeting."
    )
    assert promise.made_by == "Ms Coombs"
    (written,) = find_promises("A written answer will be sent to Mr Hook after the meeting.")
    assert written.made_to == "Mr Hook" and written.made_by is None


def test_reports_owed_back_to_a_body_and_letters_to_follow_are_promises():
    for sentence in (
        "A detailed update on the reuse shops would be brought back to Cabinet in due course.",
        "RESOLVED that a further report come to the Committee before the summer.",
        "Any changes made following the debate will be communicated to Members in writing.",
        "The Panel will receive a written briefing on placement costs.",
        "I have asked the Area Manager to contact you directly once the dates are known.",
        "AB will circulate the slides to all members.",
    ):
        assert is_promise(sentence), sentence


def test_look_alikes_are_not_promises():
    for sentence in (
        "Members noted the information provided.",
        "The report had been circulated to Members before the meeting.",
        "Mr Love, Cabinet Member for Education and Skills, provided an update on the following:",
        "Does the privacy notice state that data will be shared with your team?",
        "We will provide system leadership and make the most of our collective resources.",
        "Detailed information regarding what services will be provided, if this is actioned.",
        "Tributes to the former Member would be taken at a future meeting.",
        "That a further report be presented in 12 months' time.",
    ):
        assert not is_promise(sentence), sentence


def test_labelled_sentences_meet_the_targets(capsys):
    promises = paths.REPO / "eval" / "promises"
    rows = [
        json.loads(line)
        for path in (promises / "labelled.jsonl", promises / "blind-1" / "labelled.jsonl")
        for line in path.read_text().splitlines()
    ]
    scores, _ = score(rows)
    assert scores.sentences >= 60 and scores.promises >= 10
    assert scores.precision >= 0.9 and scores.recall >= 0.8, scores
    assert main([]) == 0 and "precision" in capsys.readouterr().out
