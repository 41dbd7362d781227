"""The one antspyx adapter: registration, resampling and N4, with explicit parameters.

No other module imports ``ants``.  Every antsRegistration option comes from a named
preset (:class:`mriproc.config.RegistrationPreset`, resolved with the protocol) and is
passed by name; none goes through ``**kwargs``, where antspyx silently ignores
misspelled options.
Determinism: :func:`ants.config.set_ants_deterministic` fixes the random seed of the
metric sampling and ITK runs one thread per call (parallelism is Nipype's job).

Images cross this boundary as nibabel images (RAS+ affines); linear transforms are
also returned as 4 x 4 RAS matrices so that callers never handle LPS.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ants
import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import linalg, ndimage

from mriproc.config import RegistrationPreset

__all__ = [
    "ANTS_SEED",
    "HalfwayRegistration",
    "LinearRegistration",
    "NonlinearRegistration",
    "apply_linear",
    "from_ants",
    "halfway_maps",
    "halfway_space",
    "jacobian_determinant",
    "map_points",
    "matrix_power",
    "mattes_metric",
    "mean_displacement_mm",
    "n4_bias_correct",
    "n4_bias_field",
    "register_deformable",
    "register_halfway",
    "register_linear",
    "register_nonlinear",
    "resample_isotropic",
    "sample_linear",
    "to_ants",
]

ANTS_SEED = 20051  # ESIMS was published in 2005; any fixed value would do
ants.config.set_ants_deterministic(True, seed_value=ANTS_SEED)
os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_FLIP = np.array([[-1.0], [-1.0], [1.0]], dtype=np.float32)  # RAS <-> LPS, points as columns


def to_ants(image: nib.Nifti1Image | nib.Nifti2Image) -> Any:
    """A float32 ANTs image with the same voxels and world geometry (RAS -> LPS)."""
    affine = _LPS @ np.asarray(image.affine, dtype=np.float64)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    direction = affine[:3, :3] / spacing
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    return ants.from_numpy(
        data,
        origin=tuple(float(v) for v in affine[:3, 3]),
        spacing=tuple(float(v) for v in spacing),
        direction=direction,
    )


def from_ants(image: Any) -> nib.Nifti1Image:
    """A nibabel image (float32, RAS+ affine) from an ANTs image."""
    direction = np.asarray(image.direction, dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = direction * np.asarray(image.spacing, dtype=np.float64)
    affine[:3, 3] = np.asarray(image.origin, dtype=np.float64)
    result = nib.Nifti1Image(np.asarray(image.numpy(), dtype=np.float32), _LPS @ affine)
    result.header.set_xyzt_units("mm")
    return result


@dataclass(frozen=True)
class LinearRegistration:
    """A rigid or affine registration of ``moving`` onto ``fixed``.

    ``fixed_to_moving`` maps RAS points of the fixed image's space to the corresponding
    RAS points of the moving image's space (the direction used for resampling the
    moving image onto the fixed grid).
    """

    fixed_to_moving: npt.NDArray[np.float64]
    transform_file: Path  # ITK .mat (LPS), as written by antsRegistration


def _itk_matrix(transform: Any) -> npt.NDArray[np.float64]:
    """4 x 4 LPS matrix of an ITK affine transform (y = A (x - c) + c + t)."""
    parameters = np.asarray(transform.parameters, dtype=np.float64)
    centre = np.asarray(transform.fixed_parameters, dtype=np.float64)
    matrix = np.eye(4)
    matrix[:3, :3] = parameters[:9].reshape(3, 3)
    matrix[:3, 3] = parameters[9:12] + centre - matrix[:3, :3] @ centre
    return matrix


def register_linear(
    fixed: nib.Nifti1Image | nib.Nifti2Image,
    moving: nib.Nifti1Image | nib.Nifti2Image,
    *,
    transform: Literal["rigid", "affine"],
    preset: RegistrationPreset,
    out_dir: Path,
) -> LinearRegistration:
    """Register ``moving`` onto ``fixed`` with a rigid or affine transform.

    Parameters
    ----------
    fixed, moving
        Images (any voxel grids; their affines place them in the world).
    transform
        ``rigid`` (6 parameters) or ``affine`` (12).
    preset
        Metric, sampling, levels and iterations.
    out_dir
        Where the ITK transform file is kept.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = tempfile.mkdtemp(prefix="reg-", dir=out_dir) + os.sep
    fixed_ants, moving_ants = to_ants(fixed), to_ants(moving)
    result = ants.registration(
        fixed=fixed_ants,
        moving=moving_ants,
        type_of_transform="Rigid" if transform == "rigid" else "Affine",
        initial_transform=None,
        outprefix=prefix,
        aff_metric=preset.metric,
        aff_sampling=preset.histogram_bins,
        aff_random_sampling_rate=preset.sampling_rate,
        aff_iterations=preset.iterations,
        aff_shrink_factors=preset.shrink_factors,
        aff_smoothing_sigmas=preset.smoothing_sigmas,
        verbose=False,
    )
    (transform_path,) = result["fwdtransforms"]
    lps = _itk_matrix(ants.read_transform(transform_path))
    ras = _LPS @ lps @ _LPS
    return LinearRegistration(fixed_to_moving=ras, transform_file=Path(transform_path))


def mattes_metric(
    fixed: nib.Nifti1Image | nib.Nifti2Image, moving: nib.Nifti1Image | nib.Nifti2Image
) -> float:
    """Mattes mutual information of two images on one grid, as antsRegistration's metric.

    Negative; lower is a better match.
    """
    return float(
        ants.image_similarity(
            to_ants(fixed), to_ants(moving), metric_type="MattesMutualInformation"
        )
    )


@dataclass(frozen=True)
class HalfwayRegistration:
    """An inverse-consistent rigid registration of two images and their halfway space.

    ``fixed_to_moving`` (RAS, fixed-space points to moving-space points) is the
    log-Euclidean mean of the registration of ``moving`` onto ``fixed`` and the inverse
    of the registration of ``fixed`` onto ``moving``: swapping the two images gives
    exactly its inverse.  The halfway space lies midway: ``halfway_to_fixed`` and
    ``halfway_to_moving`` each move points by half of the transform, so resampling
    both images into it interpolates neither more than the other.
    """

    fixed_to_moving: npt.NDArray[np.float64]
    halfway_to_fixed: npt.NDArray[np.float64]
    halfway_to_moving: npt.NDArray[np.float64]
    asymmetry_mm: float  # mean distance between the two directions' answers, over the brain


def matrix_power(matrix: npt.NDArray[np.float64], power: float) -> npt.NDArray[np.float64]:
    """``matrix ** power`` of a rigid 4 x 4 matrix through its logarithm."""
    return np.asarray(np.real(linalg.expm(power * linalg.logm(matrix))), dtype=np.float64)


def register_halfway(
    fixed: nib.Nifti1Image | nib.Nifti2Image,
    moving: nib.Nifti1Image | nib.Nifti2Image,
    *,
    preset: RegistrationPreset,
    out_dir: Path,
    points_ras: npt.NDArray[np.float64] | None = None,
) -> HalfwayRegistration:
    """Rigid registration of ``moving`` and ``fixed`` in both directions, averaged.

    ``points_ras`` (N x 3, e.g. brain voxel centres) measure how far the two
    directions disagree (``asymmetry_mm``); the fixed image's voxel centres otherwise.
    """
    forward = register_linear(fixed, moving, transform="rigid", preset=preset, out_dir=out_dir)
    backward = register_linear(moving, fixed, transform="rigid", preset=preset, out_dir=out_dir)
    inverse_backward = np.asarray(np.linalg.inv(backward.fixed_to_moving), dtype=np.float64)
    mean_log = 0.5 * (
        np.real(linalg.logm(forward.fixed_to_moving)) + np.real(linalg.logm(inverse_backward))
    )
    fixed_to_moving = np.asarray(np.real(linalg.expm(mean_log)), dtype=np.float64)
    if points_ras is None:
        shape = fixed.shape[:3]
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(3, -1)
        points_ras = nib.affines.apply_affine(fixed.affine, corners.T)
    asymmetry = mean_displacement_mm(
        forward.fixed_to_moving, inverse_backward, np.asarray(points_ras)
    )
    return halfway_space(fixed_to_moving, asymmetry)


def halfway_maps(
    fixed_to_moving: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(halfway -> fixed, halfway -> moving) of a rigid map: half of it each way."""
    half = matrix_power(np.asarray(fixed_to_moving, dtype=np.float64), 0.5)
    return np.asarray(np.linalg.inv(half), dtype=np.float64), half


def halfway_space(
    fixed_to_moving: npt.NDArray[np.float64], asymmetry_mm: float
) -> HalfwayRegistration:
    """The halfway space of a rigid ``fixed_to_moving`` map (:func:`halfway_maps`)."""
    halfway_to_fixed, halfway_to_moving = halfway_maps(fixed_to_moving)
    return HalfwayRegistration(
        fixed_to_moving=fixed_to_moving,
        halfway_to_fixed=halfway_to_fixed,
        halfway_to_moving=halfway_to_moving,
        asymmetry_mm=asymmetry_mm,
    )


@dataclass(frozen=True)
class NonlinearRegistration:
    """A SyN registration of ``moving`` onto ``fixed``, on top of a linear one.

    ``transform_files`` (warp, then the linear transform) resample the moving image
    onto the fixed grid, in the order :func:`map_points` takes them.
    """

    transform_files: tuple[Path, ...]


def register_nonlinear(
    fixed: nib.Nifti1Image | nib.Nifti2Image,
    moving: nib.Nifti1Image | nib.Nifti2Image,
    *,
    initial: LinearRegistration,
    preset: RegistrationPreset,
    out_dir: Path,
) -> NonlinearRegistration:
    """SyN (deformable) registration starting from a linear registration's result."""
    return _syn(
        fixed,
        moving,
        initial=str(initial.transform_file),
        metric=(preset.syn_metric, preset.histogram_bins),
        iterations=preset.syn_iterations,
        preset=preset,
        out_dir=out_dir,
    )


def register_deformable(
    fixed: nib.Nifti1Image | nib.Nifti2Image,
    moving: nib.Nifti1Image | nib.Nifti2Image,
    *,
    preset: RegistrationPreset,
    out_dir: Path,
) -> NonlinearRegistration:
    """SyN of two images already in one space (no linear stage; the longitudinal preset).

    Metric ``preset.jacobian_syn_metric`` (its radius or bins ``jacobian_syn_sampling``)
    and iterations ``preset.jacobian_syn_iterations``; step and smoothing as the
    template's SyN.
    """
    return _syn(
        fixed,
        moving,
        initial="Identity",
        metric=(preset.jacobian_syn_metric, preset.jacobian_syn_sampling),
        iterations=preset.jacobian_syn_iterations,
        preset=preset,
        out_dir=out_dir,
    )


def _syn(
    fixed: nib.Nifti1Image | nib.Nifti2Image,
    moving: nib.Nifti1Image | nib.Nifti2Image,
    *,
    initial: str,
    metric: tuple[str, int],
    iterations: tuple[int, ...],
    preset: RegistrationPreset,
    out_dir: Path,
) -> NonlinearRegistration:
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = tempfile.mkdtemp(prefix="syn-", dir=out_dir) + os.sep
    result = ants.registration(
        fixed=to_ants(fixed),
        moving=to_ants(moving),
        type_of_transform="SyNOnly",
        initial_transform=initial,
        outprefix=prefix,
        grad_step=preset.syn_gradient_step,
        flow_sigma=preset.syn_flow_sigma,
        total_sigma=preset.syn_total_sigma,
        syn_metric=metric[0],
        syn_sampling=metric[1],
        reg_iterations=iterations,
        verbose=False,
    )
    return NonlinearRegistration(tuple(Path(p) for p in result["fwdtransforms"]))


def jacobian_determinant(
    reference: nib.Nifti1Image | nib.Nifti2Image, registration: NonlinearRegistration
) -> npt.NDArray[np.float32]:
    """Determinant of the spatial derivative of a SyN warp, on ``reference``'s grid.

    The warp maps fixed points to moving points, so the determinant is the moving
    image's local volume per unit volume of the fixed image.
    """
    (warp,) = [p for p in registration.transform_files if p.name.endswith("Warp.nii.gz")]
    determinant = ants.create_jacobian_determinant_image(
        to_ants(reference), str(warp), do_log=False, geom=False
    )
    return np.asarray(determinant.numpy(), dtype=np.float32)


def map_points(
    points_ras: npt.NDArray[np.float32], transform_files: tuple[Path, ...]
) -> npt.NDArray[np.float32]:
    """Where ANTs transform files send RAS points (3 x N): the fixed-to-moving map.

    The files are taken in the order :func:`ants.apply_transforms` takes them (the
    registration's ``fwdtransforms``: warp, then the linear transform); a point moves
    through the first file first.  Linear files (ANTs' ``.mat``, ITK text ``.txt``)
    are 4 x 4 maps; warps
    (displacement fields) are interpolated linearly, with zero displacement outside
    their grid, as ITK does.  Resampling an image through the same files samples it
    at these points: mapping the points once serves any number of images.
    """
    lps = np.asarray(points_ras, dtype=np.float32) * _FLIP
    for path in transform_files:
        if path.suffix in (".mat", ".txt"):
            matrix = _itk_matrix(ants.read_transform(str(path))).astype(np.float32)
            lps = matrix[:3, :3] @ lps + matrix[:3, 3:]
            continue
        # An ITK displacement field: LPS vectors on a grid whose affine nibabel gives in RAS.
        field = nib.Nifti1Image.from_filename(path)
        vectors = np.asarray(field.dataobj, dtype=np.float32).reshape(*field.shape[:3], 3)
        to_voxel = np.linalg.inv(field.affine).astype(np.float32)
        voxel = to_voxel[:3, :3] @ (lps * _FLIP) + to_voxel[:3, 3:]
        lps = lps + np.stack([sample_linear(vectors[..., axis], voxel) for axis in range(3)])
    return np.asarray(lps * _FLIP, dtype=np.float32)


def sample_linear(
    values: npt.NDArray[np.floating[Any]], voxel: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """``values`` interpolated (trilinear) at voxel coordinates ``voxel`` (3 x N).

    As ITK's resampling: points within half a voxel of the grid's edge take the edge
    value, points farther out take 0.
    """
    shape = np.array(values.shape[:3], dtype=np.float32)[:, None]
    inside = np.all((voxel >= -0.5) & (voxel < shape - 0.5), axis=0)
    sampled = ndimage.map_coordinates(
        np.asarray(values, dtype=np.float32), voxel, order=1, mode="nearest", prefilter=False
    )
    return np.where(inside, sampled, np.float32(0.0)).astype(np.float32)


def apply_linear(
    moving: nib.Nifti1Image | nib.Nifti2Image,
    reference: nib.Nifti1Image | nib.Nifti2Image,
    fixed_to_moving: npt.NDArray[np.float64],
    *,
    interpolation: Literal["linear", "nearest", "bspline"] = "linear",
) -> nib.Nifti1Image:
    """Resample ``moving`` onto ``reference``'s grid through a RAS fixed-to-moving matrix."""
    lps = _LPS @ np.asarray(fixed_to_moving, dtype=np.float64) @ _LPS
    transform = ants.create_ants_transform(
        transform_type="AffineTransform",
        dimension=3,
        matrix=lps[:3, :3],
        offset=lps[:3, 3],
    )
    interpolator = {"linear": "linear", "nearest": "nearestNeighbor", "bspline": "bSpline"}[
        interpolation
    ]
    resampled = ants.apply_ants_transform_to_image(
        transform, to_ants(moving), to_ants(reference), interpolation=interpolator
    )
    return from_ants(resampled)


def resample_isotropic(
    image: nib.Nifti1Image | nib.Nifti2Image, voxel_mm: float
) -> nib.Nifti1Image:
    """``image`` resampled (linear) to isotropic voxels of ``voxel_mm``, same field of view."""
    resampled = ants.resample_image(
        to_ants(image), (voxel_mm, voxel_mm, voxel_mm), use_voxels=False, interp_type=0
    )
    return from_ants(resampled)


def n4_bias_field(
    image: nib.Nifti1Image | nib.Nifti2Image,
    *,
    preset: RegistrationPreset,
    mask: nib.Nifti1Image | None = None,
) -> npt.NDArray[np.float32]:
    """The N4 bias field of ``image`` (divide the image by it to correct it)."""
    field = ants.n4_bias_field_correction(
        to_ants(image),
        mask=None if mask is None else to_ants(mask),
        rescale_intensities=False,
        shrink_factor=preset.n4_shrink_factor,
        convergence={"iters": list(preset.n4_iterations), "tol": 1e-7},
        spline_param=None,
        return_bias_field=True,
        verbose=False,
    )
    values = np.asarray(field.numpy(), dtype=np.float32)
    return np.maximum(values, 1e-6)


def n4_bias_correct(
    image: nib.Nifti1Image | nib.Nifti2Image,
    *,
    preset: RegistrationPreset,
    mask: nib.Nifti1Image | None = None,
) -> nib.Nifti1Image:
    """``image`` divided by its N4 bias field (:func:`n4_bias_field`)."""
    data = np.asarray(image.dataobj, dtype=np.float32)
    corrected = nib.Nifti1Image(data / n4_bias_field(image, preset=preset, mask=mask), image.affine)
    corrected.header.set_xyzt_units("mm")
    return corrected


def mean_displacement_mm(
    estimated: npt.NDArray[np.float64],
    truth: npt.NDArray[np.float64],
    points_ras: npt.NDArray[np.float64],
) -> float:
    """Mean distance (mm) between where two linear maps send the given points (N x 3).

    >>> shift = np.eye(4); shift[0, 3] = 2.0
    >>> mean_displacement_mm(shift, np.eye(4), np.zeros((5, 3)))
    2.0
    """
    homogeneous = np.c_[points_ras, np.ones(len(points_ras))]
    difference = homogeneous @ (np.asarray(estimated) - np.asarray(truth)).T
    return float(np.linalg.norm(difference[:, :3], axis=1).mean())
