"""Running dcm2niix (the binary of its PyPI wheel) on exactly one series.

The series' files are linked (hard links where possible: they cost least) under
neutral names (``00001.dcm``, ...) into a folder of their own, so that dcm2niix
sees neither the other files of a mixed folder nor the original paths (which often
hold patient names or IDs).  Options: sidecars anonymised (``-ba y``: no patient
name, ID, birth date, accession number or dates), built-in gzip (``-z i``: the same
bytes on every machine; pigz would differ), the user's dcm2niix defaults file
ignored (``-g i``), nothing skipped by dcm2niix's own rules (``-i n``: mriproc's
classification decides).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mriproc.io.dicom_write import dcm2niix_executable

__all__ = ["Dcm2niixError", "Dcm2niixImage", "Dcm2niixResult", "run_dcm2niix"]


class Dcm2niixError(RuntimeError):
    """dcm2niix failed on a series; ``output`` holds its messages (not redacted)."""

    def __init__(self, message: str, output: Sequence[str]) -> None:
        super().__init__(message)
        self.output = tuple(output)


@dataclass(frozen=True)
class Dcm2niixImage:
    """One NIfTI image written by dcm2niix, with its (not yet scrubbed) sidecar."""

    nifti: Path
    sidecar: dict[str, Any]

    @property
    def echo_time_ms(self) -> float | None:
        """EchoTime of the sidecar in ms."""
        value = self.sidecar.get("EchoTime")
        return float(value) * 1000.0 if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Dcm2niixResult:
    """The images of one series and how long dcm2niix took (wall seconds)."""

    images: tuple[Dcm2niixImage, ...]
    output: tuple[str, ...]
    seconds: float


def dcm2niix_command(in_dir: Path, out_dir: Path) -> list[str]:
    """The dcm2niix command line mriproc uses (also timed alone by the benchmark)."""
    return [
        str(dcm2niix_executable()),
        "-g", "i",
        "-b", "y",
        "-ba", "y",
        "-z", "i",
        "-i", "n",
        "-d", "0",
        "-w", "1",
        "-v", "0",
        "-f", "image",
        "-o", str(out_dir),
        str(in_dir),
    ]  # fmt: skip


def _link(source: Path, link: Path) -> None:
    """A hard link (cheapest), else a symbolic link (another file system), else a copy."""
    try:
        os.link(source, link)
    except OSError:
        try:
            link.symlink_to(source.resolve())
        except OSError:
            shutil.copyfile(source, link)


def run_dcm2niix(
    files: Sequence[Path], work_dir: Path, *, timeout_s: float = 600.0
) -> Dcm2niixResult:
    """Convert the DICOM ``files`` of one series; outputs land in ``work_dir/out``.

    Raises :class:`Dcm2niixError` when dcm2niix fails or writes no image.
    """
    in_dir, out_dir = work_dir / "in", work_dir / "out"
    in_dir.mkdir(parents=True)
    out_dir.mkdir()
    for index, source in enumerate(files, start=1):
        _link(source, in_dir / f"{index:05d}.dcm")
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            dcm2niix_command(in_dir, out_dir),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise Dcm2niixError(f"dcm2niix did not finish within {timeout_s:g} s", []) from err
    seconds = time.perf_counter() - start
    output = tuple(line for line in (completed.stdout + completed.stderr).splitlines() if line)
    if completed.returncode != 0:
        last = next((line for line in reversed(output) if line.strip()), "no message")
        raise Dcm2niixError(f"dcm2niix failed (exit {completed.returncode}): {last}", output)
    images = []
    for nifti in sorted(out_dir.glob("*.nii.gz")):
        sidecar_path = nifti.with_name(nifti.name.removesuffix(".nii.gz") + ".json")
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            sidecar = {}
        images.append(Dcm2niixImage(nifti=nifti, sidecar=sidecar))
    if not images:
        raise Dcm2niixError("dcm2niix wrote no image", output)
    return Dcm2niixResult(images=tuple(images), output=output, seconds=seconds)
