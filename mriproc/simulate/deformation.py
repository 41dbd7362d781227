"""Smooth deformations: subject anatomy, head pose and atrophy.

All fields are displacement fields on a coarse grid over template space (``step``
voxels apart) used as *pull-back* maps: a point ``p`` of a subject at a visit takes
its tissue from template point ``p + u(p)``.  Under a pull-back map whose divergence
is ``+a`` in parenchyma, parenchymal volume shrinks by a factor of about ``1 - a``.

The atrophy field is the gradient of a potential whose Laplacian is ``+1`` in
parenchyma and negative in CSF, balanced so that the intracranial volume is kept:
parenchyma shrinks, ventricles and sulci widen, the skull stays where it is.
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
            [
                ndimage.map_coordinates(c, coarse, order=1, mode="nearest", prefilter=False)
                for c in self.displacement
            ]
        ).astype(np.float32)


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


def atrophy_field(parenchyma: FloatArray, csf: FloatArray, *, step: int = 4) -> CoarseField:
    """Pull-back field shrinking parenchyma by about 1 % (scale it for other amounts).

    Parameters
    ----------
    parenchyma, csf
        Tissue fractions on the 1 mm template grid.
    step
        Coarse grid spacing in voxels (mm).
    """
    shape = (int(parenchyma.shape[0]), int(parenchyma.shape[1]), int(parenchyma.shape[2]))
    coarse = _coarse_shape(shape, step)

    def down(volume: FloatArray) -> FloatArray:
        padded = np.zeros(tuple(c * step for c in coarse), dtype=np.float32)
        padded[: shape[0], : shape[1], : shape[2]] = volume
        blocks = padded.reshape(coarse[0], step, coarse[1], step, coarse[2], step)
        return np.asarray(blocks.mean(axis=(1, 3, 5)), dtype=np.float32)

    par, fluid = down(parenchyma), down(csf)
    source = 0.01 * (par - fluid * (par.sum() / max(float(fluid.sum()), 1e-6)))
    # Poisson solve by FFT on a grid padded to twice the size (no wrap-around).
    padded_shape = tuple(2 * n for n in coarse)
    spectrum = np.fft.rfftn(source, s=padded_shape, axes=(0, 1, 2))
    k = [np.fft.fftfreq(n, d=step) for n in padded_shape[:2]] + [
        np.fft.rfftfreq(padded_shape[2], d=step)
    ]
    kx, ky, kz = np.meshgrid(*k, indexing="ij")
    # Eigenvalues of the discrete 7-point Laplacian, so div(grad(psi)) matches the source.
    eig = sum((2.0 * np.cos(2.0 * np.pi * kk * step) - 2.0) / step**2 for kk in (kx, ky, kz))
    eig[0, 0, 0] = 1.0
    potential_hat = spectrum / eig
    potential_hat[0, 0, 0] = 0.0
    potential = np.fft.irfftn(potential_hat, s=padded_shape, axes=(0, 1, 2))[
        : coarse[0], : coarse[1], : coarse[2]
    ]
    gradient = np.stack(np.gradient(potential, step))
    return CoarseField(np.asarray(gradient, dtype=np.float32), step)


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
