"""Atomic file writes: a reader never sees a half-written output.

Everything mriproc writes goes to a temporary file in the destination folder and is
renamed into place only when complete, so an interrupted run leaves either the old
file or none, never a truncated one that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "staged_outputs"]


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


@contextlib.contextmanager
def staged_outputs(
    root: str | os.PathLike[str], *, last: str, previous: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a staging folder that mirrors ``root``; publish it only if the block succeeds.

    A set of outputs (one visit's derivatives and record) is written under the staging
    folder, then each file is renamed to the same relative path under ``root``, the
    file ``last`` (the record that describes the set) after the others, and the files
    of ``previous`` (relative paths of the set this one replaces) that the new set
    does not hold are removed.  When the block raises, nothing under ``root``
    changes: outputs are replaced only by a complete new set.
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        yield staging
        written = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        if last not in written:
            raise FileNotFoundError(f"{staging / last}: the set's record was not written")
        for relative in [w for w in written if w != last] + [last]:
            target = base / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).replace(target)
        for relative in sorted(set(previous) - set(written)):
            (base / relative).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
