"""Block Kit rendering: escaping, links, and Slack's size limits on crafted values."""

from __future__ import annotations

import json
import re

from bot.channels.slack import render
from bot.requests.model import ANSWERED, ASSIGNED, OPEN, Asker, InfoRequest
from bot.types import Answer, Citation


def cite(quote: str = "The Cabinet agreed the plan.", **kw) -> Citation:
    values = dict(
        title="Public reports pack 13th-Mar-2025 Cabinet",
        council="Kent County Council",
        committee="Cabinet",
        meeting_date="2025-03-13",
        page=4,
        source="kent/cabinet/2025-03-13/Public reports pack.pdf",
        url="https://democracy.kent.gov.uk/documents/s1/Public reports pack.pdf",
        quote=quote,
        score=0.8,
        chunk_id="abc",
    )
    values.update(kw)
    return Citation(**values)


def request(**kw) -> InfoRequest:
    values = dict(
        request_id=7,
        question="Who approved <!channel> & the budget?",
        state=OPEN,
        created_at="2025-03-14T09:00:00Z",
        updated_at="2025-03-14T09:00:00Z",
        askers=(Asker("slack", "U0CLLR001", "Cllr <@U999> & Co", {"channel": "C1"}),),
        nearest=(cite(),),
    )
    values.update(kw)
    return InfoRequest(**values)


def all_text(blocks) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def unescaped_angles(text: str) -> list[str]:
    """Every <...> in mrkdwn: only our own links and officer mentions may appear."""
    return re.findall(r"<[^>]*>", text)


def test_a_passage_that_says_channel_pings_nobody():
    quote = "Notice: <!channel> <!here> <@U123> <#C999|general> & <https://evil.example|click>"
    answer = Answer("q?", True, "Answer <!everyone> & more", citations=(cite(quote),))
    message = render.answer_message(answer)
    shown = all_text(message.blocks) + message.text
    for raw in ("<!channel>", "<!here>", "<@U123>", "<#C999", "<!everyone>", "<https://evil"):
        assert raw not in shown
    assert "&lt;!channel&gt;" in shown and "&amp; &lt;https://evil.example|click&gt;" in shown
    # the only real link is the citation's own
    links = unescaped_angles(all_text(message.blocks))
    assert links == [
        "<https://democracy.kent.gov.uk/documents/s1/Public%20reports%20pack.pdf#page=4"
        "|Public reports pack 13th-Mar-2025 Cabinet>"
    ]
    for block in message.blocks:  # no auto-linking of @channel written out in plain words
        for text in [block.get("text")] + block.get("elements", []):
            if isinstance(text, dict) and text.get("type") == "mrkdwn":
                assert text["verbatim"] is True


def test_citation_line_names_title_committee_date_and_page():
    line = render.citation_line(cite())
    assert "Cabinet" in line and "13 March 2025" in line and "page 4" in line
    assert line.startswith("*<https://democracy.kent.gov.uk/")


def test_citation_url_is_escaped_and_cannot_break_out_of_the_link():
    line = render.citation_line(
        cite(url="https://example.org/a.pdf?x=1&y=<b>|c", title="Budget | <b>", page=None)
    )
    link = unescaped_angles(line)[0]
    assert "&amp;y=%3Cb%3E%7Cc" in link  # & escaped, < > | percent-encoded
    assert link.count("|") == 1 and "&lt;b&gt;" in link


def test_only_web_links_are_linked():
    for url in ("file:///srv/papers/a.pdf", "javascript:alert(1)", None):
        line = render.citation_line(cite(url=url))
        assert "<" not in line


def test_an_existing_page_anchor_is_kept():
    assert render.source_link(cite(url="https://x.org/a.pdf#page=9")).endswith("#page=9")


def test_long_passages_are_cut_without_breaking_an_escape():
    quote = "&" * 5000  # each becomes &amp;: any cut point risks splitting one
    answer = Answer("q?", True, "<" * 4000, citations=(cite(quote),) * 30)
    message = render.answer_message(answer)
    assert len(message.blocks) <= render.MAX_MESSAGE_BLOCKS
    for block in message.blocks:
        text = (block.get("text") or {}).get("text", "")
        assert len(text) <= render.MAX_SECTION_TEXT
        body = text.lstrip(">")
        if body.endswith(render.ELLIPSIS):
            assert re.fullmatch(r"(&amp;)+…|(&lt;)+…", body), body[-12:]


def test_cut_never_leaves_half_an_entity():
    for limit in range(5, 40):
        out = render.cut(render.escape("a<b>&c" * 10), limit)
        assert len(out) <= limit
        assert not re.search(r"&[a-z]*…$", out) and not re.search(r"&[a-z]*$", out)


def test_button_labels_values_and_headers_stay_within_limits():
    long_question = "Why? " * 1000
    answer = Answer(long_question, True, "x", citations=(cite(),))
    message = render.answer_message(answer, echo=True)
    for block in message.blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= render.MAX_BUTTON_TEXT
                assert len(element["value"]) <= render.MAX_BUTTON_VALUE
                assert json.loads(element["value"])["q"].startswith("Why?")


def test_not_answered_says_so_and_gives_the_request_number():
    answer = Answer("q?", False, "I could not find...", nearest=(cite(),))
    message = render.answer_message(answer, request(request_id=12))
    assert "request #12" in message.text and "could not find" in message.text
    assert "actions" not in all_text(message.blocks)  # nothing to press: officers have it
    assert "The Cabinet agreed" not in all_text(message.blocks)  # nearest is never an answer


def test_request_message_shows_question_asker_and_passages_escaped():
    message = render.request_message(request())
    shown = all_text(message.blocks)
    assert "&lt;!channel&gt; &amp; the budget" in shown
    assert "Cllr &lt;@U999&gt; &amp; Co" in shown and "<@U0CLLR001>" not in shown
    assert "The Cabinet agreed the plan." in shown
    header = message.blocks[0]
    assert header["type"] == "header" and header["text"]["text"] == "Request #7"


def test_a_promise_reads_as_a_promise_with_its_meeting_page_sentence_and_people():
    """Logged from the papers (bot.promises.log), not asked: no 'Asked by' a hash."""
    promised = request(
        question="Promised in Public reports pack 13th-Mar-2025 Cabinet (Cabinet, 2025-03-13, "
        "page 4): “Further information will be provided to Members.” Made by the Leader. "
        "To Members.",
        askers=(Asker("promise", "5d41402abc4b2a76b972", "Members"),),
        nearest=(cite("Further information will be provided to Members. The Cabinet agreed."),),
    )
    message = render.request_message(promised)
    shown = all_text(message.blocks)
    assert message.blocks[0]["text"]["text"] == "Request #7: a promise in the papers"
    assert "Promised in the papers" in shown and "Where it was promised" in shown
    assert "“Further information will be provided to Members.”" in shown
    assert "Made by the Leader. To Members." in shown
    assert "Cabinet · 13 March 2025 · page 4" in shown  # the meeting and page, linked
    assert "documents/s1/Public%20reports%20pack.pdf#page=4" in shown
    assert "Asked by" not in shown and "5d41402abc4b2a76b972" not in shown
    assert "a promise in the papers" in message.text
    buttons = [
        e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == [render.ASSIGN, render.ANSWER_OPEN, render.DECLINE_OPEN]


def test_a_handled_request_keeps_only_a_close_button_and_says_who():
    assigned = render.request_message(request(state=ASSIGNED, assigned_to="U0OFFICER1"))
    assert "assigned* to <@U0OFFICER1>" in all_text(assigned.blocks)
    answered = render.request_message(
        request(state=ANSWERED, answer="Yes & no", answered_by="U0OFFICER1")
    )
    assert "Yes &amp; no" in all_text(answered.blocks)
    buttons = [
        e["action_id"] for b in answered.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == [render.CLOSE]  # answered: only closing is left to do
    closed = render.request_message(request(state="closed", answer="Yes", answered_by="U0X"))
    assert not [b for b in closed.blocks if b["type"] == "actions"]


def test_officer_answer_message_is_escaped():
    done = request(state=ANSWERED, answer="<!here> it was approved", answered_at="2025-03-20")
    message = render.officer_answer_message(done)
    assert "<!here>" not in all_text(message.blocks) + message.text
    assert "request #7" in message.text


def test_modals_carry_the_request_and_stay_within_limits():
    view = render.answer_modal(request(question="q" * 5000), "C0OFFICERS", "1.2")
    assert json.loads(view["private_metadata"]) == {
        "request_id": 7,
        "channel": "C0OFFICERS",
        "ts": "1.2",
    }
    assert len(view["title"]["text"]) <= render.MAX_VIEW_TITLE
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in view["blocks"])
    decline = render.decline_modal(request(), None, None)
    assert decline["callback_id"] == render.DECLINE_VIEW


def test_home_views_stay_within_100_blocks():
    many = [request(request_id=n) for n in range(1, 300)]
    for view in (render.officer_home(many), render.councillor_home(many)):
        assert len(view["blocks"]) <= render.MAX_VIEW_BLOCKS
        assert "more" in all_text(view["blocks"][-1:])
    assert "no open requests" in all_text(render.councillor_home([])["blocks"])
