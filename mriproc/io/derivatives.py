"""The one derivatives writer: BIDS names, dtypes by suffix, JSON sidecars, atomic writes.

Every image mriproc (or its simulator's ground truth) writes goes through
:func:`write_derivative`, so names follow BIDS-Derivatives, masks are always uint8
0/1, label maps int16, probability maps float32, and every image has a JSON
sidecar naming its sources.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from mriproc.io.atomic import atomic_path, atomic_write_text
from mriproc.io.bids import bids_path
from mriproc.io.provenance import generated_by

__all__ = ["write_derivative"]

_DTYPES: dict[str, type[np.generic]] = {
    "mask": np.uint8,
    "dseg": np.int16,
    "probseg": np.float32,
}


def write_derivative(
    root: str | os.PathLike[str],
    participant: str,
    session: str,
    data: npt.ArrayLike,
    affine: npt.NDArray[np.float64],
    *,
    suffix: str,
    sources: Sequence[str],
    desc: str | None = None,
    label: str | None = None,
    space: str | None = None,
    ce: str | None = None,
    metadata: dict[str, Any] | None = None,
    protocol_name: str | None = None,
) -> Path:
    """Write one derivative image and its sidecar atomically; return the image path.

    Masks must be binary; the dtype follows the suffix (mask uint8, dseg int16,
    probseg float32, anything else float32).  The sidecar holds ``Sources``,
    ``metadata`` and ``GeneratedBy`` (mriproc's version, the protocol, the lock-file
    hash).
    """
    path = bids_path(
        root, participant, session, suffix=suffix, desc=desc, label=label, space=space, ce=ce
    )
    array = np.asarray(data)
    dtype = _DTYPES.get(suffix, np.float32)
    if suffix == "mask":
        values = np.unique(array)
        if not np.all(np.isin(values, (0, 1))):
            raise ValueError(f"{path.name}: a mask must hold only 0 and 1, found {values[:5]}")
    image = nib.Nifti1Image(array.astype(dtype), affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    with atomic_path(path) as tmp:
        nib.save(image, tmp)
    sidecar: dict[str, Any] = {"Sources": list(sources)}
    sidecar.update(metadata or {})
    sidecar["GeneratedBy"] = generated_by(protocol_name=protocol_name)
    atomic_write_text(
        path.with_name(path.name.replace(".nii.gz", ".json")), json.dumps(sidecar, indent=2) + "\n"
    )
    return path
