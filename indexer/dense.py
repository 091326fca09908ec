"""The FAISS index of passage vectors, its type chosen by the number of passages.

Up to `CLERK_FLAT_MAX_PASSAGES` the search is exact (flat inner product on unit vectors: the
cosine); above it, a scan of every vector no longer fits a query's time budget and the build is
HNSW (`IndexHNSWFlat`, inner product). The type and its parameters (M, efConstruction, efSearch)
are recorded in the build's params, and a query always runs as its build was made, whatever the
settings of the process serving it.

The index is written into the build directory (`dense.faiss`) and read back memory-mapped
(vectors and graph), so the processes serving one build share those pages; the few vectors a
question re-scores are read from it too, never from vectors.npy.

Refresh: HNSW cannot remove a vector. When the new build keeps every passage of the previous
one in the same rows and only appends (the common nightly case: new papers), the previous index
is read and the new vectors added to it. When any passage left or moved (a paper withdrawn or
changed), the index is built again from all vectors: row numbers are the ids FAISS returns, so a
stale graph would point at the wrong passages. We chose that over an IndexIDMap2 with a flat
delta index for changes: removals are rare, the rebuild takes minutes even at a million
passages (bench/scale_1m.py) in a nightly job, and serving stays one index searched one way.

Filters (committee, dates): a filter admitting few passages is searched exactly over those
rows; otherwise the search skips passages outside it, and HNSW weighs proportionally more
candidates so that it still finds enough inside.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from indexer.types import FLAT, HNSW, DenseSpec

FILE = "dense.faiss"
EXACT_FILTERED = 10_000  # a filter admitting at most this many passages is searched exactly
MAX_EF = 4096


def build(vectors: np.ndarray, spec: DenseSpec, previous: faiss.Index | None = None) -> faiss.Index:
    """An index over `vectors` (row i has id i); `previous`, when given, already holds the
    first `previous.ntotal` rows and is extended in place."""
    index = previous if previous is not None else _empty(spec, vectors.shape[1])
    fresh = vectors[index.ntotal :]
    with _threads(os.cpu_count() or 1):  # building: every core
        for start in range(0, len(fresh), 65_536):
            index.add(np.ascontiguousarray(fresh[start : start + 65_536], dtype=np.float32))
    return index


def _empty(spec: DenseSpec, dimension: int) -> faiss.Index:
    if spec.kind == FLAT:
        return faiss.IndexFlatIP(dimension)
    if spec.kind == HNSW:
        index = faiss.IndexHNSWFlat(dimension, spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
        return index
    raise ValueError(f"unknown dense index type {spec.kind!r}")


def write(index: faiss.Index, directory: Path) -> None:
    faiss.write_index(index, str(directory / FILE))


def read(directory: Path, spec: DenseSpec) -> faiss.Index | None:
    """The stored index with its vectors memory-mapped; None for builds made before it was
    stored (their flat index is made from vectors.npy)."""
    path = directory / FILE
    if not path.is_file():
        return None
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    kind = HNSW if isinstance(index, faiss.IndexHNSW) else FLAT
    if kind != spec.kind:
        raise ValueError(f"{FILE} is {kind}, params say {spec.kind}")
    return index


def read_for_extending(directory: Path, spec: DenseSpec) -> faiss.Index | None:
    """The stored index loaded into memory so that vectors can be added, or None when it was
    made another way."""
    path = directory / FILE
    if spec.kind != HNSW or not path.is_file():
        return None
    index = faiss.read_index(str(path))
    if not isinstance(index, faiss.IndexHNSW):
        return None
    neighbours = index.hnsw.nb_neighbors(1)  # type: ignore[attr-defined]
    if (neighbours, index.hnsw.efConstruction) != (spec.m, spec.ef_construction):
        return None
    return index


def search(
    index: faiss.Index,
    spec: DenseSpec,
    query: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
) -> list[int]:
    """Rows of the k nearest passages, best first; `allowed` is a boolean mask of admitted rows."""
    n = index.ntotal
    k = min(k, n)
    if k <= 0:
        return []
    if allowed is not None:
        admitted = int(np.count_nonzero(allowed))
        if admitted == 0:
            return []
        if spec.kind != FLAT and admitted <= EXACT_FILTERED:
            return _exact(index, query, np.flatnonzero(allowed), k)
    params, selector = _params(spec, n, k, allowed)
    with _threads(1):  # one query: a second thread costs more than it gives on a busy machine
        _, ids = index.search(query[None, :].astype(np.float32), k, params=params)
    del selector  # held until the search is done: FAISS does not own it
    return [int(i) for i in ids[0] if i >= 0]


def _params(spec: DenseSpec, n: int, k: int, allowed: np.ndarray | None):
    """FAISS search parameters: the build's efSearch, widened for a filter, and the selector
    with its bitmap (returned too, as FAISS owns neither)."""
    selector = None
    if spec.kind == HNSW:
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        ef = max(spec.ef_search, k)
        if allowed is not None:  # candidates outside the filter are skipped: look wider
            ef = int(min(MAX_EF, math.ceil(ef * n / max(1, int(np.count_nonzero(allowed))))))
        params.efSearch = ef
    else:
        params = faiss.SearchParameters()
    if allowed is not None:
        bits = np.packbits(allowed, bitorder="little")
        selector = (bits, faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)))
        params.sel = selector[1]
    return params, selector


def vectors_of(index: faiss.Index, rows: list[int] | np.ndarray) -> np.ndarray:
    """The stored vectors of these rows, read from the index itself: serving never touches
    vectors.npy, so the same vectors are not in memory twice."""
    if not len(rows):
        return np.zeros((0, index.d), dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    storage = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSW) else index
    if not isinstance(storage, faiss.IndexFlat):
        return index.reconstruct_batch(rows)
    # a view of the stored vectors, made here and copied from at once so that it never
    # outlives the index (reconstruct_batch goes row by row: 6x slower for thousands of rows)
    stored = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d)
    return stored.reshape(storage.ntotal, storage.d)[rows]


def _exact(index: faiss.Index, query: np.ndarray, rows: np.ndarray, k: int) -> list[int]:
    scores = vectors_of(index, rows) @ query
    top = np.argsort(-scores, kind="stable")[:k]
    return [int(rows[i]) for i in top]


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
