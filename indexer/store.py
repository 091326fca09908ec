"""The published index: a directory of plain files, built aside and swapped in atomically.

    <home>/index               symlink to the build that is being served
    <home>/builds/<build id>/  params.json   model, dimension, chunking, format version, built_at
                               vectors.npy   one unit vector per chunk row (float32)
                               meta.sqlite3  documents, chunks (row order = vector order), files
                               bm25.npz, bm25_vocab.json

A build is written completely, fsynced, then `index` is re-pointed with one rename, so a reader
sees the old build or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from indexer.errors import IndexDamagedError, IndexIncompatibleError, IndexMissingError
from indexer.lexical import BM25Index, passage_text

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
    built_at: str = ""

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
    return Params(**json.loads((build / "params.json").read_text(encoding="utf-8")))


def read_build(index_link: Path, expected: Params | None = None) -> BuildContents:
    """Load a whole build; IndexMissingError before the first publish, IndexDamagedError when
    its files cannot be read or do not agree with each other."""
    build = build_dir_of(index_link)
    if build is None or not (build / "params.json").is_file():
        raise IndexMissingError(f"no index published in {index_link.parent}; run `clerk index`")
    try:
        params = read_params(build)
    except (ValueError, TypeError, OSError) as exc:
        raise _damaged(build, exc) from exc
    if expected is not None and not params.compatible(expected):
        raise IndexIncompatibleError(
            f"index was built with model {params.model!r}, {params.chunk_words}-word chunks, "
            f"format {params.format_version}; settings ask for {expected.model!r}, "
            f"{expected.chunk_words}-word chunks, format {expected.format_version}: "
            "re-run `clerk index`"
        )
    try:
        contents = _read_contents(build, params)
    except (ValueError, TypeError, OSError, sqlite3.DatabaseError) as exc:
        raise _damaged(build, exc) from exc
    if contents.vectors.shape != (len(contents.chunks), params.dimension):
        raise _damaged(build, ValueError("vectors and passages do not match"))
    return contents


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
    vectors = np.load(build / "vectors.npy", allow_pickle=False)
    return BuildContents(params, documents, chunks, vectors, files)


def _damaged(build: Path, exc: Exception) -> IndexDamagedError:
    return IndexDamagedError(
        f"the published index ({build.name}) is damaged: {type(exc).__name__}: {exc}; "
        "`clerk index` or the next nightly run rebuilds it from the papers"
    )


def lexical_index(contents: BuildContents) -> BM25Index:
    """BM25 over a build's passages."""
    docs = contents.documents
    return BM25Index.build(
        [passage_text(docs[c.doc_id].committee, c.heading, c.text) for c in contents.chunks]
    )


def publish(home: Path, contents: BuildContents, bm25: BM25Index) -> Path:
    """Write a new build beside the old ones, then point the index link at it atomically."""
    builds = home / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    staging = builds / f".{build_id}.tmp"
    staging.mkdir()
    try:
        _write_build(staging, contents, bm25)
        final = builds / build_id
        staging.rename(final)
        _fsync_dir(builds)
        _swap_link(home / "index", Path("builds") / build_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _remove_old_builds(builds, keep={build_id})
    return final


def _write_build(directory: Path, contents: BuildContents, bm25: BM25Index) -> None:
    params = asdict(contents.params) | {
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    }
    (directory / "params.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    with open(directory / "vectors.npy", "wb") as f:
        np.save(f, np.ascontiguousarray(contents.vectors, dtype=np.float32), allow_pickle=False)
    bm25.save(directory)
    with closing(sqlite3.connect(directory / "meta.sqlite3")) as db:
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [tuple(asdict(d).values()) for d in contents.documents.values()],
        )
        db.executemany(
            "INSERT INTO chunks (row, chunk_id, doc_id, page, heading, text) VALUES (?,?,?,?,?,?)",
            [
                (i, c.chunk_id, c.doc_id, c.page, c.heading, c.text)
                for i, c in enumerate(contents.chunks)
            ],
        )
        db.executemany(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?,?)",
            [tuple(asdict(f).values()) for f in contents.files],
        )
        db.commit()
    for path in directory.iterdir():
        _fsync_file(path)


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
