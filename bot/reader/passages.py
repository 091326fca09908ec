"""Kept passage projections: what the reader needs of a passage, computed once, not per question.

The reader's passage half (passage.onnx) turns a passage's token vectors into unit vectors in
its matching and answer-kind spaces. Encoding a passage is most of a question's reading cost, so
`clerk reader build` projects every indexed passage and each index run projects the new ones,
into <reader dir>/passages.sqlite3: keyed by a digest of the text the reader reads (an unchanged
passage is never projected twice, a changed one never read stale), tagged with the graphs' sha256
(a rebuilt reader never reads another reader's projections), kept as int8 (unit vectors times
127: a quarter of float32, and the scores agree; `clerk reader build` records how well).
A passage not kept yet (an officer's answer published a minute ago) is projected when read.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.reader.artifact import open_graph

log = logging.getLogger(__name__)
STORE = "passages.sqlite3"
SCALE = 127.0  # components of unit vectors, kept as int8
BATCH = 16  # passages per run of the passage graph

Tokens = tuple[np.ndarray, np.ndarray]  # word-piece ids, token vectors
Encode = Callable[[list[str]], list[Tokens]]


@dataclass(frozen=True)
class Projected:
    """One passage as the pair graph reads it."""

    ids: np.ndarray  # (tokens,) uint16 word-piece ids: which question words occur verbatim
    keys: np.ndarray  # (tokens, 128) int8: the matching space
    kinds: np.ndarray  # (tokens, 64) int8: the answer-kind space


def digest(text: str) -> bytes:
    """The key a passage's projections are kept under: its reader text, hashed."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


def _int8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(unit * SCALE), -127, 127).astype(np.int8)


def unit(kept: np.ndarray) -> np.ndarray:
    """int8 components back to float32 for the pair graph."""
    return kept.astype(np.float32) / SCALE


class Projector:
    """Runs the passage graph over token vectors (onnxruntime; loaded on first use)."""

    def __init__(self, graph: Path):
        self.graph = graph
        self._session: Any = None
        self._lock = threading.Lock()

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                self._session = open_graph(self.graph)
            return self._session

    def project(self, encoded: list[Tokens]) -> list[Projected]:
        """Each passage's projections, in order (batched by length, padding cut off again)."""
        found: list[Projected | None] = [None] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            longest = max(len(encoded[i][0]) for i in rows)
            dim = encoded[rows[0]][1].shape[1]
            batch = np.zeros((len(rows), longest, dim), np.float32)
            for r, i in enumerate(rows):
                batch[r, : len(encoded[i][0])] = encoded[i][1]
            keys, kinds = self.session.run(None, {"p_vectors": batch})
            for r, i in enumerate(rows):
                ids = encoded[i][0]
                size = len(ids)
                found[i] = Projected(
                    ids.astype(np.uint16), _int8(keys[r, :size]), _int8(kinds[r, :size])
                )
        return [p for p in found if p is not None]


class PassageStore:
    """The kept projections of one reader build (thread-safe; reads are cheap lookups)."""

    def __init__(self, path: Path, reader_sha: str):
        self.path = path
        self.reader_sha = reader_sha
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS projections (digest BLOB PRIMARY KEY, "
                "tokens INTEGER NOT NULL, ids BLOB NOT NULL, keys BLOB NOT NULL, "
                "kinds BLOB NOT NULL)"
            )

    def close(self) -> None:
        self._db.close()

    def _current(self) -> bool:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'reader'").fetchone()
        return row is not None and row[0] == self.reader_sha

    def get(self, digests: list[bytes]) -> dict[bytes, Projected]:
        """Those of the passages kept for this reader (none if the store is another reader's)."""
        if not digests:
            return {}
        marks = ",".join("?" * len(digests))
        with self._lock:
            if not self._current():
                return {}
            rows = self._db.execute(
                f"SELECT digest, tokens, ids, keys, kinds FROM projections "  # noqa: S608
                f"WHERE digest IN ({marks})",
                digests,
            ).fetchall()
        return {bytes(d): _decoded(n, ids, keys, kinds) for d, n, ids, keys, kinds in rows}

    def keep(self, texts: list[str], encode: Encode, projector: Projector) -> dict[str, int]:
        """Make the store hold exactly these passages' projections: project those missing (in
        batches, each committed, so an interrupted run keeps its work), drop the rest."""
        wanted = {digest(t): t for t in texts}
        with self._lock, self._db:
            if not self._current():  # another reader's projections: start again
                self._db.execute("DELETE FROM projections")
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('reader', ?)", (self.reader_sha,)
                )
        with self._lock:
            held = {bytes(d) for (d,) in self._db.execute("SELECT digest FROM projections")}
        missing = [d for d in wanted if d not in held]
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            projected = projector.project(encode([wanted[d] for d in chunk]))
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO projections VALUES (?, ?, ?, ?, ?)",
                    [_row(d, p) for d, p in zip(chunk, projected, strict=True)],
                )
        stale = [d for d in held if d not in wanted]
        with self._lock, self._db:
            self._db.executemany("DELETE FROM projections WHERE digest = ?", [(d,) for d in stale])
        return {
            "projected": len(missing),
            "kept": len(wanted) - len(missing),
            "dropped": len(stale),
        }


def _row(key: bytes, p: Projected) -> tuple:
    return (key, len(p.ids), p.ids.tobytes(), p.keys.tobytes(), p.kinds.tobytes())


def _decoded(tokens: int, ids: bytes, keys: bytes, kinds: bytes) -> Projected:
    return Projected(
        np.frombuffer(ids, np.uint16),
        np.frombuffer(keys, np.int8).reshape(tokens, -1),
        np.frombuffer(kinds, np.int8).reshape(tokens, -1),
    )


def open_store(folder: Path, reader_sha: str) -> PassageStore:
    return PassageStore(folder / STORE, reader_sha)
