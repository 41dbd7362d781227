"""Acquisition: scan grids, head pose, slice profile, bias field, Rician noise, scaling.

A scan is a voxel grid in scanner coordinates.  Every voxel is sampled from the
subject's template-space maps through the chain scanner -> subject (head pose) ->
template (subject anatomy) -> template at this visit (atrophy).  2-D acquisitions
average several samples across the slice thickness with a trapezoidal slice
profile, so thick slices carry real partial-volume effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mriproc.simulate.deformation import (
    CoarseField,
    map_near_support,
    subject_to_template_voxels,
)

__all__ = [
    "RESOLUTIONS",
    "SampledGrid",
    "ScanGeometry",
    "add_rician_noise",
    "bias_field",
    "sample_grid",
]

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ScanGeometry:
    """Voxel grid of a scan: shape, voxel size (mm) and slice profile (2-D only)."""

    shape: tuple[int, int, int]
    voxel_size_mm: tuple[float, float, float]
    slice_offsets_mm: tuple[float, ...]  # sample positions across one slice
    slice_weights: tuple[float, ...]

    @property
    def is_2d(self) -> bool:
        """True for thick-slice acquisitions."""
        return len(self.slice_offsets_mm) > 1

    def affine(self, centre_world: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Axial voxel-to-scanner affine whose grid centre is at ``centre_world``.

        2-D scans are stored LAS (the first axis runs right to left) and 3-D scans
        RAS: the voxel orders dcm2niix gives such acquisitions, so the BIDS images
        and the DICOM export convert to the same arrays and affines.
        """
        signs = np.array([-1.0 if self.is_2d else 1.0, 1.0, 1.0])
        affine = np.diag([*(signs * np.asarray(self.voxel_size_mm)), 1.0])
        half = (np.asarray(self.shape, dtype=float) - 1.0) / 2.0
        affine[:3, 3] = centre_world - affine[:3, :3] @ half
        return affine


RESOLUTIONS: dict[str, ScanGeometry] = {
    # ESIMS-like 2-D axial: 256 x 256 x 24 slices of 0.94 x 0.94 x 5 mm, contiguous.
    "esims": ScanGeometry(
        shape=(256, 256, 24),
        voxel_size_mm=(0.9375, 0.9375, 5.0),
        slice_offsets_mm=(-2.0, -1.0, 0.0, 1.0, 2.0),
        slice_weights=(0.5, 1.0, 1.0, 1.0, 0.5),
    ),
    # 3-D 1 mm isotropic.
    "1mm": ScanGeometry(
        shape=(192, 228, 180),
        voxel_size_mm=(1.0, 1.0, 1.0),
        slice_offsets_mm=(0.0,),
        slice_weights=(1.0,),
    ),
}


@dataclass(frozen=True)
class SampledGrid:
    """Template voxel coordinates of every sample of a scan (3, nx, ny, nz * n_sub)."""

    geometry: ScanGeometry
    affine: npt.NDArray[np.float64]
    template_voxels: FloatArray

    def sample(self, volume: npt.NDArray[np.generic], *, order: int = 1) -> FloatArray:
        """Sample a template-space volume and apply the slice profile (order 0: no profile)."""
        values = map_near_support(volume, self.template_voxels, order=order, mode="constant")
        nx, ny, nz = self.geometry.shape
        n_sub = len(self.geometry.slice_offsets_mm)
        values = values.reshape(nx, ny, nz, n_sub)
        if order == 0:
            return np.asarray(values[..., n_sub // 2], dtype=np.float32)
        weights = np.asarray(self.geometry.slice_weights, dtype=np.float32)
        return np.asarray(values @ (weights / weights.sum()), dtype=np.float32)


def sample_grid(
    geometry: ScanGeometry,
    scan_affine: npt.NDArray[np.float64],
    *,
    pose: npt.NDArray[np.float64],
    template_affine: npt.NDArray[np.float64],
    atrophy: CoarseField | None,
    anatomy: CoarseField,
    anatomy_scale: float,
    stride: int = 4,
) -> SampledGrid:
    """Where in the template every sample of a scan comes from.

    The rigid part is exact; the subject's anatomy (which varies over centimetres) is
    evaluated every ``stride`` voxels in plane and interpolated linearly, the atrophy
    at every sample.
    """
    nx, ny, nz = geometry.shape
    offsets = np.asarray(geometry.slice_offsets_mm) / geometry.voxel_size_mm[2]
    k = (np.arange(nz)[:, None] + offsets[None, :]).ravel()  # fractional slice index
    coarse_i = np.linspace(0, nx - 1, int(np.ceil((nx - 1) / stride)) + 1)
    coarse_j = np.linspace(0, ny - 1, int(np.ceil((ny - 1) / stride)) + 1)

    to_subject = np.linalg.inv(pose) @ scan_affine  # scan voxel -> subject mm

    def template_voxels(
        i: npt.NDArray[np.float64], j: npt.NDArray[np.float64], kk: npt.NDArray[np.float64]
    ) -> FloatArray:
        grid = np.stack(np.meshgrid(i, j, kk, indexing="ij")).astype(np.float64)
        subject = (
            np.tensordot(to_subject[:3, :3], grid, axes=1) + to_subject[:3, 3, None, None, None]
        )
        return subject_to_template_voxels(
            subject,
            anatomy=anatomy,
            anatomy_scale=anatomy_scale,
            atrophy=None,
            template_affine=template_affine,
        )

    coarse = template_voxels(coarse_i, coarse_j, k)
    full = _upsample_in_plane(
        _upsample_in_plane(coarse, coarse_i, nx, axis=1), coarse_j, ny, axis=2
    )
    if atrophy is not None:
        # Atrophy moves boundaries by fractions of a millimetre over a few millimetres:
        # it is evaluated at every sample, not interpolated between strided ones.
        to_voxel = np.linalg.inv(template_affine)[:3, :3].astype(np.float32)
        full = full + np.tensordot(to_voxel, atrophy.at(full), axes=1)
    return SampledGrid(geometry=geometry, affine=scan_affine, template_voxels=full)


def bias_field(
    shape: tuple[int, int, int], *, strength: float, rng: np.random.Generator
) -> FloatArray:
    """A smooth multiplicative field: ``exp`` of a random quadratic over the field of view.

    Its values span about ``1 +- strength``.
    """
    nx, ny, nz = shape
    u = np.linspace(-1.0, 1.0, nx)[:, None, None]
    v = np.linspace(-1.0, 1.0, ny)[None, :, None]
    w = np.linspace(-1.0, 1.0, nz)[None, None, :]
    terms = [u, v, w, u * v, u * w, v * w, u**2 - 1 / 3, v**2 - 1 / 3, w**2 - 1 / 3]
    coefficients = rng.normal(0.0, 1.0, len(terms))
    log_bias = np.broadcast_to(sum(c * t for c, t in zip(coefficients, terms, strict=True)), shape)
    span = float(np.abs(log_bias).max()) or 1.0
    return np.asarray(np.exp(log_bias * (np.log1p(strength) / span)), dtype=np.float32)


def _upsample_in_plane(
    values: FloatArray, positions: npt.NDArray[np.float64], n: int, axis: int
) -> FloatArray:
    """Linear interpolation along ``axis`` from samples at ``positions`` to 0..n-1."""
    target = np.arange(n, dtype=np.float64)
    upper = np.clip(np.searchsorted(positions, target, side="right"), 1, len(positions) - 1)
    lower = upper - 1
    weight = ((target - positions[lower]) / (positions[upper] - positions[lower])).astype(
        np.float32
    )
    shape = [1] * values.ndim
    shape[axis] = n
    weight = weight.reshape(shape)
    low = np.take(values, lower, axis=axis)
    high = np.take(values, upper, axis=axis)
    return np.asarray(low + (high - low) * weight, dtype=np.float32)


def add_rician_noise(
    image: FloatArray, *, sigma: float, rng: np.random.Generator
) -> npt.NDArray[np.int16]:
    """Magnitude of the image plus complex Gaussian noise, rounded to int16."""
    real = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, image.shape).astype(np.float32)
    magnitude = np.sqrt(real**2 + imaginary**2)
    return np.asarray(np.clip(np.round(magnitude), 0, np.iinfo(np.int16).max), dtype=np.int16)
