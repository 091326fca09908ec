"""The published index: a directory of plain files, built aside and swapped in atomically.

    <home>/index               symlink to the build that is being served
    <home>/builds/<build id>/  params.json   model, dimension, chunking, format version,
                                             FAISS index type and parameters, built_at
                               vectors.npy   one unit vector per chunk row (float32)
                               dense.faiss   the FAISS index of those vectors (`indexer.dense`)
                               meta.sqlite3  documents, chunks (row order = vector order), files
                               passage_docs.npy, passage_keys.npy
                                             per row: its document's number (documents in
                                             insertion order) and a hash of its normalised text
                               bm25_*.npy, bm25_terms.bin, bm25.json  (`indexer.bm25`)

A build is written completely, fsynced, then `index` is re-pointed with one rename, so a reader
sees the old build or the new one, never half of either. Serving (`open_served`) maps the arrays
and reads passages from SQLite when they are found, so its memory does not hold every passage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from indexer import dense
from indexer.bm25 import BM25Index
from indexer.errors import IndexDamagedError, IndexIncompatibleError, IndexMissingError
from indexer.lexical import passage_text
from indexer.types import DenseSpec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KEEP_OLD_BUILDS = 1  # readers that loaded the previous build keep working while it lingers

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, root TEXT NOT NULL, title TEXT NOT NULL,
    council TEXT NOT NULL, committee TEXT NOT NULL, meeting_date TEXT, site TEXT, url TEXT,
    kind TEXT NOT NULL, pages INTEGER NOT NULL
);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES documents,
    page INTEGER, heading TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX chunks_by_id ON chunks (chunk_id);
CREATE TABLE files (
    root TEXT NOT NULL, source TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, sha256 TEXT,
    doc_id TEXT, status TEXT NOT NULL, reason TEXT, PRIMARY KEY (root, source)
);
"""


@dataclass(frozen=True)
class Params:
    """What a build was made with; a different model or chunking means a full rebuild."""

    model: str
    dimension: int
    chunk_words: int
    format_version: int = FORMAT_VERSION
    # how papers were cut into passages (indexer.chunk.CHUNKER_VERSION); a newer cut re-reads
    # every paper at the next run, while serving an older cut meanwhile is still right
    chunker: int = 1
    built_at: str = ""
    # chosen when published, by the number of passages; another type needs no re-embedding
    dense: DenseSpec = field(default_factory=DenseSpec)

    def compatible(self, other: Params) -> bool:
        return (self.model, self.dimension, self.chunk_words, self.format_version) == (
            other.model,
            other.dimension,
            other.chunk_words,
            other.format_version,
        )


@dataclass(frozen=True)
class DocumentRow:
    doc_id: str
    source: str
    root: str
    title: str
    council: str
    committee: str
    meeting_date: str | None
    site: str | None
    url: str | None
    kind: str
    pages: int


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: str
    doc_id: str
    page: int | None
    heading: str
    text: str


@dataclass(frozen=True)
class FileRow:
    root: str
    source: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    doc_id: str | None
    status: str  # "indexed", "duplicate" or "failed"
    reason: str | None = None


@dataclass
class BuildContents:
    """Everything one build holds, in memory."""

    params: Params
    documents: dict[str, DocumentRow]
    chunks: list[ChunkRow]
    vectors: np.ndarray
    files: list[FileRow]

    def places(self, doc_id: str) -> list[str]:
        """Every file (source path) where this document is published, copies included."""
        return [f.source for f in self.files if f.doc_id == doc_id]

    def doc_of(self, source: str) -> str | None:
        """The document a file was indexed as (itself or the copy it duplicates)."""
        return next((f.doc_id for f in self.files if f.source == source), None)


def build_dir_of(index_link: Path) -> Path | None:
    """The build directory the index link points at, or None before the first publish."""
    try:
        return index_link.parent / os.readlink(index_link)
    except (FileNotFoundError, OSError):
        return index_link if (index_link / "params.json").is_file() else None


def read_params(build: Path) -> Params:
    data = json.loads((build / "params.json").read_text(encoding="utf-8"))
    return Params(**data | {"dense": DenseSpec(**data.get("dense", {}))})


def read_build(index_link: Path, expected: Params | None = None) -> BuildContents:
    """Load a whole build; IndexMissingError before the first publish, IndexDamagedError when
    its files cannot be read or do not agree with each other."""
    build = build_dir_of(index_link)
    if build is None:
        raise IndexMissingError(f"no index published in {index_link.parent}; run `clerk index`")
    params = _published_params(build, expected)
    try:
        contents = _read_contents(build, params)
    except (ValueError, TypeError, OSError, sqlite3.DatabaseError) as exc:
        raise _damaged(build, exc) from exc
    if contents.vectors.shape != (len(contents.chunks), params.dimension):
        raise _damaged(build, ValueError("vectors and passages do not match"))
    return contents


@dataclass(frozen=True)
class Catalogue:
    """What a build holds, without reading its passages or vectors (status pages, health
    checks: cheap at a million passages)."""

    params: Params
    documents: dict[str, DocumentRow]
    files: list[FileRow]
    passages: int


def read_catalogue(index_link: Path) -> Catalogue:
    """The build's params, documents, files and passage count; errors as `read_build`."""
    build = build_dir_of(index_link)
    if build is None or not (build / "params.json").is_file():
        raise IndexMissingError(f"no index published in {index_link.parent}; run `clerk index`")
    try:
        params = read_params(build)
        with closing(sqlite3.connect(f"file:{build / 'meta.sqlite3'}?mode=ro", uri=True)) as db:
            docs = {row[0]: DocumentRow(*row) for row in db.execute("SELECT * FROM documents")}
            files = [FileRow(*r) for r in db.execute("SELECT * FROM files ORDER BY root, source")]
            (passages,) = db.execute("SELECT coalesce(max(row) + 1, 0) FROM chunks").fetchone()
        shape = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False).shape
    except (ValueError, TypeError, OSError, sqlite3.DatabaseError) as exc:
        raise _damaged(build, exc) from exc
    if shape != (passages, params.dimension):
        raise _damaged(build, ValueError("vectors and passages do not match"))
    return Catalogue(params, docs, files, int(passages))


def _published_params(build: Path, expected: Params | None) -> Params:
    """A build's params, checked against what the caller expects; IndexMissingError when the
    build holds none yet, IndexDamagedError when they cannot be read."""
    if not (build / "params.json").is_file():
        raise IndexMissingError(f"no index published in {build.parent}; run `clerk index`")
    try:
        params = read_params(build)
    except (ValueError, TypeError, OSError) as exc:
        raise _damaged(build, exc) from exc
    _check_compatible(params, expected)
    return params


def _check_compatible(params: Params, expected: Params | None) -> None:
    if expected is not None and not params.compatible(expected):
        raise IndexIncompatibleError(
            f"index was built with model {params.model!r}, {params.chunk_words}-word chunks, "
            f"format {params.format_version}; settings ask for {expected.model!r}, "
            f"{expected.chunk_words}-word chunks, format {expected.format_version}: "
            "re-run `clerk index`"
        )


def _read_contents(build: Path, params: Params) -> BuildContents:
    with closing(sqlite3.connect(f"file:{build / 'meta.sqlite3'}?mode=ro", uri=True)) as db:
        documents = {row[0]: DocumentRow(*row) for row in db.execute("SELECT * FROM documents")}
        chunks = [
            ChunkRow(*row)
            for row in db.execute(
                "SELECT chunk_id, doc_id, page, heading, text FROM chunks ORDER BY row"
            )
        ]
        files = [FileRow(*row) for row in db.execute("SELECT * FROM files ORDER BY root, source")]
    vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
    return BuildContents(params, documents, chunks, vectors, files)


def _damaged(build: Path, exc: Exception) -> IndexDamagedError:
    return IndexDamagedError(
        f"the published index ({build.name}) is damaged: {type(exc).__name__}: {exc}; "
        "`clerk index` or the next nightly run rebuilds it from the papers"
    )


def lexical_index(contents: BuildContents, index_link: Path | None = None) -> BM25Index:
    """BM25 over a build's passages; with the published index's link, passages it already
    counted (same passage, same committee) are not tokenized again."""
    docs = contents.documents
    texts = (passage_text(docs[c.doc_id].committee, c.heading, c.text) for c in contents.chunks)
    previous = _previous_bm25(index_link, contents) if index_link is not None else None
    if previous is None:
        return BM25Index.build(texts)
    bm25, old_rows = previous
    log.info("BM25: %d passages counted before, %d new", sum(r >= 0 for r in old_rows),
             sum(r < 0 for r in old_rows))  # fmt: skip
    return BM25Index.build(texts, bm25, old_rows)


def _previous_bm25(index_link: Path, contents: BuildContents):
    """The published BM25 table and, for each passage of `contents`, its row there or -1."""
    build = build_dir_of(index_link)
    try:
        bm25 = BM25Index.load(build) if build is not None else None
        if bm25 is None or build is None:
            return None
        with closing(sqlite3.connect(f"file:{build / 'meta.sqlite3'}?mode=ro", uri=True)) as db:
            # what BM25 reads of a passage: its text (in the chunk id), heading and committee
            old = {
                (chunk, heading, committee): row
                for row, chunk, heading, committee in db.execute(
                    "SELECT c.row, c.chunk_id, c.heading, d.committee FROM chunks c "
                    "JOIN documents d ON d.doc_id = c.doc_id"
                )
            }
    except (ValueError, TypeError, OSError, sqlite3.DatabaseError):
        return None  # unreadable: everything is counted again
    docs = contents.documents
    keys = ((c.chunk_id, c.heading, docs[c.doc_id].committee) for c in contents.chunks)
    return bm25, [old.get(key, -1) for key in keys]


def text_key(text: str) -> int:
    """A hash of a passage's words, to fold repeated passages."""
    normal = re.sub(r"\W+", " ", text.lower()).strip()
    return int.from_bytes(hashlib.blake2b(normal.encode(), digest_size=8).digest(), "little")


def build_dense(home: Path, contents: BuildContents, spec: DenseSpec) -> faiss.Index:
    """The FAISS index for a new build: the published one extended when the new build only
    appends passages to it with the same HNSW parameters, otherwise made from all vectors."""
    return dense.build(contents.vectors, spec, _extendable(home / "index", contents, spec))


def _extendable(index_link: Path, contents: BuildContents, spec: DenseSpec) -> faiss.Index | None:
    build = build_dir_of(index_link)
    if build is None or spec.kind != dense.HNSW:
        return None
    try:
        params = read_params(build)
        if params.dense != spec or params.model != contents.params.model:
            return None
        with closing(sqlite3.connect(f"file:{build / 'meta.sqlite3'}?mode=ro", uri=True)) as db:
            old = [row[0] for row in db.execute("SELECT chunk_id FROM chunks ORDER BY row")]
        if len(old) > len(contents.chunks) or any(
            c.chunk_id != o for c, o in zip(contents.chunks, old, strict=False)
        ):
            return None  # a passage left or moved: row ids would point at the wrong passages
        index = dense.read_for_extending(build, spec)
    except (ValueError, TypeError, OSError, RuntimeError, sqlite3.DatabaseError):
        return None  # unreadable: built afresh
    return index if index is not None and index.ntotal == len(old) else None


def publish(
    home: Path,
    contents: BuildContents,
    bm25: BM25Index,
    spec: DenseSpec | None = None,
    dense_index: faiss.Index | None = None,
) -> Path:
    """Write a new build beside the old ones, then point the index link at it atomically.
    `spec` is the FAISS index type (flat unless given); `dense_index` one already built."""
    spec = spec or DenseSpec()
    if dense_index is None:
        dense_index = build_dense(home, contents, spec)
    builds = home / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    staging = builds / f".{build_id}.tmp"
    staging.mkdir()
    try:
        _write_build(staging, contents, bm25, spec, dense_index)
        final = builds / build_id
        staging.rename(final)
        _fsync_dir(builds)
        _swap_link(home / "index", Path("builds") / build_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _remove_old_builds(builds, keep={build_id})
    return final


def _write_build(
    directory: Path,
    contents: BuildContents,
    bm25: BM25Index,
    spec: DenseSpec,
    dense_index: faiss.Index,
) -> None:
    params = asdict(contents.params) | {
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dense": asdict(spec),
    }
    (directory / "params.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    with open(directory / "vectors.npy", "wb") as f:
        np.save(f, np.ascontiguousarray(contents.vectors, dtype=np.float32), allow_pickle=False)
    dense.write(dense_index, directory)
    bm25.save(directory)
    number = {doc_id: i for i, doc_id in enumerate(contents.documents)}
    _save(directory / "passage_docs.npy", [number[c.doc_id] for c in contents.chunks], np.int32)
    _save(directory / "passage_keys.npy", [text_key(c.text) for c in contents.chunks], np.uint64)
    with closing(sqlite3.connect(directory / "meta.sqlite3")) as db:
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [tuple(asdict(d).values()) for d in contents.documents.values()],
        )
        db.executemany(
            "INSERT INTO chunks (row, chunk_id, doc_id, page, heading, text) VALUES (?,?,?,?,?,?)",
            (
                (i, c.chunk_id, c.doc_id, c.page, c.heading, c.text)
                for i, c in enumerate(contents.chunks)
            ),
        )
        db.executemany(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?)",
            [tuple(asdict(f).values()) for f in contents.files],
        )
        db.commit()
    for path in directory.iterdir():
        _fsync_file(path)


def _save(path: Path, values: list[int], dtype: type) -> None:
    with open(path, "wb") as f:
        np.save(f, np.asarray(values, dtype=dtype), allow_pickle=False)


class PassageTable:
    """One build's passages, read from its SQLite file when asked for (thread-safe)."""

    def __init__(self, path: Path):
        self._uri = f"file:{path}?mode=ro"
        self._db = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        weakref.finalize(self, self._db.close)

    def get(self, rows: list[int]) -> dict[int, ChunkRow]:
        """The passages at these rows."""
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        with self._lock:
            found = self._db.execute(
                "SELECT row, chunk_id, doc_id, page, heading, text FROM chunks "
                f"WHERE row IN ({marks})",
                [int(r) for r in rows],
            ).fetchall()
        return {row[0]: ChunkRow(*row[1:]) for row in found}

    def row_of(self, chunk_id: str) -> int | None:
        with self._lock:
            found = self._db.execute(
                "SELECT row FROM chunks WHERE chunk_id = ? ORDER BY row LIMIT 1", (chunk_id,)
            ).fetchone()
        return None if found is None else int(found[0])

    def count(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT coalesce(max(row) + 1, 0) FROM chunks").fetchone()[0]
            )

    def scan(self) -> Iterator[ChunkRow]:
        """Every passage in row order, a batch at a time (for builds older than their arrays)."""
        with closing(sqlite3.connect(self._uri, uri=True)) as db:
            query = "SELECT chunk_id, doc_id, page, heading, text FROM chunks ORDER BY row"
            cursor = db.execute(query)
            while batch := cursor.fetchmany(10_000):
                yield from (ChunkRow(*row) for row in batch)


@dataclass
class Served:
    """One published build opened for serving: arrays memory-mapped, passages left on disk."""

    build: Path
    params: Params
    documents: dict[str, DocumentRow]
    doc_ids: list[str]  # document number -> doc_id
    files: list[FileRow]
    vectors: np.ndarray  # (passages, dimension), mapped: its shape is checked, search reads FAISS
    dense_index: faiss.Index
    bm25: BM25Index
    passages: PassageTable
    passage_docs: np.ndarray  # document number of each row
    passage_keys: np.ndarray  # text hash of each row


def open_served(build: Path, expected: Params | None = None) -> Served:
    """Open a build for serving; the same errors as `read_build`."""
    params = _published_params(build, expected)
    try:
        served = _open(build, params)
    except (ValueError, TypeError, OSError, RuntimeError, sqlite3.DatabaseError) as exc:
        raise _damaged(build, exc) from exc
    rows = len(served.passage_docs)
    if served.vectors.shape != (rows, params.dimension) or served.bm25.size != rows:
        raise _damaged(build, ValueError("vectors, BM25 and passages do not match"))
    if served.dense_index.ntotal != rows or served.passages.count() != rows:
        raise _damaged(build, ValueError("the FAISS index and passages do not match"))
    return served


def _open(build: Path, params: Params) -> Served:
    with closing(sqlite3.connect(f"file:{build / 'meta.sqlite3'}?mode=ro", uri=True)) as db:
        docs = [DocumentRow(*row) for row in db.execute("SELECT * FROM documents ORDER BY rowid")]
        files = [FileRow(*row) for row in db.execute("SELECT * FROM files ORDER BY root, source")]
    documents = {d.doc_id: d for d in docs}
    passages = PassageTable(build / "meta.sqlite3")
    vectors = np.load(build / "vectors.npy", mmap_mode="r", allow_pickle=False)
    bm25 = BM25Index.load(build)
    if (build / "passage_keys.npy").is_file():
        passage_docs = np.load(build / "passage_docs.npy", allow_pickle=False)
        passage_keys = np.load(build / "passage_keys.npy", allow_pickle=False)
    else:  # a build from before these files: worked out once from its passages
        passage_docs, passage_keys = _derive(passages, documents)
    if bm25 is None:  # an older build, or another tokenizer: counted again here
        bm25 = BM25Index.build(
            passage_text(documents[c.doc_id].committee, c.heading, c.text) for c in passages.scan()
        )
    dense_index = dense.read(build, params.dense)
    if dense_index is None:
        dense_index = dense.build(np.asarray(vectors), params.dense)
    return Served(build, params, documents, [d.doc_id for d in docs], files, vectors,
                  dense_index, bm25, passages, passage_docs, passage_keys)  # fmt: skip


def _derive(passages: PassageTable, documents: dict[str, DocumentRow]):
    number = {doc_id: i for i, doc_id in enumerate(documents)}
    docs, keys = [], []
    for chunk in passages.scan():
        docs.append(number[chunk.doc_id])
        keys.append(text_key(chunk.text))
    return np.asarray(docs, np.int32), np.asarray(keys, np.uint64)


def _swap_link(link: Path, target: Path) -> None:
    temporary = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}")
    os.symlink(target, temporary)
    os.replace(temporary, link)  # rename(2) is atomic: readers see old or new
    _fsync_dir(link.parent)


def _remove_old_builds(builds: Path, keep: set[str]) -> None:
    finished = sorted(p for p in builds.iterdir() if p.is_dir() and not p.name.startswith("."))
    old = [p for p in finished if p.name not in keep]
    for path in old[: max(0, len(old) - KEEP_OLD_BUILDS)]:
        shutil.rmtree(path, ignore_errors=True)


def remove_abandoned_staging(home: Path) -> int:
    """Delete half-written builds left by a killed run; the caller holds the index lock, so
    no other build can be writing one. Returns how many were removed."""
    removed = 0
    for path in (home / "builds").glob(".*.tmp"):
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    _fsync_file(path)
