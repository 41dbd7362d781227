"""Atomic file writes: a reader never sees a half-written output.

Everything mriproc writes goes to a temporary file in the destination folder and is
renamed into place only when complete, so an interrupted run leaves either the old
file or none, never a truncated one that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on success.

    The temporary name keeps the destination's full suffix (``.nii.gz``) so that
    libraries choosing a format by extension behave as for the final name.
    """
    final = Path(destination)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o644)
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(destination: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``destination`` atomically."""
    with atomic_path(destination) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(destination)
