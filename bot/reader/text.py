"""What the reader reads for a passage: its meeting, its heading (which names the paper) and its
text, so that "at the March Cabinet" can be checked against the passage itself."""

from __future__ import annotations

from datetime import date

from indexer.store import BuildContents


def reader_text(committee: str, meeting_date: str | None, heading: str, text: str) -> str:
    """'Cabinet, 4 March 2025. <heading>\\n<text>'."""
    when = ""
    if meeting_date:
        try:
            day = date.fromisoformat(meeting_date)
            when = f", {day.day} {day:%B %Y}"
        except ValueError:
            when = f", {meeting_date}"
    return f"{committee}{when}. {heading}\n{text}"


def passage_texts(contents: BuildContents) -> list[str]:
    """What the reader reads for each chunk row of a build."""
    docs = contents.documents
    return [
        reader_text(docs[c.doc_id].committee, docs[c.doc_id].meeting_date, c.heading, c.text)
        for c in contents.chunks
    ]
