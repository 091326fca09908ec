"""Reading and cutting papers: what a reader would lose or gain from extraction and chunking."""

from __future__ import annotations

from indexer.chunk import chunk_pages, is_heading
from indexer.parse import clean_text, html_to_text, strip_running_lines
from indexer.sources import title_from_filename
from indexer.types import Page


def test_clean_text_joins_broken_words_and_ranges_and_keeps_figures():
    raw = "The pro-\ngramme costs £2.149m in 2022-\n23.\n12\nPage 4 of 20\nTotal: 27,000 incidents"
    text = clean_text(raw)
    assert "programme costs £2.149m in 2022-23." in text
    assert "Total: 27,000 incidents" in text
    assert "\n12\n" not in text and "Page 4 of 20" not in text
    assert clean_text("signed ................ .......... date") == "signed … date"


def test_running_headers_and_footers_are_removed_but_body_lines_stay():
    topics = ["the budget", "school places", "highways", "libraries", "social care"]
    pages = [
        f"Kent County Council\nThis page is about {topic}.\nPage {n} of 5\nCabinet 30 January 2025"
        for n, topic in enumerate(topics, 1)
    ]
    cleaned = strip_running_lines(pages)
    assert all("Kent County Council" not in p and "Cabinet 30 January" not in p for p in cleaned)
    assert all(f"about {topic}." in p for topic, p in zip(topics, cleaned, strict=True))


def test_moderngov_agenda_item_html_keeps_its_structure():
    html = """<html><head><script>var x = 1;</script></head><body><nav>Home</nav>
    <div class="mgContent"><h2 class="mgSubTitleTxt">Protecting vulnerable children</h2>
    <p class="mgSubItemTitleTxt">Minutes:</p><div class="mgWordPara"><p>The report was noted.</p>
    <p>Resolved &ndash;</p><p>(1) That a further report be presented in 12 months.</p></div>
    </div></body></html>"""
    text = html_to_text(html)
    assert "var x" not in text and "Home" not in text
    assert "Resolved –" in text and "(1) That a further report be presented in 12 months." in text


def test_chunks_follow_numbered_paragraphs_and_carry_their_heading():
    page = Page(
        3,
        "Pay Policy Statement\n1. Introduction\n"
        "1.1 The council sets out its pay policy each year for members to approve.\n"
        "1.4 The new minimum salary will be £24,513 from 1 April 2025, above the National "
        "Living Wage.\n2. Pay Multiple\n2.1 The pay multiple is 8.4:1.",
    )
    chunks = chunk_pages("doc", "County Council - Pay Policy Statement", [page], max_words=20)
    minimum = next(c for c in chunks if "£24,513" in c.text)
    assert minimum.page == 3
    assert minimum.heading == "County Council - Pay Policy Statement — 1. Introduction"
    assert minimum.text.startswith("1.4 The new minimum salary")
    multiple = next(c for c in chunks if "8.4:1" in c.text)
    assert multiple.heading.endswith("2. Pay Multiple")


def test_long_paragraphs_split_at_sentences_within_the_limit():
    sentence = "The council agreed the plan for the next financial year in full. "
    chunks = chunk_pages("doc", "Minutes", [Page(1, sentence * 40)], max_words=60)
    assert len(chunks) > 1
    assert all(len(c.text.split()) <= 60 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)


def test_headings_are_short_standalone_lines_not_sentence_openings():
    assert is_heading("Recommendation(s):", "Summary text ends here.")
    assert is_heading("3. Background", "")
    assert not is_heading("2. Further to comments and questions from Members it was noted", "")
    assert not is_heading("Mr Brady, Ms Constantine, Ms Meade", "")
    assert not is_heading("continues from the line above", "the council agreed to")


def test_a_recorded_vote_stays_under_the_item_it_decides():
    # as pypdf reads Kent's printed minutes: tallies on their own lines, names wrapped, blank
    # lines between; the vote starts a page, so the item's heading comes from the page before
    before = Page(9, "285. English Devolution White Paper\nThe motion was put to the vote.")
    votes = Page(
        10,
        "For (39)\n\nMr Baker, Mr Bartlett, Mrs Bell,\nMr Booth, Ms Wright\n\n"
        "Against (19)\n\nMr Baldock, Mr Brady,\nDr Sullivan\n\n"
        "Abstain (1)\n\nMs Constantine\nSubstantive Motion carried.",
    )
    chunks = chunk_pages("doc", "Minutes", [before, votes], max_words=140)
    on_page = [c for c in chunks if c.page == 10]
    assert all(c.heading == "Minutes — 285. English Devolution White Paper" for c in on_page)
    # each tally keeps its whole list of names, however it was wrapped
    assert any(c.text == "For (39) Mr Baker, Mr Bartlett, Mrs Bell, Mr Booth, Ms Wright"
               for c in on_page)  # fmt: skip
    assert any(c.text.startswith("Against (19) Mr Baldock, Mr Brady, Dr Sullivan")
               for c in on_page)  # fmt: skip
    assert not is_heading("Against (19)", "")


def test_titles_come_from_published_file_names():
    assert title_from_filename("Budget%20Amendments%2013th-Feb-2025.pdf") == (
        "Budget Amendments 13th-Feb-2025"
    )
    assert title_from_filename("8 - Amendment - CTRS_1.pdf") == "8 - Amendment - CTRS"
