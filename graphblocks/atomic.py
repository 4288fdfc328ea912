"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file graphblocks and its trainers write (partitions, exports, results, checkpoints,
plots) goes through :func:`atomic_target` or :func:`write_atomic`: the content is written
to a temporary file in the same folder, flushed, and renamed onto the target, which POSIX
and Windows both do atomically within one file system.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file next to ``path``, renamed onto it when the block succeeds and
    removed when it fails; it gets the permissions a new file would get. Its name is
    ``.<name>.<random>.tmp``, so a killed writer's leftovers are easy to find."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and an atomic rename."""
    with atomic_target(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
