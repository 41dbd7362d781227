"""Adding to a raw BIDS dataset without duplicating or overwriting what it holds.

``mriproc convert`` may run again into the same dataset as new studies arrive.
:func:`read_existing` reads what is there (participants, each participant's
sessions with their days from baseline, the anatomical images); an image converted
again is recognised by its content (:meth:`ExistingDataset.find_same_image`: same
grid and same voxel values), so its session is known even without a mapping file.
:func:`add_participants` and :func:`add_sessions` merge new rows into
``participants.tsv`` and ``sub-*/sub-*_sessions.tsv``, leaving existing rows as
they are.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from mriproc.io.atomic import atomic_write_text
from mriproc.io.provenance import generated_by

__all__ = [
    "ExistingDataset",
    "add_participants",
    "add_sessions",
    "ensure_dataset_description",
    "read_existing",
    "same_image",
]

_GridKey = tuple[tuple[int, ...], tuple[float, ...]]


def _load(path: str | os.PathLike[str]) -> nib.Nifti1Image:
    return typing.cast(nib.Nifti1Image, nib.load(path))


def _grid_key(img: nib.Nifti1Image) -> _GridKey:
    affine = tuple(float(round(v, 3)) for v in np.asarray(img.affine).ravel()[:12])
    return tuple(int(n) for n in img.shape), affine


def same_image(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when two NIfTI files hold the same grid and the same voxel values."""
    first, second = _load(a), _load(b)
    if first.shape != second.shape or not np.allclose(first.affine, second.affine, atol=1e-4):
        return False
    return bool(np.array_equal(np.asanyarray(first.dataobj), np.asanyarray(second.dataobj)))


@dataclass
class ExistingDataset:
    """What a raw BIDS dataset already holds."""

    root: Path
    participants: pd.DataFrame | None
    # participant label -> session label -> days from baseline (None when unknown)
    sessions: dict[str, dict[str, int | None]]
    _index: dict[_GridKey, list[Path]] | None = field(default=None, repr=False)

    def find_same_image(self, image: Path) -> Path | None:
        """An anatomical image of the dataset with the content of ``image``, if any."""
        if self._index is None:
            self._index = {}
            for path in sorted(self.root.glob("sub-*/ses-*/anat/*.nii*")):
                try:
                    key = _grid_key(_load(path))
                except (OSError, ValueError, nib.filebasedimages.ImageFileError):
                    continue
                self._index.setdefault(key, []).append(path)
        candidates = self._index.get(_grid_key(_load(image)), [])
        return next((path for path in candidates if same_image(path, image)), None)


def read_existing(root: str | os.PathLike[str]) -> ExistingDataset:
    """Read the participants and sessions of the dataset at ``root`` (may be empty)."""
    root = Path(root)
    table_path = root / "participants.tsv"
    participants = _read_tsv(table_path) if table_path.is_file() else None
    sessions: dict[str, dict[str, int | None]] = {}
    for subject_dir in sorted(root.glob("sub-*")):
        if not subject_dir.is_dir():
            continue
        label = subject_dir.name.removeprefix("sub-")
        days: dict[str, int | None] = {
            p.name.removeprefix("ses-"): None
            for p in sorted(subject_dir.glob("ses-*"))
            if p.is_dir()
        }
        table = subject_dir / f"sub-{label}_sessions.tsv"
        if table.is_file():
            rows = _read_tsv(table)
            for record in rows.to_dict(orient="records"):
                session = str(record.get("session_id", "")).removeprefix("ses-")
                value = record.get("days_from_baseline")
                if session in days and isinstance(value, str) and value.lstrip("-").isdigit():
                    days[session] = int(value)
        sessions[label] = days
    return ExistingDataset(root=root, participants=participants, sessions=sessions)


def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a"], keep_default_na=False)


def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    atomic_write_text(path, table.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n"))


def _merge(
    existing: pd.DataFrame | None, rows: Iterable[Mapping[str, Any]], key: str
) -> pd.DataFrame:
    new = pd.DataFrame(list(rows))
    if existing is None or existing.empty:
        merged = new
    else:
        new = new[~new[key].isin(existing[key])] if key in new else new
        merged = pd.concat([existing, new.astype(object)], ignore_index=True)
    return merged.sort_values(key, kind="stable").reset_index(drop=True)


def add_participants(root: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Add rows (with ``participant_id``) to ``participants.tsv``; existing rows stay."""
    path = Path(root) / "participants.tsv"
    existing = _read_tsv(path) if path.is_file() else None
    _write_tsv(path, _merge(existing, rows, "participant_id"))
    return path


def add_sessions(
    root: str | os.PathLike[str], participant: str, rows: Iterable[Mapping[str, Any]]
) -> Path:
    """Add rows (``session_id``, ``visit_month``, ``days_from_baseline``) to a sessions.tsv."""
    path = Path(root) / f"sub-{participant}" / f"sub-{participant}_sessions.tsv"
    existing = _read_tsv(path) if path.is_file() else None
    _write_tsv(path, _merge(existing, rows, "session_id"))
    return path


def ensure_dataset_description(root: str | os.PathLike[str], name: str) -> Path:
    """Write ``dataset_description.json`` unless the dataset has one.

    Its ``Authors`` say that the dataset's authors are not known to mriproc, and name
    the conversion (the validator asks for more than one entry; the people who
    acquired the data replace the first).
    """
    path = Path(root) / "dataset_description.json"
    if not path.is_file():
        description = {
            "Name": name,
            "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "Authors": [
                "Unknown: replace with the dataset's authors",
                "mriproc convert (software: DICOM to BIDS conversion)",
            ],
            "GeneratedBy": generated_by(),
        }
        atomic_write_text(path, json.dumps(description, indent=2) + "\n")
    return path
