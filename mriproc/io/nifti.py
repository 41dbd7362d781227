"""Checks that a NIfTI file holds one usable 3-D MR image, with reasons when it does not.

Every input image passes :func:`check_image` before any processing, so that a bad
scan is reported by file name with a reason a person can act on (empty file,
truncated gzip, 4-D series, NaN voxels, ...) instead of crashing a workflow later.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = [
    "ImageCheck",
    "ImageError",
    "check_image",
    "geometry_mismatch",
    "load_checked_image",
    "read_image",
    "save_image",
]


class ImageError(ValueError):
    """An input image that cannot be used; the message starts with the file name."""


@dataclass(frozen=True)
class ImageCheck:
    """What :func:`check_image` found: fatal ``problems`` and informative ``notes``."""

    path: Path
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    shape: tuple[int, ...] | None = None
    voxel_size_mm: tuple[float, ...] | None = None
    affine: npt.NDArray[np.float64] | None = field(default=None, repr=False)
    orientation: str | None = None  # voxel axis codes, e.g. "LAS" (radiological storage)

    @property
    def ok(self) -> bool:
        """True when the image can be processed."""
        return not self.problems

    def reason(self) -> str:
        """All problems in one line, starting with the file name."""
        return f"{self.path.name}: " + "; ".join(self.problems)


def _load(path: Path) -> tuple[nib.Nifti1Image | None, str | None]:
    try:
        size = path.stat().st_size
    except OSError as err:
        return None, f"cannot read file ({err.strerror or err})"
    if size == 0:
        return None, "empty file (0 bytes)"
    try:
        raw = path.read_bytes()
    except OSError as err:
        return None, f"cannot read file ({err.strerror or err})"
    if path.name.endswith(".gz"):
        # Decompressing the whole stream checks the gzip CRC and length, so a copy
        # cut short anywhere (even in the 8-byte trailer) is caught.
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            return None, f"corrupt or truncated gzip file ({type(err).__name__}: {err})"
    for image_class in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            img = image_class.from_bytes(raw)
        except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError):
            continue
        except (OSError, EOFError, ValueError) as err:
            return None, f"corrupt or truncated file ({type(err).__name__}: {err})"
        # from_bytes keeps the whole decoded file in memory; forcing the array here
        # reports data cut short as the file's problem, not a later crash.
        try:
            np.asanyarray(img.dataobj)
        except (OSError, EOFError, ValueError) as err:
            return None, f"corrupt or truncated data ({type(err).__name__}: {err})"
        return img, None
    return None, "not a NIfTI-1 or NIfTI-2 image (no valid header)"


def check_image(path: str | os.PathLike[str]) -> ImageCheck:
    """Read the whole image and report why it cannot be used, if it cannot.

    Problems (fatal): unreadable, empty or truncated file; not 3-D (a 4-D image with
    one volume is accepted); NaN or Inf voxels; constant image; invalid affine or
    voxel size.  Notes (processing goes on): oblique axes, missing qform/sform codes.
    The voxel order (``orientation``, e.g. ``LAS`` as 2-D DICOM converts to) is
    recorded, not noted: the affine says where every voxel is, so a user has
    nothing to act on.
    """
    path = Path(path)
    img, problem = _load(path)
    if img is None:
        return ImageCheck(path, problems=(problem or "unreadable",))

    problems: list[str] = []
    notes: list[str] = []
    orientation: str | None = None
    shape = tuple(int(n) for n in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        notes.append("4-D with a single volume: used as 3-D")
    elif len(shape) == 4:
        problems.append(f"4-D image with {shape[3]} volumes; one 3-D volume per contrast is needed")
    elif len(shape) != 3:
        problems.append(f"{len(shape)}-D image of shape {shape}; a 3-D volume is needed")
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        problems.append("invalid affine (singular or not finite): orientation unknown")
    elif not all(math.isfinite(z) and z > 0 for z in zooms):
        problems.append(f"invalid voxel size {zooms}")
    else:
        obliquity_deg = np.degrees(nib.affines.obliquity(affine)).max()
        if obliquity_deg > 0.5:
            notes.append(f"oblique acquisition ({obliquity_deg:.1f} degrees off the scanner axes)")
        orientation = "".join(nib.aff2axcodes(affine))
    sform_code = int(img.header["sform_code"])
    qform_code = int(img.header["qform_code"])
    if sform_code == 0 and qform_code == 0:
        notes.append("no qform/sform code: scanner orientation is not certain")

    if not problems:
        data = np.asanyarray(img.dataobj)
        if np.issubdtype(data.dtype, np.floating):
            n_bad = int(np.count_nonzero(~np.isfinite(data)))
            if n_bad:
                problems.append(f"{n_bad} voxel(s) are NaN or Inf")
        if not problems and data.size and float(data.min()) == float(data.max()):
            problems.append(f"constant image (every voxel is {float(data.min()):g})")

    return ImageCheck(
        path,
        problems=tuple(problems),
        notes=tuple(notes),
        shape=shape[:3],
        voxel_size_mm=zooms,
        affine=affine,
        orientation=orientation,
    )


def load_checked_image(path: str | os.PathLike[str]) -> nib.Nifti1Image | nib.Nifti2Image:
    """Load an image that passes :func:`check_image`, as 3-D; raise :class:`ImageError` if not."""
    check = check_image(path)
    if not check.ok:
        raise ImageError(check.reason())
    img = nib.load(check.path)
    assert isinstance(img, nib.Nifti1Image | nib.Nifti2Image)  # check_image made sure
    if img.ndim == 4:
        img = img.slicer[..., 0]
    return img


def geometry_mismatch(a: ImageCheck, b: ImageCheck, *, tolerance_mm: float) -> str | None:
    """Why two images do not share one voxel grid, or None when they do."""
    if a.shape != b.shape:
        return f"shapes differ ({a.shape} vs {b.shape})"
    if a.shape is None or a.affine is None or b.affine is None:
        return "orientation unknown"
    # Compare where the grid's corner voxels land, in mm.
    corners = np.array(
        [
            [i, j, k, 1.0]
            for i in (0, a.shape[0] - 1)
            for j in (0, a.shape[1] - 1)
            for k in (0, a.shape[2] - 1)
        ]
    )
    shift = float(np.abs(corners @ a.affine.T - corners @ b.affine.T).max())
    if shift > tolerance_mm:
        return f"voxel grids differ by up to {shift:.3g} mm"
    return None


def read_image(path: str | Path) -> nib.Nifti1Image:
    """A 3-D NIfTI image as float32 in memory (a trailing 4th axis of length 1 dropped)."""
    loaded = nib.load(str(path))
    assert isinstance(loaded, nib.Nifti1Image | nib.Nifti2Image), path
    data = np.asarray(loaded.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    image = nib.Nifti1Image(data, loaded.affine)
    image.header.set_xyzt_units("mm")
    return image


def save_image(data: npt.ArrayLike, affine: npt.NDArray[np.float64], path: Path) -> Path:
    """Write ``data`` as NIfTI (units mm) at ``path``."""
    array = np.asarray(data)
    image = nib.Nifti1Image(array, affine)
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))
    return path
