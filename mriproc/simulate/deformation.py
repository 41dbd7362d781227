"""Smooth deformations: subject anatomy, head pose and atrophy.

All fields are displacement fields on a coarse grid over template space (``step``
voxels apart) used as *pull-back* maps: a point ``p`` of a subject at a visit takes
its tissue from template point ``p + u(p)``.  Under a pull-back map whose divergence
is ``+a`` in parenchyma, parenchymal volume shrinks by a factor of about ``1 - a``.

The atrophy field moves every parenchyma/CSF boundary into the parenchyma (the
gradient of the smoothed parenchyma fraction): the cortex thins, the ventricles and
sulci widen locally by what the parenchyma loses, the skull stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "CoarseField",
    "atrophy_field",
    "random_pose",
    "smooth_random_field",
    "subject_to_template_voxels",
]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class CoarseField:
    """A displacement field (mm) sampled every ``step`` template voxels."""

    displacement: FloatArray  # (3, nx, ny, nz)
    step: int

    def scaled(self, factor: float) -> CoarseField:
        """The same field times ``factor``."""
        return CoarseField(np.asarray(self.displacement * factor, dtype=np.float32), self.step)

    def at(self, template_voxels: npt.NDArray[np.floating]) -> FloatArray:
        """Displacement (mm) at template voxel coordinates of shape (3, ...)."""
        coarse = np.asarray(template_voxels, dtype=np.float32) / self.step
        return np.stack(
            [map_near_support(c, coarse, order=1, mode="nearest") for c in self.displacement]
        ).astype(np.float32)


def map_near_support(
    volume: npt.NDArray[np.generic],
    coordinates: npt.NDArray[np.floating],
    *,
    order: int,
    mode: str,
) -> npt.NDArray[np.generic]:
    """``ndimage.map_coordinates`` (no prefilter, ``cval`` 0) at ``coordinates`` (3, ...).

    Computed only at the points within a voxel of the box around ``volume``'s non-zero
    values: interpolation of order 0 or 1 gives exactly 0 anywhere else (with
    ``nearest``, a box touching the grid's edge reaches out beyond it), so the result
    is the same to the bit; lesion maps and the atrophy field are zero almost
    everywhere in a scan's field of view.
    """
    if order > 1 or mode not in ("constant", "nearest"):
        raise ValueError("only order 0 or 1 and mode constant or nearest are exact")
    flat = np.asarray(coordinates).reshape(3, -1)
    values = np.zeros(flat.shape[1], dtype=volume.dtype)
    support = volume != 0
    near = np.ones(flat.shape[1], dtype=bool)
    for axis, others in enumerate(((1, 2), (0, 2), (0, 1))):
        indices = np.flatnonzero(support.any(axis=others))
        if not len(indices):
            return values.reshape(np.shape(coordinates)[1:])
        edge = mode == "nearest"
        if not (edge and indices[0] == 0):
            near &= flat[axis] >= indices[0] - 1
        if not (edge and indices[-1] == volume.shape[axis] - 1):
            near &= flat[axis] <= indices[-1] + 1
    values[near] = ndimage.map_coordinates(
        volume, flat[:, near], order=order, mode=mode, cval=0.0, prefilter=False
    )
    return values.reshape(np.shape(coordinates)[1:])


def _coarse_shape(shape: tuple[int, int, int], step: int) -> tuple[int, int, int]:
    return (shape[0] // step + 2, shape[1] // step + 2, shape[2] // step + 2)


def smooth_random_field(
    shape: tuple[int, int, int],
    *,
    rms_mm: float,
    smoothness_mm: float,
    rng: np.random.Generator,
    step: int = 4,
) -> CoarseField:
    """Gaussian-smoothed white noise scaled to an RMS displacement of ``rms_mm``."""
    coarse = _coarse_shape(shape, step)
    noise = rng.standard_normal((3, *coarse)).astype(np.float32)
    smooth = np.stack(
        [ndimage.gaussian_filter(c, smoothness_mm / step, mode="wrap") for c in noise]
    )
    rms = float(np.sqrt(np.mean(smooth**2)))
    return CoarseField(np.asarray(smooth * (rms_mm / max(rms, 1e-12)), dtype=np.float32), step)


def atrophy_field(
    parenchyma: FloatArray,
    csf: FloatArray,
    *,
    step: int = 1,
    smoothing_mm: float = 2.0,
    skull_margin_mm: float = 2.0,
) -> CoarseField:
    """Pull-back field shrinking parenchyma where it meets CSF (callers scale it to an amount).

    The field is the gradient of the parenchyma fraction smoothed by a Gaussian of
    ``smoothing_mm``, pointing from parenchyma into CSF: every parenchyma/CSF
    boundary retreats into the parenchyma (the cortex thins, the ventricles and
    sulci widen) and the CSF beside it fills the space, so the intracranial volume
    is kept locally (the field's divergence, minus the Laplacian of the smoothed
    fraction, integrates to zero across each boundary).  It fades to zero within
    ``skull_margin_mm`` of the intracranial boundary: the skull stays where it is.

    Parameters
    ----------
    parenchyma, csf
        Tissue fractions on the 1 mm template grid.
    step
        Grid spacing of the returned field in voxels (mm).
    smoothing_mm, skull_margin_mm
        As above.
    """
    smooth = ndimage.gaussian_filter(np.asarray(parenchyma, dtype=np.float32), smoothing_mm)
    intracranial = (np.asarray(parenchyma) + np.asarray(csf)) >= 0.5
    depth = ndimage.distance_transform_edt(intracranial)
    fade = np.clip((depth - 0.5 * skull_margin_mm) / skull_margin_mm, 0.0, 1.0).astype(np.float32)
    gradient = np.stack(np.gradient(smooth)) * fade  # per mm on the 1 mm grid
    displacement = -gradient[:, ::step, ::step, ::step]
    return CoarseField(np.ascontiguousarray(displacement, dtype=np.float32), step)


def random_pose(
    rng: np.random.Generator,
    *,
    max_rotation_deg: tuple[float, float, float] = (4.0, 4.0, 6.0),
    max_translation_mm: tuple[float, float, float] = (6.0, 6.0, 6.0),
) -> npt.NDArray[np.float64]:
    """A rigid 4x4 map from subject (MNI-like) coordinates to scanner coordinates."""
    angles = np.radians(rng.uniform(-1, 1, 3) * np.asarray(max_rotation_deg))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3] = rz @ ry @ rx
    pose[:3, 3] = rng.uniform(-1, 1, 3) * np.asarray(max_translation_mm)
    return pose


def subject_to_template_voxels(
    points_mm: npt.NDArray[np.floating],
    *,
    anatomy: CoarseField,
    anatomy_scale: float,
    atrophy: CoarseField | None,
    template_affine: npt.NDArray[np.float64],
) -> FloatArray:
    """Template voxel coordinates that subject points (mm, shape (3, ...)) take tissue from.

    Subject -> template anatomy (scale, then smooth warp) -> atrophy (a pull-back in
    template space, where the atrophy field was built from the template's tissues).
    """
    to_voxel = np.linalg.inv(template_affine)
    extra = (None,) * (np.ndim(points_mm) - 1)

    def voxel(mm: npt.NDArray[np.floating]) -> FloatArray:
        return np.asarray(
            np.tensordot(to_voxel[:3, :3], mm, axes=1) + to_voxel[(slice(0, 3), 3, *extra)],
            dtype=np.float32,
        )

    shrunk = np.asarray(points_mm, dtype=np.float32) / anatomy_scale
    template_mm = shrunk + anatomy.at(voxel(shrunk))
    if atrophy is not None:
        template_mm = template_mm + atrophy.at(voxel(template_mm))
    return voxel(template_mm)
