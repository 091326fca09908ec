"""Incremental re-index: the published index comes to mirror the given folders.

Unchanged files (same size and modification time, or same bytes) are neither read nor embedded;
changed files are re-read; vanished files leave; byte-identical copies under other names are
indexed once. Failures are recorded with their reason and not retried until the file changes.
A new build is published only when something changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.chunk import chunk_pages
from indexer.embed import Embedder
from indexer.errors import (
    ClerkError,
    ConfigError,
    IndexDamagedError,
    IndexIncompatibleError,
    IndexMissingError,
)
from indexer.files import exclusive_lock
from indexer.parse import read_pages
from indexer.settings import IndexSettings
from indexer.sources import Skipped, discover
from indexer.store import (
    BuildContents,
    ChunkRow,
    DocumentRow,
    FileRow,
    Params,
    build_dir_of,
    lexical_index,
    publish,
    read_build,
    read_params,
)
from indexer.types import IndexSummary, Paper

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def published_roots(settings: IndexSettings) -> list[Path]:
    """The folders the published index mirrors (empty before the first build)."""
    try:
        contents = read_build(settings.index_dir)
    except IndexMissingError:
        return []
    return [Path(root) for root in dict.fromkeys(f.root for f in contents.files)]


@dataclass
class _Plan:
    """What this run keeps, adds and drops, worked out before anything is embedded."""

    files: list[FileRow] = field(default_factory=list)
    documents: dict[str, DocumentRow] = field(default_factory=dict)
    new_chunks: dict[str, list[ChunkRow]] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: dict(added=0, updated=0, unchanged=0, removed=0, duplicates=0)
    )
    failed: list[dict] = field(default_factory=list)
    changed: bool = False
    # Papers with the same text under different bytes (a re-saved PDF, minutes filed again in the
    # next meeting's folder) are one source: text signature -> the document kept for it.
    texts: dict[str, str] = field(default_factory=dict)
    old_texts: dict[str, str] = field(default_factory=dict)  # doc_id -> signature, last build


def refresh(
    settings: IndexSettings,
    roots: list[Path],
    embedder: Embedder,
    progress: Progress | None = None,
) -> IndexSummary:
    """Bring the published index in line with the folders; publish only if anything changed."""
    with exclusive_lock(settings.home / "index.lock", "index build"):
        params = Params(embedder.name, _dimension(settings, embedder), settings.chunk_words)
        previous = _previous_build(settings, params)
        plan = _plan(previous, roots, settings, progress)
        if not plan.changed:
            return _summary(plan, previous, published=False)
        contents = _assemble(previous, plan, params, embedder, progress)
        publish(
            settings.home,
            contents,
            lexical_index(contents, settings.index_dir),
            settings.dense_spec(len(contents.chunks)),
        )
        return _summary(plan, contents, published=True)


def _dimension(settings: IndexSettings, embedder: Embedder) -> int:
    """The model's dimension, from the published build when it used the same model (no load)."""
    build = build_dir_of(settings.index_dir)
    if build is not None and (build / "params.json").is_file():
        try:
            published = read_params(build)
        except (ValueError, TypeError, OSError):  # damaged: rebuilt from scratch below
            return embedder.dimension
        if published.model == embedder.name:
            return published.dimension
    return embedder.dimension


def _previous_build(settings: IndexSettings, params: Params) -> BuildContents | None:
    try:
        return read_build(settings.index_dir, expected=params)
    except IndexMissingError:
        return None
    except (IndexIncompatibleError, IndexDamagedError) as exc:
        log.warning("rebuilding from scratch: %s", exc)
        return None


def _plan(
    previous: BuildContents | None,
    roots: list[Path],
    settings: IndexSettings,
    progress: Progress | None,
) -> _Plan:
    plan = _Plan(old_texts=_text_signatures(previous))
    old_files = {(f.root, f.source): f for f in previous.files} if previous else {}
    old_docs = previous.documents if previous else {}
    found = [(root.resolve(), item) for root in roots for item in _discover_root(root)]
    seen: set[tuple[str, str]] = set()
    for done, (root, item) in enumerate(found, start=1):
        key = (str(root), item.source)
        seen.add(key)
        if progress:
            progress("reading", done, len(found))
        if isinstance(item, Skipped):
            _record_failure(plan, key, None, item.reason)
            plan.changed |= old_files.get(key) is None or old_files[key].status != "failed"
            continue
        _plan_paper(plan, key, item, old_files.get(key), old_docs, settings)
    removed = set(old_files) - seen
    plan.counts["removed"] = sum(1 for k in removed if old_files[k].status == "indexed")
    plan.changed |= bool(removed)
    return plan


def _discover_root(root: Path) -> list[Paper | Skipped]:
    if not root.is_dir():
        # Refuse rather than mirror an empty folder: a wrong path must not empty the index.
        raise ConfigError(f"papers folder not found: {root}")
    return list(discover(root))


def _plan_paper(
    plan: _Plan,
    key: tuple[str, str],
    paper: Paper,
    old: FileRow | None,
    old_docs: dict[str, DocumentRow],
    settings: IndexSettings,
) -> None:
    try:
        stat = paper.path.stat()
    except OSError as exc:
        _record_failure(plan, key, None, f"cannot read: {exc}")
        plan.changed = True
        return
    same_stat = old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    digest = old.sha256 if same_stat and old and old.sha256 else _sha256(paper.path)
    stat_row = FileRow(key[0], key[1], stat.st_size, stat.st_mtime_ns, digest, None, "indexed")
    if old is not None and old.sha256 == digest and old.status == "failed":
        plan.failed.append({"source": paper.source, "reason": old.reason})
        plan.files.append(replace(stat_row, status="failed", reason=old.reason))
        plan.changed |= not same_stat
        return
    kept_copy = old is not None and old.status == "duplicate" and old.doc_id in plan.documents
    if kept_copy and old is not None and old.sha256 == digest:
        # a copy of a paper kept this run, unchanged: not read again
        plan.counts["duplicates"] += 1
        plan.files.append(replace(stat_row, doc_id=old.doc_id, status="duplicate"))
        plan.changed |= not same_stat
        return
    doc_id = digest[:20]
    if doc_id in plan.documents or doc_id in plan.new_chunks:
        plan.counts["duplicates"] += 1
        plan.files.append(replace(stat_row, doc_id=doc_id, status="duplicate"))
        plan.changed |= old is None or old.status != "duplicate" or not same_stat
        return
    document = _document_row(doc_id, key[0], paper)
    signature = plan.old_texts.get(doc_id)
    if doc_id in old_docs and signature in plan.texts:
        # kept last time, but a paper read earlier in this run has the same text: one source
        plan.counts["duplicates"] += 1
        plan.files.append(replace(stat_row, doc_id=plan.texts[signature], status="duplicate"))
        plan.changed = True
        return
    if doc_id in old_docs:
        # Same bytes as before: keep its chunks and vectors; metadata may still have moved on.
        plan.documents[doc_id] = replace(document, pages=old_docs[doc_id].pages)
        plan.files.append(replace(stat_row, doc_id=doc_id))
        if signature is not None:
            plan.texts[signature] = doc_id
        unchanged = (
            old is not None and old.doc_id == doc_id and old_docs[doc_id] == plan.documents[doc_id]
        )
        plan.counts["unchanged" if unchanged else "updated"] += 1
        plan.changed |= not (unchanged and same_stat)
        return
    _read_new_paper(plan, key, paper, document, stat_row, old, settings)


def _read_new_paper(plan, key, paper, document, stat_row, old, settings) -> None:
    plan.changed = True
    try:
        pages = read_pages(paper)
    except ClerkError as exc:
        _record_failure(plan, key, stat_row, str(exc))
        return
    except Exception as exc:  # a hostile file must never stop the run
        log.exception("unexpected failure reading %s", paper.source)
        _record_failure(plan, key, stat_row, f"unexpected error: {type(exc).__name__}: {exc}")
        return
    doc_id = document.doc_id
    chunks = chunk_pages(doc_id, paper.title, pages, settings.chunk_words)
    signature = text_signature(c.text for c in chunks)
    if signature in plan.texts:  # same text as a paper already kept: one source, two places
        plan.counts["duplicates"] += 1
        plan.files.append(replace(stat_row, doc_id=plan.texts[signature], status="duplicate"))
        return
    plan.texts[signature] = doc_id
    plan.new_chunks[doc_id] = [
        ChunkRow(c.chunk_id, doc_id, c.page, c.heading, c.text) for c in chunks
    ]
    plan.documents[doc_id] = replace(document, pages=len(pages))
    plan.files.append(replace(stat_row, doc_id=doc_id))
    plan.counts["updated" if old is not None else "added"] += 1


def _record_failure(plan: _Plan, key, stat_row: FileRow | None, reason: str) -> None:
    log.warning("skipped %s: %s", key[1], reason)
    plan.failed.append({"source": key[1], "reason": reason})
    row = stat_row or FileRow(key[0], key[1], None, None, None, None, "failed")
    plan.files.append(replace(row, doc_id=None, status="failed", reason=reason))


def _document_row(doc_id: str, root: str, paper: Paper) -> DocumentRow:
    m = paper.meeting
    return DocumentRow(
        doc_id,
        paper.source,
        root,
        paper.title,
        m.council,
        m.committee,
        m.meeting_date,
        m.site,
        paper.url,
        paper.kind,
        0,
    )


def _assemble(
    previous: BuildContents | None,
    plan: _Plan,
    params: Params,
    embedder: Embedder,
    progress: Progress | None = None,
) -> BuildContents:
    """Kept chunks with their old vectors, then new chunks with fresh ones."""
    kept_rows: list[int] = []
    chunks: list[ChunkRow] = []
    if previous is not None:
        for row, chunk in enumerate(previous.chunks):
            if chunk.doc_id in plan.documents and chunk.doc_id not in plan.new_chunks:
                kept_rows.append(row)
                chunks.append(chunk)
    fresh = [c for doc_chunks in plan.new_chunks.values() for c in doc_chunks]
    new_vectors = embed_chunks(embedder, fresh, progress)
    old_vectors = previous.vectors[kept_rows] if previous is not None and kept_rows else None
    parts = [v for v in (old_vectors, new_vectors) if v is not None and len(v)]
    vectors = np.vstack(parts) if parts else np.zeros((0, params.dimension), np.float32)
    return BuildContents(params, plan.documents, chunks + fresh, vectors, plan.files)


def embed_chunks(
    embedder: Embedder, chunks: list[ChunkRow], progress: Progress | None = None
) -> np.ndarray:
    """Embed what the model should read of each chunk: its heading context and its text."""
    texts = [f"{c.heading}\n{c.text}" for c in chunks]
    batch = 256
    parts = []
    for start in range(0, len(texts), batch):
        parts.append(embedder.embed(texts[start : start + batch]))
        if progress:
            progress("embedding", min(start + batch, len(texts)), len(texts))
    return np.vstack(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def _summary(plan: _Plan, contents: BuildContents | None, published: bool) -> IndexSummary:
    return IndexSummary(
        **plan.counts,
        chunks=len(contents.chunks) if contents else 0,
        failed=tuple(plan.failed),
        published=published,
    )


def text_signature(texts: Iterable[str]) -> str:
    """What two copies of one paper share whatever their bytes or page offsets: their passages."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(" ".join(text.split()).encode("utf-8") + b"\x00")
    return digest.hexdigest()


def _text_signatures(previous: BuildContents | None) -> dict[str, str]:
    """doc_id -> text signature for every document of the last build."""
    if previous is None:
        return {}
    texts: dict[str, list[str]] = {}
    for chunk in previous.chunks:
        texts.setdefault(chunk.doc_id, []).append(chunk.text)
    return {doc_id: text_signature(parts) for doc_id, parts in texts.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
