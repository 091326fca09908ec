"""The answering engine on real papers with the real model: cited answers and honest refusals."""

from __future__ import annotations

import pytest

from bot.errors import QuestionError
from indexer.store import read_build
from indexer.types import SearchFilters


def test_answer_quotes_and_cites_the_paper_with_page(answerer):
    answer = answerer.answer(
        "How much LEVI capital funding did the Liberal Democrats' amendment propose?"
    )

    assert answer.answered
    first = answer.citations[0]
    assert first.source.endswith("3 - Amendment - Liberal Democrats - LEVI capital funding.pdf")
    assert first.page == 1
    assert first.committee == "County Council"
    assert first.meeting_date == "2025-02-13"
    assert "2.149m" in first.quote
    assert first.url and first.url.endswith("#page=1")
    assert "[1]" in answer.text


def test_every_citation_quotes_text_that_was_extracted(answerer, searcher):
    answer = answerer.answer(
        "What did the County Council resolve about the Devolution Priority Programme?"
    )

    assert answer.answered
    chunks = read_build(searcher.index.build).chunks
    pages = {
        "\n".join(c.text for c in chunks[i : i + n]) for n in (1, 2, 3) for i in range(len(chunks))
    }
    assert all(c.quote in pages for c in answer.citations)  # a passage with its page neighbours
    quoted = answer.text.split("“", 1)[1].rsplit("”", 1)[0].removesuffix(" …")
    assert quoted and " ".join(quoted.split()) in " ".join(answer.citations[0].quote.split())


def test_unpaged_agenda_item_is_cited_without_a_page(answerer):
    answer = answerer.answer(
        "What did Bradford's Area Committee say about children going missing and CSE?"
    )

    assert answer.answered
    assert answer.citations[0].source.startswith("bradford/")
    assert answer.citations[0].page is None


def test_near_miss_is_declined_with_nearest_passages(answerer):
    # The papers discuss missing children in Bradford, but give no 2019 figure.
    answer = answerer.answer("How many children went missing in Bradford in 2019?")

    assert not answer.answered
    assert answer.citations == ()
    assert answer.nearest, "officers should see what Clerk found"


def test_off_topic_question_is_declined(answerer):
    assert not answerer.answer(
        "Which day are garden waste bins collected in Tunbridge Wells?"
    ).answered


def test_decision_reference_found_by_exact_match(searcher):
    hits = searcher.search("LEVI", k=3, mode="bm25")

    assert hits and "LEVI" in hits[0].text


def test_filters_restrict_to_committee_and_dates(answerer):
    only_bradford = SearchFilters(committee="Area Committee")
    answer = answerer.answer("What did the committee resolve?", only_bradford)
    assert all(c.committee == "Area Committee" for c in answer.citations + answer.nearest)

    before = SearchFilters(until="2025-01-31")
    found = answerer.assess("LEVI capital funding amendment", before)
    assert all(j.hit.meeting_date and j.hit.meeting_date <= "2025-01-31" for j in found)


@pytest.mark.parametrize("question", ["", "   ", "?!", "\x00\x01"])
def test_empty_questions_get_a_clear_error(answerer, question):
    with pytest.raises(QuestionError, match="ask a question"):
        answerer.answer(question)


def test_very_long_question_is_refused_not_truncated(answerer):
    with pytest.raises(QuestionError, match="characters long"):
        answerer.answer("budget " * 1000)


def test_hostile_markup_in_question_is_just_text(answerer):
    answer = answerer.answer("<script>alert(1)</script> <!channel> LEVI amendment amount?")
    assert answer.question.startswith("<script>")  # kept verbatim; renderers escape it


def test_a_question_about_a_vote_needs_a_sentence_that_records_one():
    from bot.engine.slots import holds_kind, read_question

    asks = read_question("How did members vote on the LEVI amendment?").asks
    assert not holds_kind(asks, "The amendment proposes to top-up the LEVI grant.")
    assert holds_kind(asks, "The amendment was lost. For (12) Against (45) Abstain (3)")
    assert holds_kind(asks, "Members voted unanimously to note the report.")


def test_the_kind_of_thing_asked_for_is_read_from_the_question():
    from bot.engine.slots import read_question

    assert read_question("How many children are home educated?").asks == "count"
    assert read_question("What was the forecast overspend in Q3?").asks == "amount"
    assert read_question("When does the consultation close?").asks == "date"
    assert read_question("Who seconded the amendment?").asks == "person"
    assert read_question("What did Cabinet decide on 24/00109?").asks == "decision"
    assert read_question("Did the council formally agree the plan?").asks == "decision"
    # a decision only named, not asked for
    assert read_question("What must happen before a called-in decision is reviewed?").asks is None
    assert read_question("Which section did the changes agreed in March amend?").asks is None
    slots = read_question("What did Cabinet decide on 24/00109 for 2025/26 in Maidstone?")
    assert {"24/00109", "2025-26"} <= slots.figures and "maidston" in slots.names


def test_the_asked_kind_is_read_after_the_scene_is_set_and_from_roles_and_money_words():
    from bot.engine.slots import holds_kind, read_question

    # the asking clause after one that sets the scene
    assert read_question("At the March Cabinet, how many KPIs were red?").asks == "count"
    assert read_question("Q3 monitoring: what is the reserve at year end?").asks == "amount"
    assert read_question("Bradford committee – when do they want an update?").asks == "date"
    # people asked for by their role, and money by what councils call it
    assert read_question("Which planning inspector examined the plan?").asks == "person"
    assert read_question("What is the median salary at the council?").asks == "amount"
    # "what did the Leader say" asks what was said, not who said it
    assert read_question("What did the Leader say about potholes?").asks is None
    # a time given as a span answers "when"
    assert holds_kind("date", "Members asked for a further update in 12 months.")


def test_a_how_many_question_needs_a_figure_and_a_decision_a_resolution():
    from bot.engine.slots import holds_kind

    assert not holds_kind("count", "Numbers rose.")
    assert holds_kind("count", "There were 2,403.")
    assert holds_kind("decision", "RESOLVED that Cabinet agree the plan.")
    assert not holds_kind("decision", "Cabinet is asked to consider the plan.")


def test_the_asked_thing_must_be_something_the_question_did_not_already_say():
    from bot.engine.slots import holds_kind, read_question

    reserves = read_question("What were total usable reserves at the end of 2023-24?")
    known = frozenset(reserves.terms)
    # the year the question names is not the amount it asks for
    assert not holds_kind(reserves.asks, "In 2023-24 usable reserves fell again.", known)
    assert holds_kind(reserves.asks, "In 2023-24 usable reserves fell to £357.6m.", known)
    inspector = read_question("Who was the planning inspector who examined the plan?")
    known = frozenset(inspector.terms)
    assert not holds_kind(inspector.asks, "It was examined by a Planning Inspector.", known)
    assert holds_kind(inspector.asks, "The Inspector, Joanne Burston, examined it.", known)


def test_replies_say_which_kind_they_are(answerer):
    answered = answerer.answer(
        "How much LEVI capital funding did the Liberal Democrats' amendment propose?"
    )
    assert (answered.kind, answered.answered) == ("answered", True)
    assert 0.0 < answered.confidence <= 1.0
    off_topic = answerer.answer("Which day are garden waste bins collected in Tunbridge Wells?")
    assert off_topic.kind in ("not_found", "discussed") and not off_topic.answered
    assert set(off_topic.to_dict()) >= {"kind", "confidence", "answered", "nearest"}
