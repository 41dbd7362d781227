"""Small DICOM series for the conversion tests, written by mriproc's own DICOM writer.

Imported by the test modules (``tests/helpers/`` is on ``sys.path`` through
``tests/conftest.py``).  Each series is a few slices of random integers, so that
dcm2niix runs in milliseconds while every code path of ``mriproc convert`` is real.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom

from mriproc.io.dicom_write import PatientInfo, StudyInfo, write_mr_series

ROSSI = PatientInfo(
    name="ROSSI^ANNA^QWERTY", patient_id="PID-4711X", birth_date="19710203", sex="F"
)
NOWAK = PatientInfo(name="NOWAK^JAN^ZXCVB", patient_id="PID-9815Y", birth_date="19650811", sex="M")
INSTITUTION = "Ospedale Fittizio Neuroradiologia"
# ImageType of a Siemens series saved without and with distortion correction.
NOT_CORRECTED = ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"]
CORRECTED_2D = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
CORRECTED_3D = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS3D"]


def study(date: str, accession: str, seed: str) -> StudyInfo:
    """A study on ``date`` (YYYYMMDD) with identifying fields."""
    return StudyInfo(
        study_date=date,
        study_time="093000",
        accession_number=accession,
        institution_name=INSTITUTION,
        study_description="MRI BRAIN",
        uid_seed=seed,
    )


def axial_affine() -> np.ndarray:
    """LAS 0.94 x 0.94 x 5 mm (the voxel order dcm2niix returns for 2-D series)."""
    affine = np.diag([-0.9375, 0.9375, 5.0, 1.0])
    affine[:3, 3] = [20.0, -15.0, -10.0]
    return affine


def write_series(
    folder: Path,
    patient: PatientInfo,
    info: StudyInfo,
    number: int,
    description: str,
    *,
    echo_times_ms: Sequence[float] = (15.0,),
    repetition_time_ms: float = 550.0,
    inversion_time_ms: float | None = None,
    contrast_agent: str | None = None,
    shape: tuple[int, int, int] = (24, 20, 6),
    transfer_syntax: str = "explicit_little",
) -> list[Path]:
    """One series (one volume per echo time) in ``folder``; returns its files."""
    rng = np.random.default_rng(number)
    volumes = [rng.integers(1, 3000, shape).astype(np.float32) for _ in echo_times_ms]
    return write_mr_series(
        folder,
        volumes,
        axial_affine(),
        patient=patient,
        study=info,
        series_number=number,
        series_description=description,
        echo_times_ms=list(echo_times_ms),
        repetition_time_ms=repetition_time_ms,
        inversion_time_ms=inversion_time_ms,
        contrast_agent=contrast_agent,
        transfer_syntax=transfer_syntax,  # type: ignore[arg-type]
        uid_seed=f"{info.uid_seed}-{number}",
    )


def write_mprage(
    folder: Path,
    patient: PatientInfo,
    info: StudyInfo,
    number: int,
    description: str,
    image_type: Sequence[str],
) -> list[Path]:
    """A 3-D T1 (MP-RAGE timing: TE 3 ms, TR 2200 ms, TI 900 ms) with ``image_type``."""
    files = write_series(
        folder,
        patient,
        info,
        number,
        description,
        echo_times_ms=(3.0,),
        repetition_time_ms=2200.0,
        inversion_time_ms=900.0,
    )
    set_attribute(files, "ImageType", list(image_type))
    return files


def set_attribute(files: Sequence[Path], keyword: str, value: object) -> None:
    """Change one attribute in every file (e.g. Modality of a non-MR series)."""
    for path in files:
        ds = pydicom.dcmread(path)
        setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)


def delete_attribute(files: Sequence[Path], keyword: str) -> None:
    """Remove one attribute from every file (e.g. the geometry of a secondary capture)."""
    for path in files:
        ds = pydicom.dcmread(path)
        delattr(ds, keyword)
        ds.save_as(path, enforce_file_format=True)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


def compress_tree(source: Path, target: Path, *, kind: str = "gzip", keep_names: int = 0) -> None:
    """Copy the tree ``source`` to ``target`` with every file compressed as a whole.

    Files get the compressor's suffix (``x.dcm`` -> ``x.dcm.gz``), except every
    ``keep_names``-th file (if given), which keeps its name: only its content says
    it is compressed.
    """
    suffix = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[kind]
    for index, path in enumerate(sorted(p for p in source.rglob("*") if p.is_file())):
        out = target / path.relative_to(source)
        if not (keep_names and index % keep_names == 0):
            out = out.with_name(out.name + suffix)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(COMPRESSORS[kind](path.read_bytes()))


def tree_state(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (relative name -> bytes), to show a tree is unchanged."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def scramble_into(files: Sequence[Path], folder: Path, prefix: str) -> list[Path]:
    """Move files into ``folder`` under names that say nothing (as PACS exports do)."""
    folder.mkdir(parents=True, exist_ok=True)
    moved = []
    for index, path in enumerate(files):
        target = folder / f"{prefix}{index * 7919 % 1000:03d}"
        shutil.move(path, target)
        moved.append(target)
    return moved


def truncate(path: Path, keep_bytes: int) -> None:
    """Cut a file short, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])


def identifiers_of(patient: PatientInfo, *dates: str) -> list[str]:
    """Every identifying string of ``patient`` and the study dates (never in the output)."""
    parts = [p for p in patient.name.split("^") if len(p) >= 3]
    iso = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in dates]
    return [patient.name, *parts, patient.patient_id, patient.birth_date, INSTITUTION, *dates, *iso]


def find_identifiers(root: Path, texts: Sequence[str], identifiers: Sequence[str]) -> list[str]:
    """Where an identifier occurs (case-insensitive) in files below ``root`` or in ``texts``."""
    found = []
    needles = [i.lower().encode() for i in identifiers]
    sources: list[tuple[str, bytes]] = [(f"text {k}", t.encode()) for k, t in enumerate(texts)]
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name.endswith(".gz"):
                data = gzip.decompress(data)
            sources.append((str(path.relative_to(root)), data))
        sources.append((f"name {path.relative_to(root)}", str(path.relative_to(root)).encode()))
    for where, data in sources:
        lowered = data.lower()
        found += [f"{where}: {n.decode()}" for n in needles if n in lowered]
    return found
