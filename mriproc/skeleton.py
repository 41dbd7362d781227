"""Skeleton BIDS datasets: right names and geometry, synthetic content.

A skeleton dataset has every file a protocol expects, laid out as BIDS, filled with
smooth random images of the right geometry.  Tests use it to exercise discovery,
validation and workflow construction in seconds, and ``mriproc demo`` uses it until
the simulator lands.  Its images carry no anatomy: nothing measured on them means
anything, and nothing in mriproc reports a number from them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from mriproc.config import Protocol
from mriproc.io.atomic import atomic_path
from mriproc.io.bids import anat_path, write_raw_dataset_files

__all__ = ["write_skeleton_dataset"]


def _skeleton_affine(shape: Sequence[int], voxel_size_mm: Sequence[float]) -> np.ndarray:
    affine = np.diag([*voxel_size_mm, 1.0])
    affine[:3, 3] = -0.5 * (np.asarray(shape) - 1) * np.asarray(voxel_size_mm)
    return affine


def write_skeleton_dataset(
    root: str | os.PathLike[str],
    protocol: Protocol,
    *,
    arms: Mapping[str, str],
    sessions: Sequence[str],
    shape: tuple[int, int, int] = (32, 32, 12),
    voxel_size_mm: tuple[float, float, float] = (0.9375, 0.9375, 5.0),
    omit: Sequence[tuple[str, str, str]] = (),
    seed: int = 0,
) -> Path:
    """Write a skeleton dataset and return its root.

    Parameters
    ----------
    root
        Folder to create the dataset in.
    protocol
        Which contrasts each session gets, and the session months.
    arms
        Participant label -> treatment arm.
    sessions
        Session labels every participant gets (months from the protocol, else 0, 1, ...).
    shape, voxel_size_mm
        Grid of every image (all contrasts share it, like one dual-echo series).
    omit
        ``(participant, session, role)`` triples to leave out, for incomplete datasets.
    seed
        Seed of the random image content.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    affine = _skeleton_affine(shape, voxel_size_mm)
    months = {s: float(protocol.visits.months.get(s, i)) for i, s in enumerate(sessions)}
    skip = set(omit)
    for participant in arms:
        for session in sessions:
            for role, spec in protocol.contrasts.items():
                if (participant, session, role) in skip:
                    continue
                noise = rng.standard_normal(shape).astype(np.float32)
                data = 1000.0 + 200.0 * ndimage.gaussian_filter(noise, sigma=2.0)
                img = nib.Nifti1Image(np.round(data).astype(np.int16), affine)
                img.set_qform(affine, code=1)
                img.set_sform(affine, code=1)
                path = anat_path(root, participant, session, suffix=spec.suffix, ce=spec.ce)
                with atomic_path(path) as tmp:
                    nib.save(img, tmp)
    participants = pd.DataFrame(
        {"participant_id": [f"sub-{p}" for p in arms], "arm": list(arms.values())}
    )
    write_raw_dataset_files(
        root,
        name=f"mriproc skeleton dataset ({protocol.name})",
        participants=participants,
        session_months={p: months for p in arms},
        authors=["mriproc (software)", "Synthetic placeholder images: no human participants"],
        readme=f"A skeleton dataset of the {protocol.name} protocol written by mriproc: "
        "smoothed noise images with the protocol's contrasts, for testing a pipeline's "
        "plumbing. Not MRI data.",
    )
    return root
