"""Clerk's email replies: threaded, readable, cited, and escaped."""

from __future__ import annotations

from bot.channels.email.parse import IncomingQuestion
from bot.channels.email.render import page_link, render_answer, render_officer_answer, reply_subject
from bot.requests.model import Asker, InfoRequest, Logged
from bot.types import Answer, Citation

OWN = "ask@clerk.example"
INCOMING = IncomingQuestion(
    message_id="<q2@kent.gov.uk>",
    sender="jane@kent.gov.uk",
    sender_name="Cllr Jane <Smith>",
    subject="Re: Libraries <budget>",
    question="Libraries <budget>\n\nIs the <script>alert(1)</script> library closing?",
    body="Is the <script>alert(1)</script> library closing?",
    references=("<q1@kent.gov.uk>", "<r1@clerk.example>"),
    in_reply_to="<r1@clerk.example>",
)
CITATION = Citation(
    title='Libraries "review" & <consultation>',
    council="Kent County Council",
    committee="Cabinet",
    meeting_date="2025-03-13",
    page=7,
    source="kent/cabinet/2025-03-13/Libraries review.pdf",
    url="https://democracy.kent.gov.uk/documents/s1/Libraries%20review.pdf",
    quote="The <b>library</b> at Tenterden & Rye will stay open.",
    score=0.8,
)


def _answered() -> Answer:
    return Answer(INCOMING.question, True, "Yes: Tenterden library stays <open>.", (CITATION,))


def test_reply_headers_thread_and_mark_as_automatic():
    msg = render_answer(INCOMING, _answered(), OWN)
    assert msg["Subject"] == "Re: Libraries <budget>"
    assert msg["In-Reply-To"] == "<q2@kent.gov.uk>"
    assert msg["References"] == "<q1@kent.gov.uk> <r1@clerk.example> <q2@kent.gov.uk>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["From"].addresses[0].addr_spec == OWN
    assert msg["To"].addresses[0].addr_spec == "jane@kent.gov.uk"
    assert msg["Message-ID"].endswith("@clerk.example>")
    assert msg["Message-ID"] != render_answer(INCOMING, _answered(), OWN)["Message-ID"]
    assert msg["Date"]


def test_subject_gets_exactly_one_re():
    assert reply_subject("Budget") == "Re: Budget"
    assert reply_subject("RE: Re: Budget") == "Re: Budget"
    assert reply_subject("") == "Re: your question"


def test_answer_first_then_citation_in_both_parts():
    msg = render_answer(INCOMING, _answered(), OWN)
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.startswith("Yes: Tenterden library stays <open>.")
    link = "https://democracy.kent.gov.uk/documents/s1/Libraries%20review.pdf#page=7"
    for expected in (CITATION.title, "Cabinet, Kent County Council, 13 March 2025, page 7", link):
        assert expected in text
    assert "The <b>library</b> at Tenterden & Rye will stay open." in text
    assert text.index("Yes: Tenterden") < text.index(CITATION.title)
    assert f'<a href="{link}">' in html
    assert "13 March 2025" in html


def test_everything_from_papers_is_escaped_in_html():
    html = render_answer(INCOMING, _answered(), OWN).get_body(("html",)).get_content()
    assert "<b>library</b>" not in html and "&lt;b&gt;library&lt;/b&gt;" in html
    assert "&amp; Rye" in html
    assert "&lt;consultation&gt;" in html and "&quot;review&quot;" in html
    assert "stays &lt;open&gt;" in html


def test_unanswered_reply_gives_request_number_and_escapes_question():
    request = InfoRequest(12, INCOMING.question, "open", "2025-03-14", "2025-03-14", ())
    answer = Answer(INCOMING.question, False, "Not found.")
    msg = render_answer(INCOMING, answer, OWN, Logged(request, created=True))
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "do not answer this question" in text
    assert "request #12" in text and "reply to you in this email thread" in text
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert msg["In-Reply-To"] == "<q2@kent.gov.uk>"


def test_officer_answer_joins_the_original_thread():
    asker = Asker(
        "email",
        "jane@kent.gov.uk",
        "Cllr Jane",
        {"message_id": "<q2@kent.gov.uk>", "references": "<q1@kent.gov.uk>", "subject": "Libs"},
    )
    request = InfoRequest(
        12, "Is <it> closing?", "answered", "2025-03-14", "2025-03-20", (asker,),
        answer="No, it stays open <until 2026>.", answered_by="A. Officer",
        answered_at="2025-03-20T10:00:00+00:00",
    )  # fmt: skip
    msg = render_officer_answer(request, asker, OWN)
    assert msg["Subject"] == "Re: Libs"
    assert msg["In-Reply-To"] == "<q2@kent.gov.uk>"
    assert msg["References"] == "<q1@kent.gov.uk> <q2@kent.gov.uk>"
    assert msg["Auto-Submitted"] == "auto-replied"
    text = msg.get_body(("plain",)).get_content()
    assert "request #12" in text and "A. Officer, 20 March 2025" in text
    assert "No, it stays open <until 2026>." in text
    assert "&lt;until 2026&gt;" in msg.get_body(("html",)).get_content()


def test_page_links_only_for_http_and_only_pdfs_get_a_page():
    assert page_link(CITATION).endswith(".pdf#page=7")
    web = Citation("Item", "B", "C", None, None, "b/item.txt", "https://b.gov.uk/item", "q", 1)
    assert page_link(web) == "https://b.gov.uk/item"
    bad = Citation("Item", "B", "C", None, 2, "x.pdf", "javascript:alert(1)", "q", 1)
    assert page_link(bad) is None
