"""Answer -> text for a terminal (pure)."""

from __future__ import annotations

import textwrap

from bot.types import Answer, Citation


def render_answer(answer: Answer, width: int = 100) -> str:
    """The short answer, then each cited passage with where it comes from."""
    lines = [textwrap.fill(answer.text, width)]
    if answer.citations:
        lines.append("")
        lines.extend(_citation_block(n, c, width) for n, c in enumerate(answer.citations, 1))
    elif answer.nearest:
        lines.append("\nClosest passages (they do not answer it):")
        lines.extend(_citation_block(n, c, width) for n, c in enumerate(answer.nearest[:3], 1))
    return "\n".join(lines)


def cite_line(citation: Citation) -> str:
    """'Title — Committee, 2025-01-30, page 3'."""
    parts = [citation.committee, citation.meeting_date or "", _page(citation)]
    return f"{citation.title} — {', '.join(p for p in parts if p)}"


def _page(citation: Citation) -> str:
    return f"page {citation.page}" if citation.page else ""


def _citation_block(number: int, citation: Citation, width: int) -> str:
    quote = textwrap.fill(
        citation.quote, width, initial_indent="    > ", subsequent_indent="    > "
    )
    link = f"\n    {citation.url}" if citation.url else ""
    return f"[{number}] {cite_line(citation)}{link}\n{quote}"
