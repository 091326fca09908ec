"""The two file guarantees every writer in Clerk relies on: atomic replacement and one holder.

`write_atomic`: readers see the old file or the new one, never half of either, even after a crash
(the data is fsynced before the rename, and the rename before we return).
`exclusive_lock`: one process at a time holds a job's lock file; a second gets `LockedError` at
once, naming the holder. The kernel drops the lock when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.errors import LockedError


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write beside the target under a hidden name, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: the directory entry itself must reach the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path, job: str) -> Iterator[Path]:
    """Hold an exclusive lock on `path` for `job`; LockedError at once if another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise LockedError(
                f"another {job} is in progress (process {holder}; lock {path})"
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        try:
            yield path
        finally:
            fh.seek(0)
            fh.truncate()  # an empty lock file means nobody holds it
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
