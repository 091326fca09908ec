"""Clerk's Slack messages as Block Kit (pure: values in, JSON-ready dicts out).

Everything that came from the papers or from a person is escaped for mrkdwn (`&`, `<`, `>`) and
put in `verbatim` text objects, so a passage saying `<!channel>` or `@here` never pings anyone.
Every text is cut to Block Kit's limits; a cut never splits an escape sequence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from bot.requests.model import ANSWERED, ASSIGNED, CLOSED, DECLINED, DUPLICATE, OPEN, InfoRequest
from bot.types import DISCUSSED, Answer, Citation

# Block Kit limits (https://api.slack.com/reference/block-kit)
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_VIEW_TITLE = 24
MAX_FALLBACK_TEXT = 3000  # chat.postMessage truncates `text` at 40k; notifications show far less
MAX_QUOTE = 1200  # a long passage is cut well under the section limit, to keep answers readable
MAX_INPUT = 3000
ELLIPSIS = "…"

# action ids and callback ids shared with bot/slack_app.py
HELPFUL = "clerk_helpful"
ASK_OFFICERS = "clerk_ask_officers"
ASSIGN = "clerk_assign"
ANSWER_OPEN = "clerk_answer_open"
DECLINE_OPEN = "clerk_decline_open"
CLOSE = "clerk_close"
ANSWER_VIEW = "clerk_answer"
DECLINE_VIEW = "clerk_decline"
WORKING_TEXT = "Looking through the papers…"

_STATE_WORDS = {
    OPEN: "open",
    ASSIGNED: "assigned",
    ANSWERED: "answered",
    CLOSED: "closed",
    DECLINED: "declined",
    DUPLICATE: "duplicate",
}


@dataclass(frozen=True)
class SlackMessage:
    """Blocks plus the plain fallback text shown in notifications."""

    text: str
    blocks: list[dict]


NOT_ANSWERED_TEXT = "I could not find an answer to this in the committee papers."


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(escaped: str, limit: int) -> str:
    """Shorten already-escaped text to `limit` characters with an ellipsis, never mid-entity."""
    if len(escaped) <= limit:
        return escaped
    head = escaped[: limit - len(ELLIPSIS)]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]  # every "&" starts an entity after escape(); drop a broken one
    return head.rstrip() + ELLIPSIS


def fit(text: str, limit: int) -> str:
    """Escape then cut: the one way paper and user text enters a message."""
    return cut(escape(text), limit)


def plain(text: str, limit: int) -> dict:
    """A plain_text object (never parsed for mentions) within its limit."""
    text = text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS
    return {"type": "plain_text", "text": text or " ", "emoji": False}


def mrkdwn(text: str) -> dict:
    """A verbatim mrkdwn object: no auto-linking of names, channels or URLs."""
    return {"type": "mrkdwn", "text": text or " ", "verbatim": True}


def section(text: str) -> dict:
    return {"type": "section", "text": mrkdwn(text)}


def context(text: str) -> dict:
    return {"type": "context", "elements": [mrkdwn(text)]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict:
    block = {
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT),
        "action_id": action_id,
        "value": value[:MAX_BUTTON_VALUE],
    }
    if style:
        block["style"] = style
    return block


def blockquote(text: str, limit: int = MAX_QUOTE) -> str:
    """A passage as an mrkdwn quote: escaped, cut, each line marked with '>'."""
    lines = [line.strip() for line in fit(" ".join(text.split()), limit).splitlines()]
    return "\n".join(f">{line}" for line in lines if line) or ">"


def human_date(iso: str | None) -> str:
    if not iso:
        return "undated"
    try:
        return date.fromisoformat(iso[:10]).strftime("%-d %B %Y")
    except ValueError:
        return iso


def source_link(citation: Citation) -> str | None:
    """The published URL, opened at the cited page for PDFs; None unless http(s)."""
    url = citation.url or ""
    if not url.lower().startswith(("https://", "http://")):
        return None
    is_pdf = url.lower().split("#")[0].split("?")[0].endswith(
        ".pdf"
    ) or citation.source.lower().endswith(".pdf")
    if is_pdf and citation.page and "#" not in url:
        url = f"{url}#page={citation.page}"
    # "|" and ">" would end the link early; spaces are not valid in URLs either
    return escape(quote(url, safe=":/?#[]@!$&'()*+,;=%~-._"))


def citation_line(citation: Citation) -> str:
    """Title (linked when a URL is known), committee, meeting date, page."""
    title = fit(citation.title or citation.source, 300).replace("|", "¦")
    link = source_link(citation)
    title_part = f"*<{link}|{title}>*" if link else f"*{title}*"
    parts = [title_part, fit(citation.committee, 200), human_date(citation.meeting_date)]
    if citation.page:
        parts.append(f"page {citation.page}")
    return " · ".join(p for p in parts if p)


def citation_blocks(citation: Citation) -> list[dict]:
    return [section(blockquote(citation.quote)), context(citation_line(citation))]


def question_value(question: str) -> str:
    """A button value carrying the question back to us (JSON, within the value limit)."""
    value = json.dumps({"q": question}, ensure_ascii=False)
    while len(value) > MAX_BUTTON_VALUE:
        question = question[: len(question) - (len(value) - MAX_BUTTON_VALUE) - 1]
        value = json.dumps({"q": question}, ensure_ascii=False)
    return value


def you_asked(question: str) -> dict:
    """Repeats the question where the answer would otherwise stand alone (slash commands)."""
    return section(f"*You asked*\n{blockquote(question, 1000)}")


def working_message(question: str, echo: bool = False) -> SlackMessage:
    """Shown at once, then replaced in place by the answer."""
    blocks = [context(f":hourglass_flowing_sand: {WORKING_TEXT}")]
    return SlackMessage(WORKING_TEXT, [you_asked(question), *blocks] if echo else blocks)


def answer_message(
    answer: Answer, request: InfoRequest | None = None, echo: bool = False
) -> SlackMessage:
    """An answer with its cited passages and feedback buttons, or a plain 'not in the papers'."""
    message = _answer_message(answer, request)
    if echo:
        return SlackMessage(message.text, [you_asked(answer.question), *message.blocks])
    return message


def _answer_message(answer: Answer, request: InfoRequest | None) -> SlackMessage:
    if not answer.answered:
        return not_answered_message(answer, request)
    blocks = [section(fit(answer.text, MAX_SECTION_TEXT))]
    room = MAX_MESSAGE_BLOCKS - 3  # the question echo, the answer block and the buttons
    for citation in answer.citations[: room // 2]:
        blocks.extend(citation_blocks(citation))
    value = question_value(answer.question)
    blocks.append(
        {
            "type": "actions",
            "block_id": "clerk_feedback",
            "elements": [
                button("Helpful", HELPFUL, value, "primary"),
                button("Not answered: ask officers", ASK_OFFICERS, value),
            ],
        }
    )
    return SlackMessage(fit(answer.text, MAX_FALLBACK_TEXT), blocks)


def not_answered_message(answer: Answer, request: InfoRequest | None) -> SlackMessage:
    """The papers do not answer: say so plainly (and, when they discuss the topic, show the
    nearest passages, marked as not answering), and give the request number."""
    said = answer.text if answer.kind == DISCUSSED else NOT_ANSWERED_TEXT
    follow = ""
    if request is not None:
        follow = (
            f" I have passed it to officers as request #{request.request_id};"
            " their answer will come back here."
        )
    blocks = [section(fit(said, MAX_SECTION_TEXT) + escape(follow))]
    if answer.kind == DISCUSSED and answer.nearest:
        blocks.append(context("*Closest passages* (they do not answer it):"))
        for citation in answer.nearest[:2]:
            blocks.extend(citation_blocks(citation))
    return SlackMessage(fit(said + follow, MAX_FALLBACK_TEXT), blocks)


def logged_message(request: InfoRequest, created: bool) -> SlackMessage:
    """Reply to 'Not answered: ask officers'."""
    if created:
        text = (
            f"Thank you. I have passed your question to officers as request #{request.request_id}."
        )
    else:
        text = (
            f"Officers are already looking at this question (request #{request.request_id});"
            " you will hear back here too."
        )
    return SlackMessage(text, [section(text)])


def asker_line(request: InfoRequest) -> str:
    """Who asked, by name and id, without mentioning (and so paging) them."""
    names = []
    for asker in request.askers[:10]:
        name = fit(asker.display_name or asker.user_id, 80)
        names.append(f"{name} (`{fit(asker.user_id, 40)}`, {fit(asker.channel, 10)})")
    more = len(request.askers) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def person(officer: str) -> str:
    """A Slack user id as a mention (officers only, in officers' places); anything else as text."""
    if re.fullmatch(r"[UW][A-Z0-9]{2,20}", officer):
        return f"<@{officer}>"
    return fit(officer, 100)


def status_line(request: InfoRequest) -> str:
    words = f"*{_STATE_WORDS.get(request.state, escape(request.state))}*"
    if request.assigned_to and request.state == ASSIGNED:
        words += f" to {person(request.assigned_to)}"
    if request.state == ANSWERED and request.answered_by:
        words += f" by {person(request.answered_by)}"
    if request.state == DECLINED and request.reason:
        words += f": {fit(request.reason, 500)}"
    if request.state == DUPLICATE and request.duplicate_of:
        words += f" of #{request.duplicate_of}"
    return f"Status: {words} · asked {human_date(request.created_at)}"


def request_actions(request: InfoRequest) -> dict | None:
    """Officers' buttons: work on an open request; close an answered one (so it can be purged)."""
    value = str(request.request_id)
    if request.state in (OPEN, ASSIGNED):
        elements = [
            button("Assign to me", ASSIGN, value, "primary"),
            button("Answer", ANSWER_OPEN, value),
            button("Decline", DECLINE_OPEN, value, "danger"),
        ]
    elif request.state == ANSWERED:
        elements = [button("Close", CLOSE, value)]
    else:
        return None
    return {
        "type": "actions",
        "block_id": f"clerk_request_{request.request_id}",
        "elements": elements,
    }


def request_message(request: InfoRequest, nearest_shown: int = 3) -> SlackMessage:
    """A request as officers see it in their channel: question, asker, nearest passages, buttons;
    a promise found in the papers reads as one, with the passage where it was made."""
    if request.is_promise:
        return _with_status(request, _promise_blocks(request), "a promise in the papers")
    blocks = [
        {"type": "header", "text": plain(f"Request #{request.request_id}", MAX_HEADER_TEXT)},
        section(f"*Question*\n{blockquote(request.question, 2500)}"),
        context(f"Asked by {asker_line(request)}"),
    ]
    if request.nearest:
        blocks.append(section("*Nearest passages found* (not judged an answer)"))
        for citation in request.nearest[:nearest_shown]:
            blocks.extend(citation_blocks(citation))
    return _with_status(request, blocks)


def _promise_blocks(request: InfoRequest) -> list[dict]:
    """What was promised (the meeting, the paper or item, the page, the sentence, who promised
    whom: the question bot.promises.log wrote), then the passage it stands in, linked."""
    header = f"Request #{request.request_id}: a promise in the papers"
    blocks = [
        {"type": "header", "text": plain(header, MAX_HEADER_TEXT)},
        section(f"*Promised in the papers*\n{blockquote(request.question, 2500)}"),
        context("Found in the papers when they were indexed; no councillor asked it."),
    ]
    if request.nearest:
        blocks.append(section("*Where it was promised*"))
        blocks.extend(citation_blocks(request.nearest[0]))
    return blocks


def _with_status(request: InfoRequest, blocks: list[dict], kind: str = "") -> SlackMessage:
    """The answer (once there is one), the status line and the officers' buttons."""
    if request.answer:
        blocks.append(section(f"*Answer*\n{fit(request.answer, 2900)}"))
    blocks.append(context(status_line(request)))
    actions = request_actions(request)
    if actions:
        blocks.append(actions)
    label = f"Request #{request.request_id}" + (f" ({kind})" if kind else "")
    text = fit(f"{label}: {request.question}", MAX_FALLBACK_TEXT)
    return SlackMessage(text, blocks[:MAX_MESSAGE_BLOCKS])


def officer_answer_message(request: InfoRequest) -> SlackMessage:
    """The officer's answer, as it reaches the councillor in their thread or DM."""
    head = f"An officer has answered your question (request #{request.request_id}):"
    blocks = [
        section(f"{head}\n{blockquote(request.question, 500)}"),
        section(fit(request.answer or "", MAX_SECTION_TEXT)),
        context(f"Officer response · {human_date(request.answered_at)}"),
    ]
    return SlackMessage(fit(f"{head} {request.answer or ''}", MAX_FALLBACK_TEXT), blocks)


def _metadata(request: InfoRequest, channel: str | None, ts: str | None) -> str:
    return json.dumps({"request_id": request.request_id, "channel": channel, "ts": ts})


def answer_modal(request: InfoRequest, channel: str | None, ts: str | None) -> dict:
    """The modal in which an officer writes the answer to a request."""
    return {
        "type": "modal",
        "callback_id": ANSWER_VIEW,
        "private_metadata": _metadata(request, channel, ts),
        "title": plain(f"Answer #{request.request_id}", MAX_VIEW_TITLE),
        "submit": plain("Send answer", MAX_VIEW_TITLE),
        "close": plain("Cancel", MAX_VIEW_TITLE),
        "blocks": [
            section(f"*Question*\n{blockquote(request.question, 2500)}"),
            context(f"Asked by {asker_line(request)}"),
            {
                "type": "input",
                "block_id": "answer",
                "label": plain("Your answer (sent to the councillor as written)", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "text",
                    "multiline": True,
                    "min_length": 1,
                    "max_length": MAX_INPUT,
                },
            },
        ],
    }


def decline_modal(request: InfoRequest, channel: str | None, ts: str | None) -> dict:
    """The modal asking why a request is declined."""
    return {
        "type": "modal",
        "callback_id": DECLINE_VIEW,
        "private_metadata": _metadata(request, channel, ts),
        "title": plain(f"Decline #{request.request_id}", MAX_VIEW_TITLE),
        "submit": plain("Decline", MAX_VIEW_TITLE),
        "close": plain("Cancel", MAX_VIEW_TITLE),
        "blocks": [
            section(f"*Question*\n{blockquote(request.question, 2500)}"),
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Why is this declined?", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": "text",
                    "multiline": True,
                    "min_length": 1,
                    "max_length": 1000,
                },
            },
        ],
    }


def _home(title: str, intro: str, rows: list[list[dict]], empty: str) -> dict:
    blocks = [{"type": "header", "text": plain(title, MAX_HEADER_TEXT)}, section(intro)]
    if not rows:
        blocks.append(context(empty))
    shown = 0
    for row in rows:
        if len(blocks) + len(row) + 2 > MAX_VIEW_BLOCKS:
            break
        blocks.append({"type": "divider"})
        blocks.extend(row)
        shown += 1
    if shown < len(rows):
        blocks.append(context(f"…and {len(rows) - shown} more; see `clerk requests list`."))
    return {"type": "home", "blocks": blocks}


def councillor_home(requests: Sequence[InfoRequest]) -> dict:
    """App Home for a councillor: their questions waiting for (or answered by) officers."""
    rows = []
    for request in requests:
        row = [
            section(f"*#{request.request_id}*\n{blockquote(request.question, 600)}"),
            context(status_line(request)),
        ]
        if request.answer:
            row.insert(1, section(f"*Answer*\n{fit(request.answer, 1500)}"))
        rows.append(row)
    return _home(
        "Your questions to officers",
        "Ask me anything about the committee papers: mention me in a channel, send me a direct "
        "message, or use `/clerk`. Questions the papers do not answer go to officers and appear "
        "here.",
        rows,
        "You have no open requests.",
    )


def officer_home(queue: Sequence[InfoRequest]) -> dict:
    """App Home for an officer: the queue of open and assigned requests, oldest first."""
    rows = []
    for request in queue:
        row = [
            section(f"*#{request.request_id}*\n{blockquote(request.question, 600)}"),
            context(f"Asked by {asker_line(request)}"),
            context(status_line(request)),
        ]
        actions = request_actions(request)
        if actions:
            row.append(actions)
        rows.append(row)
    return _home(
        "Requests waiting for officers",
        "Questions councillors asked that the papers did not answer. Assign one to yourself, "
        "answer it, or decline it with a reason.",
        rows,
        "The queue is empty.",
    )


def refusal_text() -> str:
    return (
        "Sorry, only officers handling information requests can do that. "
        "If you think you should be able to, please ask Democratic Services."
    )


def apology_text() -> str:
    return "Sorry, something went wrong while I was working on that. Please try again shortly."
