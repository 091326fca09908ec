"""Incremental re-index: the published index comes to mirror the given folders.

Unchanged files (same size and modification time, or same bytes) are neither read nor embedded;
changed files are re-read; vanished files leave; byte-identical copies under other names are
indexed once. Failures are recorded with their reason and not retried until the file changes.
A new build is published only when something changed.

Papers to read go to worker processes (`indexer.extract`) a few ahead of the run, and their
passages are embedded as the run accepts them, so reading costs little beside embedding. The run
still decides paper by paper in the order the folders list them, so the build is the same
whichever worker finishes first, and the same as reading in one process.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from indexer.chunk import CHUNKER_VERSION
from indexer.embed import Embedder
from indexer.errors import (
    ConfigError,
    IndexDamagedError,
    IndexIncompatibleError,
    IndexMissingError,
)
from indexer.extract import PaperReader, ReadJob
from indexer.files import exclusive_lock
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
    remove_abandoned_staging,
)
from indexer.types import IndexSummary, Paper

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]  # (stage, done, total)
EMBED_BATCH = 256  # passages per call to the model


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
        if removed := remove_abandoned_staging(settings.home):
            log.info("removed %d half-written builds left by an interrupted run", removed)
        params = Params(
            embedder.name,
            _dimension(settings, embedder),
            settings.chunk_words,
            chunker=CHUNKER_VERSION,
        )
        previous = _previous_build(settings, params)
        encoding = _Encoding(embedder, progress)
        with PaperReader(settings.index_workers, settings.paper_timeout) as reader:
            plan = _plan(previous, roots, settings, reader, encoding, progress)
        if not plan.changed:
            return _summary(plan, previous, published=False)
        contents = _assemble(previous, plan, params, encoding.finish())
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
        previous = read_build(settings.index_dir, expected=params)
    except IndexMissingError:
        return None
    except (IndexIncompatibleError, IndexDamagedError) as exc:
        log.warning("rebuilding from scratch: %s", exc)
        return None
    if previous.params.chunker != params.chunker:
        log.warning(
            "papers are now cut into passages differently (chunker %d, index built with %d): "
            "re-reading every paper",
            params.chunker,
            previous.params.chunker,
        )
        return None
    return previous


def _plan(
    previous: BuildContents | None,
    roots: list[Path],
    settings: IndexSettings,
    reader: PaperReader,
    encoding: _Encoding,
    progress: Progress | None,
) -> _Plan:
    plan = _Plan(old_texts=_text_signatures(previous))
    old_files = {(f.root, f.source): f for f in previous.files} if previous else {}
    old_docs = previous.documents if previous else {}
    found = [(root.resolve(), item) for root in roots for item in _discover_root(root)]
    states = [_file_state(item, old_files.get((str(root), item.source))) for root, item in found]
    ahead = _expected_reads(found, states, old_files, old_docs, settings)
    if ahead:
        encoding.load()  # first: a one-time encoder build must not run beside the workers
        reader.expect(ahead)
    new = _NewPaper(reader, encoding, settings.chunk_words)
    seen: set[tuple[str, str]] = set()
    for done, ((root, item), state) in enumerate(zip(found, states, strict=True), start=1):
        key = (str(root), item.source)
        seen.add(key)
        if progress:
            progress("reading", done, len(found))
        if isinstance(item, Skipped):
            _record_failure(plan, key, None, item.reason)
            plan.changed |= old_files.get(key) is None or old_files[key].status != "failed"
            continue
        if isinstance(state, str):
            _record_failure(plan, key, None, state)
            plan.changed = True
            continue
        _plan_paper(plan, key, item, state, old_files.get(key), old_docs, new)
    removed = set(old_files) - seen
    plan.counts["removed"] = sum(1 for k in removed if old_files[k].status == "indexed")
    plan.changed |= bool(removed)
    return plan


@dataclass(frozen=True)
class _FileState:
    """A paper's file as found this run: its row (size, time, hash) and whether it was touched."""

    row: FileRow
    same_stat: bool


def _file_state(item: Paper | Skipped, old: FileRow | None) -> _FileState | str:
    """Size, modification time and hash (the stored one if the file looks untouched); or why not."""
    if isinstance(item, Skipped):
        return item.reason
    try:
        stat = item.path.stat()
        same_stat = old is not None and (old.size, old.mtime_ns) == (
            stat.st_size,
            stat.st_mtime_ns,
        )
        digest = old.sha256 if same_stat and old and old.sha256 else _sha256(item.path)
    except OSError as exc:
        return f"cannot read: {exc}"
    row = FileRow("", item.source, stat.st_size, stat.st_mtime_ns, digest, None, "indexed")
    return _FileState(row, same_stat)


def _expected_reads(
    found: list[tuple[Path, Paper | Skipped]],
    states: list[_FileState | str],
    old_files: dict[tuple[str, str], FileRow],
    old_docs: dict[str, DocumentRow],
    settings: IndexSettings,
) -> list[ReadJob]:
    """The papers this run will read (new bytes, once each), in order, so workers start on them.

    It mirrors `_plan_paper`; a paper it misses is read when asked for, one it wrongly names is
    read ahead for nothing."""
    jobs: list[ReadJob] = []
    ids: set[str] = set()
    for (root, item), state in zip(found, states, strict=True):
        if not isinstance(item, Paper) or not isinstance(state, _FileState):
            continue
        digest = state.row.sha256 or ""
        doc_id = digest[:20]
        old = old_files.get((str(root), item.source))
        if doc_id in old_docs or doc_id in ids:
            continue
        if old is not None and old.sha256 == digest and old.status in ("failed", "duplicate"):
            continue  # failed before, or a copy of a paper kept: neither is read again
        ids.add(doc_id)
        jobs.append(ReadJob(item, doc_id, settings.chunk_words))
    return jobs


def _discover_root(root: Path) -> list[Paper | Skipped]:
    if not root.is_dir():
        # Refuse rather than mirror an empty folder: a wrong path must not empty the index.
        raise ConfigError(f"papers folder not found: {root}")
    return list(discover(root))


@dataclass(frozen=True)
class _NewPaper:
    """Where a new paper's passages come from (the reader) and go (the encoding)."""

    reader: PaperReader
    encoding: _Encoding
    chunk_words: int


def _plan_paper(
    plan: _Plan,
    key: tuple[str, str],
    paper: Paper,
    state: _FileState,
    old: FileRow | None,
    old_docs: dict[str, DocumentRow],
    new: _NewPaper,
) -> None:
    same_stat = state.same_stat
    digest = state.row.sha256 or ""
    stat_row = replace(state.row, root=key[0])
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
    _read_new_paper(plan, key, paper, document, stat_row, old, new)


def _read_new_paper(plan, key, paper, document, stat_row, old, new: _NewPaper) -> None:
    plan.changed = True
    doc_id = document.doc_id
    extracted = new.reader.read(ReadJob(paper, doc_id, new.chunk_words))
    if extracted.failure is not None:
        _record_failure(plan, key, stat_row, extracted.failure)
        return
    chunks = extracted.chunks
    signature = text_signature(c.text for c in chunks)
    if signature in plan.texts:  # same text as a paper already kept: one source, two places
        plan.counts["duplicates"] += 1
        plan.files.append(replace(stat_row, doc_id=plan.texts[signature], status="duplicate"))
        return
    plan.texts[signature] = doc_id
    rows = [ChunkRow(c.chunk_id, doc_id, c.page, c.heading, c.text) for c in chunks]
    plan.new_chunks[doc_id] = rows
    new.encoding.add(rows)
    plan.documents[doc_id] = replace(document, pages=extracted.pages)
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
    new_vectors: np.ndarray,
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
    if len(fresh) != len(new_vectors):
        raise RuntimeError(f"{len(fresh)} new passages but {len(new_vectors)} vectors")
    old_vectors = previous.vectors[kept_rows] if previous is not None and kept_rows else None
    parts = [v for v in (old_vectors, new_vectors) if v is not None and len(v)]
    vectors = np.vstack(parts) if parts else np.zeros((0, params.dimension), np.float32)
    return BuildContents(params, plan.documents, chunks + fresh, vectors, plan.files)


class _Encoding:
    """New passages embedded as the run accepts them, in slices of EMBED_BATCH, while the
    workers read on. The slices are those one call over all new passages would make, so the
    vectors do not depend on how fast papers arrive."""

    def __init__(self, embedder: Embedder, progress: Progress | None):
        self.embedder = embedder
        self.progress = progress
        self.waiting: list[str] = []
        self.parts: list[np.ndarray] = []
        self.done = 0

    def load(self) -> None:
        """Load the model now (building the int8 encoder if it is missing) with one tiny call."""
        self.embedder.embed(["committee papers"])

    def add(self, chunks: list[ChunkRow]) -> None:
        """Queue passages; embed every full slice."""
        self.waiting.extend(f"{c.heading}\n{c.text}" for c in chunks)
        while len(self.waiting) >= EMBED_BATCH:
            self._embed(EMBED_BATCH)

    def finish(self) -> np.ndarray:
        """Every queued passage's vector, in the order they were added."""
        if self.waiting:
            self._embed(len(self.waiting))
        if not self.parts:
            return np.zeros((0, self.embedder.dimension), np.float32)
        return np.vstack(self.parts)

    def _embed(self, count: int) -> None:
        texts, self.waiting = self.waiting[:count], self.waiting[count:]
        self.parts.append(self.embedder.embed(texts))
        self.done += count
        if self.progress:
            self.progress("embedding", self.done, self.done + len(self.waiting))


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
