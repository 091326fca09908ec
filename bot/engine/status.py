"""What is indexed, for `clerk status` (read-only; the bot's view of the published build)."""

from __future__ import annotations

from collections import Counter

from bot.settings import Settings
from indexer.store import build_dir_of, read_catalogue


def index_status(settings: Settings) -> dict:
    """Counts, councils, committees, newest meeting, build time, model, and failures."""
    contents = read_catalogue(settings.index.index_dir)
    docs = contents.documents.values()
    statuses = Counter(f.status for f in contents.files)
    dates = [d.meeting_date for d in docs if d.meeting_date]
    return {
        "indexed": True,
        "build": str(build_dir_of(settings.index.index_dir)),
        "built_at": contents.params.built_at,
        "model": contents.params.model,
        "chunk_words": contents.params.chunk_words,
        "documents": len(contents.documents),
        "files": len(contents.files),
        "duplicates": statuses.get("duplicate", 0),
        "chunks": contents.passages,
        "pages": sum(d.pages for d in docs),
        "councils": sorted({d.council for d in docs}),
        "committees": sorted({f"{d.council}: {d.committee}" for d in docs}),
        "newest_meeting": max(dates) if dates else None,
        "failed": [
            {"source": f.source, "reason": f.reason} for f in contents.files if f.status == "failed"
        ],
    }


def render_status(status: dict) -> str:
    settings = [
        f"  {s['variable']}={s['value']}  ({s['help']})" for s in status.get("settings", [])
    ]
    tail = ["Settings:", *settings] if settings else []
    if not status.get("indexed"):
        return "\n".join([status.get("message", "nothing indexed yet"), *tail])
    lines = [
        f"Index built {status['built_at']} with {status['model']}",
        f"  {status['documents']} documents ({status['pages']} pages, {status['duplicates']} "
        f"duplicate copies), {status['chunks']} passages",
        f"  newest meeting: {status['newest_meeting'] or 'none dated'}",
        "  councils: " + ", ".join(status["councils"]),
        "  committees: " + "; ".join(status["committees"]),
    ]
    if status["failed"]:
        lines.append(f"  {len(status['failed'])} files could not be indexed:")
        lines.extend(f"    {f['source']}: {f['reason']}" for f in status["failed"])
    return "\n".join(lines + tail)
