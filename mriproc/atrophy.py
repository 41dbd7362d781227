"""Brain volume change between baseline and a follow-up: boundary shift and Jacobian integration.

Boundary shift (the idea of SIENA, Smith et al., NeuroImage 2002;17:479-489, written
from its published description):

1. The brain/CSF boundary of one visit is a surface: the half-level iso-surface of
   its parenchyma fraction (marching cubes), each vertex with its outward normal and
   the area it stands for.  On thick slices only vertices whose normal lies mostly
   in the slice plane are kept, and their profiles run in the plane: across slices
   an edge is averaged over the slice thickness and its position depends on where
   the slices fall.
2. At every vertex, an intensity profile along the normal is sampled from both
   visits' own images (the other visit's through the rigid registration: each image
   is interpolated once, at points off both grids); the edge's displacement is the
   shift that best correlates the two profiles' derivatives (windowed Pearson
   correlation, parabolic refinement of the best sample), so it does not depend on
   each visit's gain, offset or slow bias.
3. Self-calibration: the same vertices measured between the image and a copy of it
   scaled by a known factor about the brain's centre (sampled, not resampled) give
   the measurement's gain, measured over known displacement, whatever the contrast,
   the resolution and the smoothing.  The volume the edges sweep (area x
   displacement, divided by the gain) is carried from the vertices measured to the
   whole surface by their share of its area (atrophy is a boundary retreat: it
   scales with edge area), and divided by the parenchymal volume.
4. The forward run (baseline's surface) and the backward run (the follow-up's
   surface, roles swapped) are averaged.

``pcf_change_pct`` uses the same displacements inside the baseline's PCF slab: the
parenchyma the slab gains or loses through its brain/CSF boundaries (the
intracranial volume in the slab does not change), over the slab's parenchyma.

Jacobian integration: the determinant of a nonlinear registration's spatial
derivative, integrated over the baseline's parenchyma (:func:`jacobian_change`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage import measure

from mriproc.config import RegistrationPreset
from mriproc.endpoints import PbvcParams
from mriproc.registration import (
    apply_linear,
    halfway_maps,
    jacobian_determinant,
    register_deformable,
)

__all__ = [
    "BoundaryShift",
    "EdgeMotion",
    "EdgeSurface",
    "JacobianChange",
    "VisitImage",
    "boundary_shift",
    "brain_surface",
    "edge_motion",
    "jacobian_change",
    "jacobian_integration",
    "scaling_about",
]

FloatArray = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class VisitImage:
    """One visit's image and parenchyma fraction on its own grid (RAS+ affine)."""

    intensity: npt.NDArray[np.floating]
    parenchyma: npt.NDArray[np.floating]
    affine: Matrix

    @property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel size (mm)."""
        sizes = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return (float(sizes[0]), float(sizes[1]), float(sizes[2]))


@dataclass(frozen=True)
class EdgeSurface:
    """Brain/CSF boundary points in world (RAS mm) coordinates."""

    points: FloatArray  # (N, 3)
    normals: FloatArray  # (N, 3) unit, outward (parenchyma -> CSF)
    areas: FloatArray  # (N,) mm^2 each vertex stands for
    directions: FloatArray  # (N, 3) unit: where the profile runs (normal, or its in-plane part)
    cosines: FloatArray  # (N,) normal . direction: profile shift -> normal displacement
    measurable: npt.NDArray[np.bool_]  # (N,) a profile can be taken (in-plane normal, in range)

    def __len__(self) -> int:
        return len(self.areas)

    def subset(self, keep: npt.NDArray[np.bool_]) -> EdgeSurface:
        """The vertices where ``keep`` is true."""
        return EdgeSurface(
            self.points[keep],
            self.normals[keep],
            self.areas[keep],
            self.directions[keep],
            self.cosines[keep],
            self.measurable[keep],
        )


def _slice_axis(zooms: tuple[float, float, float]) -> int:
    return int(np.argmax(zooms))


def brain_surface(visit: VisitImage, params: PbvcParams) -> EdgeSurface:
    """The half-level iso-surface of the visit's parenchyma fraction, with profile directions.

    On thick slices (slice thickness at least ``params.thick_slice_ratio`` times the
    in-plane size) vertices whose normal is tilted out of the slice plane by more
    than ``params.max_normal_tilt_deg`` are dropped and profiles run in the plane.
    """
    zooms = visit.zooms
    sigma = [params.surface_smoothing_mm / z for z in zooms]
    fraction = ndimage.gaussian_filter(np.asarray(visit.parenchyma, dtype=np.float32), sigma)
    if not (fraction.max() > 0.5 > fraction.min()):
        return _empty_surface()
    vertices, faces, _, _ = measure.marching_cubes(
        fraction, level=0.5, spacing=(1.0, 1.0, 1.0), allow_degenerate=False
    )
    # Normals from the fraction's gradient (in mm), pointing where it falls.
    gradient = np.stack(
        [
            ndimage.map_coordinates(g, vertices.T, order=1, mode="nearest")
            for g in np.gradient(fraction.astype(np.float64), *zooms)
        ],
        axis=1,
    )
    linear = visit.affine[:3, :3] / np.asarray(zooms)  # direction cosines of the voxel axes
    normals_vox = -gradient
    length = np.linalg.norm(normals_vox, axis=1)
    valid = length > 1e-6
    normals_vox = normals_vox / np.maximum(length, 1e-12)[:, None]
    # Vertex areas: a third of each adjacent triangle's area (in mm).
    corners = vertices[faces] * np.asarray(zooms)
    triangle = 0.5 * np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    areas = np.zeros(len(vertices))
    for k in range(3):
        np.add.at(areas, faces[:, k], triangle / 3.0)
    directions_vox = normals_vox.copy()
    cosines = np.ones(len(vertices))
    measurable = np.ones(len(vertices), dtype=bool)
    axis = _slice_axis(zooms)
    in_plane = sorted(z for i, z in enumerate(zooms) if i != axis)
    if zooms[axis] >= params.thick_slice_ratio * in_plane[0]:
        tilt = np.abs(normals_vox[:, axis])
        measurable &= tilt <= np.sin(np.radians(params.max_normal_tilt_deg))
        directions_vox[:, axis] = 0.0
        planar = np.linalg.norm(directions_vox, axis=1)
        directions_vox /= np.maximum(planar, 1e-12)[:, None]
        cosines = planar
        # Only vertices on a slice (marching cubes puts those of in-plane grid edges
        # there): the visit's own profile then lies within one of its slices.
        level = vertices[:, axis]
        measurable &= np.abs(level - np.round(level)) < 1e-3
    points = vertices @ visit.affine[:3, :3].T + visit.affine[:3, 3]
    normals = normals_vox @ linear.T
    directions = directions_vox @ linear.T
    surface = EdgeSurface(points, normals, areas, directions, cosines, measurable)
    return surface.subset(valid)


def _empty_surface() -> EdgeSurface:
    empty = np.zeros((0, 3))
    return EdgeSurface(empty, empty, np.zeros(0), empty, np.zeros(0), np.zeros(0, dtype=bool))


@dataclass(frozen=True)
class EdgeMotion:
    """Displacement of every vertex's edge along its profile, and how well it matched."""

    shift_mm: FloatArray  # (N,) along the profile direction; > 0: outwards
    correlation: FloatArray  # (N,) peak windowed correlation of the derivative profiles
    inside: npt.NDArray[np.bool_]  # (N,) peak inside the search range, profile inside both images


def _sampler(
    image: npt.NDArray[np.floating], affine: Matrix, *, cubic: bool = False
) -> Callable[[FloatArray], FloatArray]:
    """Interpolation of ``image`` at world points (..., 3); NaN outside the grid.

    ``cubic``: cubic B-spline interpolation, which passes through the samples and
    blurs no more at one sub-voxel offset than at another; linear interpolation
    blurs most half-way between samples, which moves the edges of curved surfaces
    by different amounts in the two visits (their grids fall differently).
    """
    data = np.asarray(image, dtype=np.float32)
    if cubic:
        data = ndimage.spline_filter(data, order=3, mode="mirror", output=np.float32)
    to_voxel = np.linalg.inv(affine)
    upper = np.asarray(data.shape, dtype=np.float64) - 1.0

    def sample(points: FloatArray) -> FloatArray:
        voxels = points @ to_voxel[:3, :3].T + to_voxel[:3, 3]
        flat = voxels.reshape(-1, 3)
        values = ndimage.map_coordinates(
            data, flat.T, order=3 if cubic else 1, mode="mirror", prefilter=False
        )
        outside = np.any((flat < -0.01) | (flat > upper + 0.01), axis=1)
        values = np.where(outside, np.nan, values)
        return np.asarray(values.reshape(points.shape[:-1]), dtype=np.float64)

    return sample


def _derivative(profiles: FloatArray, sigma_samples: float) -> FloatArray:
    return np.asarray(
        ndimage.gaussian_filter1d(profiles, sigma_samples, axis=1, order=1, mode="nearest"),
        dtype=np.float64,
    )


def _central_lobe(derivative: FloatArray, centre: int) -> FloatArray:
    """1 on the derivative's lobe around ``centre`` (same sign, contiguous), with a sample
    of margin each side, else 0.

    The edge at a vertex is this lobe: a neighbouring edge within the window (the
    other wall of a sulcus, a millimetre or two away) has the opposite sign and moves
    the other way under atrophy; correlating it too would average the two motions
    towards zero, while a scaling (the self-calibration) moves both alike.
    """
    sign = np.sign(derivative[:, centre : centre + 1])
    same = np.sign(derivative) == sign
    n = derivative.shape[1]
    lobe = np.zeros(derivative.shape, dtype=bool)
    lobe[:, centre] = True
    for direction in (-1, 1):
        running = np.ones(len(derivative), dtype=bool)
        index = centre + direction
        while 0 <= index < n:
            running &= same[:, index]
            lobe[:, index] = running
            index += direction
    grown = lobe.copy()
    grown[:, 1:] |= lobe[:, :-1]
    grown[:, :-1] |= lobe[:, 1:]
    return grown.astype(np.float64)


def edge_motion(
    fixed: VisitImage,
    moving: VisitImage,
    surface: EdgeSurface,
    fixed_to_moving: Matrix,
    params: PbvcParams,
    *,
    chunk: int = 20000,
) -> EdgeMotion:
    """How far the edge at each vertex of ``surface`` (on ``fixed``) lies in ``moving``.

    ``fixed_to_moving`` maps RAS points of the fixed image's space to the moving
    image's.  Profiles run from ``-profile_half_length_mm`` to ``+...`` along each
    vertex's direction, sampled every ``profile_step_mm``; the moving profile is
    searched within ``+-search_mm``.
    """
    step = params.profile_step_mm
    half = round(params.profile_half_length_mm / step)
    search = round(params.search_mm / step)
    offsets = np.arange(-half, half + 1) * step
    offsets_moving = np.arange(-half - search, half + search + 1) * step
    window = np.exp(-0.5 * (offsets / params.profile_window_mm) ** 2)
    window /= window.sum()
    sigma = params.profile_smoothing_mm / step
    sample_fixed = _sampler(fixed.intensity, fixed.affine, cubic=True)
    sample_moving = _sampler(moving.intensity, moving.affine, cubic=True)
    rotation, translation = fixed_to_moving[:3, :3], fixed_to_moving[:3, 3]
    n = len(surface)
    shift = np.zeros(n)
    best_corr = np.zeros(n)
    inside = np.zeros(n, dtype=bool)
    for start in range(0, n, chunk):
        part = slice(start, min(start + chunk, n))
        points, directions = surface.points[part], surface.directions[part]
        along_fixed = points[:, None, :] + offsets[None, :, None] * directions[:, None, :]
        along_moving = points[:, None, :] + offsets_moving[None, :, None] * directions[:, None, :]
        profile_fixed = sample_fixed(along_fixed)
        profile_moving = sample_moving(along_moving @ rotation.T + translation)
        complete = ~(np.isnan(profile_fixed).any(axis=1) | np.isnan(profile_moving).any(axis=1))
        d_fixed = _derivative(np.nan_to_num(profile_fixed), sigma)
        d_moving = _derivative(np.nan_to_num(profile_moving), sigma)
        weight = window * _central_lobe(d_fixed, half)
        weight /= np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
        centred_fixed = d_fixed - (d_fixed * weight).sum(axis=1, keepdims=True)
        norm_fixed = np.sqrt((weight * centred_fixed**2).sum(axis=1))
        correlations = np.empty((len(points), 2 * search + 1))
        for k in range(2 * search + 1):
            segment = d_moving[:, k : k + 2 * half + 1]
            centred = segment - (segment * weight).sum(axis=1, keepdims=True)
            norm = np.sqrt((weight * centred**2).sum(axis=1))
            correlations[:, k] = (weight * centred_fixed * centred).sum(axis=1) / np.maximum(
                norm_fixed * norm, 1e-12
            )
        peak = np.argmax(correlations, axis=1)
        rows = np.arange(len(points))
        interior = (peak > 0) & (peak < 2 * search)
        left = correlations[rows, np.clip(peak - 1, 0, 2 * search)]
        centre = correlations[rows, peak]
        right = correlations[rows, np.clip(peak + 1, 0, 2 * search)]
        curvature = left - 2.0 * centre + right
        refine = np.where(
            interior & (curvature < 0),
            0.5 * (left - right) / np.where(curvature < 0, curvature, -1),
            0,
        )
        shift[part] = (peak + np.clip(refine, -0.5, 0.5) - search) * step
        best_corr[part] = centre
        inside[part] = interior & complete
    return EdgeMotion(shift, best_corr, inside)


def _scatter(motion: EdgeMotion, where: npt.NDArray[np.bool_]) -> EdgeMotion:
    """``motion`` of the vertices where ``where`` is true, placed among all of them."""
    shift, correlation = np.zeros(len(where)), np.zeros(len(where))
    inside = np.zeros(len(where), dtype=bool)
    shift[where], correlation[where], inside[where] = (
        motion.shift_mm,
        motion.correlation,
        motion.inside,
    )
    return EdgeMotion(shift, correlation, inside)


def scaling_about(centre: FloatArray, factor: float) -> Matrix:
    """The 4 x 4 map ``p -> centre + factor * (p - centre)``."""
    matrix = np.eye(4)
    matrix[:3, :3] *= factor
    matrix[:3, 3] = (1.0 - factor) * np.asarray(centre, dtype=np.float64)
    return matrix


@dataclass(frozen=True)
class _Run:
    """One direction's answer (the surface of ``earlier`` measured against ``later``)."""

    pbvc: float
    slab_change_pct: float
    used: int
    total: int
    gain: float  # measured / expected displacement of the scaled copy
    median_correlation: float
    parenchyma_ml: float  # the surface's own visit's parenchymal volume


def _one_direction(
    fixed: VisitImage,
    moving: VisitImage,
    fixed_to_moving: Matrix,
    slab_weight: FloatArray,
    slab_parenchyma_ml: float,
    params: PbvcParams,
) -> _Run:
    """PBVC of ``moving`` relative to ``fixed`` measured on ``fixed``'s surface."""
    surface = brain_surface(fixed, params)
    if len(surface) == 0:
        return _Run(np.nan, np.nan, 0, 0, np.nan, np.nan, np.nan)
    weights = np.asarray(fixed.parenchyma, dtype=np.float64)
    grid = np.indices(weights.shape).reshape(3, -1)
    mass = weights.reshape(-1)
    centre_vox = (grid * mass).sum(axis=1) / max(mass.sum(), 1e-12)
    centre = fixed.affine[:3, :3] @ centre_vox + fixed.affine[:3, 3]
    factor = 1.0 + params.calibration_scale_pct / 100.0
    # The scaled copy S(p) = I(c + (p - c) / s): sampled through the inverse scaling.
    measurable = surface.subset(surface.measurable)
    calibration = _scatter(
        edge_motion(fixed, fixed, measurable, scaling_about(centre, 1.0 / factor), params),
        surface.measurable,
    )
    motion = _scatter(
        edge_motion(fixed, moving, measurable, fixed_to_moving, params), surface.measurable
    )
    used = (
        motion.inside
        & calibration.inside
        & (motion.correlation >= params.min_profile_correlation)
        & (calibration.correlation >= params.min_profile_correlation)
    )
    if used.sum() < params.min_edge_points:
        return _Run(np.nan, np.nan, int(used.sum()), len(surface), np.nan, np.nan, np.nan)
    # A shift along the profile is a displacement along the normal times their cosine.
    area = surface.areas
    displacement = motion.shift_mm * surface.cosines
    measured = float((area * calibration.shift_mm * surface.cosines)[used].sum())
    geometric = (factor - 1.0) * ((surface.points - centre) * surface.normals).sum(axis=1)
    expected = float((area * geometric)[used].sum())
    gain = measured / expected if expected > 0 else np.nan
    # Volume swept by the edges (mL), corrected by the calibration's gain and carried
    # from the edge points measured to the whole surface by their share of its area:
    # atrophy is a boundary retreat, so it scales with edge area (not, as a scaling's
    # does, with the distance from the centre, which would over-weight the in-plane
    # normals of thick slices: those lie where the brain is widest).
    slab = np.nan_to_num(_sampler(slab_weight, fixed.affine)(surface.points))
    swept_ml = float((area * displacement)[used].sum()) / gain / 1000.0
    slab_swept_ml = float((area * displacement * slab)[used].sum()) / gain / 1000.0
    voxel_ml = float(abs(np.linalg.det(fixed.affine[:3, :3]))) / 1000.0
    parenchyma_ml = float(weights.sum()) * voxel_ml
    pbvc = 100.0 * swept_ml * _area_share(area, used) / parenchyma_ml
    slab_change_ml = slab_swept_ml * _area_share(area * slab, used)
    slab_pct = 100.0 * slab_change_ml / slab_parenchyma_ml if slab_parenchyma_ml > 0 else np.nan
    return _Run(
        pbvc,
        slab_pct,
        int(used.sum()),
        len(surface),
        gain,
        float(np.median(motion.correlation[used])),
        parenchyma_ml,
    )


def _area_share(area: FloatArray, used: npt.NDArray[np.bool_]) -> float:
    """The whole surface's area over the area of the edge points used (NaN if none)."""
    measured = float(area[used].sum())
    return float(area.sum()) / measured if measured > 0 else np.nan


@dataclass(frozen=True)
class BoundaryShift:
    """PBVC and PCF change by boundary shift, with the figures that say how far to trust it."""

    pbvc: float  # %
    pcf_change_pct: float  # %
    forward_pbvc: float
    backward_pbvc: float
    edge_points: int  # used, forward + backward
    edge_points_total: int
    calibration_gain: float  # measured / geometric displacement of the scaled copy (mean)
    median_correlation: float
    parenchyma_ml: float  # baseline's parenchymal volume, PBVC's denominator
    distrust_reason: str | None  # why the value cannot be trusted (None: it can)

    def quality(self) -> dict[str, float]:
        """The quality figures, for the record."""
        return {
            "forward_pbvc": self.forward_pbvc,
            "backward_pbvc": self.backward_pbvc,
            "edge_points": float(self.edge_points),
            "edge_points_total": float(self.edge_points_total),
            "calibration_gain": self.calibration_gain,
            "median_correlation": self.median_correlation,
            "parenchyma_ml": self.parenchyma_ml,
        }

    def note(self) -> str:
        """How the value was measured, for the ``note`` column."""
        return (
            f"boundary shift: {self.edge_points} of {self.edge_points_total} edge points, "
            f"calibration gain {self.calibration_gain:.3f}, forward {self.forward_pbvc:+.3f} % "
            f"/ backward {self.backward_pbvc:+.3f} %"
        )

    def distrust(self) -> str | None:
        """Why the values cannot be trusted, or None."""
        return self.distrust_reason


def boundary_shift(
    baseline: VisitImage,
    followup: VisitImage,
    baseline_to_followup: Matrix,
    baseline_slab: npt.NDArray[np.floating],
    params: PbvcParams,
) -> BoundaryShift:
    """PBVC and PCF change of ``followup`` relative to ``baseline`` (forward/backward mean).

    ``baseline_to_followup`` maps baseline RAS points to follow-up RAS points (the
    rigid registration); ``baseline_slab`` is the PCF slab weight on the baseline grid.
    """
    voxel_ml = float(abs(np.linalg.det(baseline.affine[:3, :3]))) / 1000.0
    slab = np.asarray(baseline_slab, dtype=np.float64)
    slab_ml = float((slab * np.asarray(baseline.parenchyma, dtype=np.float64)).sum()) * voxel_ml
    to_baseline = np.asarray(np.linalg.inv(baseline_to_followup), dtype=np.float64)
    # The backward run measures on the follow-up's surface: the baseline slab is
    # carried onto the follow-up grid by sampling it through the registration.
    followup_slab = _carry(slab, baseline.affine, followup, to_baseline)
    forward = _one_direction(baseline, followup, baseline_to_followup, slab, slab_ml, params)
    backward = _one_direction(followup, baseline, to_baseline, followup_slab, slab_ml, params)
    gain = 0.5 * (forward.gain + backward.gain)
    difference = abs(forward.pbvc + backward.pbvc)
    reason = None
    if min(forward.used, backward.used) < params.min_edge_points:
        reason = (
            f"boundary shift: too few edge points could be measured (forward {forward.used}, "
            f"backward {backward.used}; at least {params.min_edge_points} each)"
        )
    elif not params.min_calibration_gain <= gain <= params.max_calibration_gain:
        reason = (
            f"boundary shift: the self-calibration found the edges of a scaled copy moved by "
            f"{gain:.2f} times the known amount (allowed {params.min_calibration_gain:g}-"
            f"{params.max_calibration_gain:g}): the edges cannot be located"
        )
    elif not difference <= params.max_direction_difference_pct:
        reason = (
            f"boundary shift: forward ({forward.pbvc:+.2f} %) and backward "
            f"({-backward.pbvc:+.2f} %) runs disagree by {difference:.2f} points "
            f"(allowed {params.max_direction_difference_pct:g})"
        )
    return BoundaryShift(
        pbvc=0.5 * (forward.pbvc - backward.pbvc),
        pcf_change_pct=0.5 * (forward.slab_change_pct - backward.slab_change_pct),
        forward_pbvc=forward.pbvc,
        backward_pbvc=-backward.pbvc,
        edge_points=forward.used + backward.used,
        edge_points_total=forward.total + backward.total,
        calibration_gain=gain,
        median_correlation=0.5 * (forward.median_correlation + backward.median_correlation),
        parenchyma_ml=forward.parenchyma_ml,
        distrust_reason=reason,
    )


def _carry(
    values: FloatArray, affine: Matrix, target: VisitImage, target_to_source: Matrix
) -> FloatArray:
    """``values`` (on ``affine``'s grid) sampled at every voxel of ``target``'s grid."""
    shape = np.asarray(target.parenchyma).shape
    grid = np.indices(shape).reshape(3, -1).T.astype(np.float64)
    world = grid @ target.affine[:3, :3].T + target.affine[:3, 3]
    source = world @ target_to_source[:3, :3].T + target_to_source[:3, 3]
    carried = np.nan_to_num(_sampler(values, affine)(source))
    return np.asarray(carried.reshape(shape), dtype=np.float64)


@dataclass(frozen=True)
class JacobianChange:
    """PBVC and PCF change by Jacobian integration."""

    pbvc: float  # %
    pcf_change_pct: float  # %
    halfway_voxel_mm: float
    parenchyma_ml: float  # baseline parenchyma integrated over (halfway space)

    def quality(self) -> dict[str, float]:
        """The quality figures, for the record."""
        return {"halfway_voxel_mm": self.halfway_voxel_mm, "parenchyma_ml": self.parenchyma_ml}

    def note(self) -> str:
        """How the value was measured, for the ``note`` column."""
        return (
            f"Jacobian integration: SyN in halfway space on {self.halfway_voxel_mm:g} mm voxels, "
            f"over {self.parenchyma_ml:.0f} mL of baseline parenchyma"
        )

    def distrust(self) -> str | None:
        """Why the values cannot be trusted, or None."""
        return None


def jacobian_integration(
    baseline: VisitImage,
    followup: VisitImage,
    baseline_to_followup: Matrix,
    baseline_slab: npt.NDArray[np.floating],
    preset: RegistrationPreset,
    out_dir: Path,
) -> JacobianChange:
    """PBVC and PCF change from a SyN registration of the two visits in their halfway space.

    Both images (and the baseline's parenchyma and slab) are resampled once into an
    isotropic grid of ``preset.jacobian_voxel_mm`` in the halfway space of the rigid
    registration; the follow-up is registered onto the baseline there, and the
    warp's Jacobian determinant (follow-up volume per baseline volume) is integrated
    over the baseline's parenchyma, and over it inside the slab for PCF change.
    """
    halfway_to_baseline, half = halfway_maps(baseline_to_followup)
    voxel = preset.jacobian_voxel_mm
    shape = np.asarray(np.asarray(baseline.parenchyma).shape)
    extent = shape * np.asarray(baseline.zooms)
    size = tuple(int(np.ceil(e / voxel)) for e in extent)
    axes = baseline.affine[:3, :3] / np.asarray(baseline.zooms)
    grid = np.eye(4)
    grid[:3, :3] = axes * voxel
    first = baseline.affine[:3, :3] @ (-0.5 * np.ones(3)) + baseline.affine[:3, 3]
    grid[:3, 3] = first + grid[:3, :3] @ (0.5 * np.ones(3))
    reference = nib.Nifti1Image(np.zeros(size, dtype=np.float32), grid)

    def halfway(
        values: npt.NDArray[np.floating], affine: Matrix, to_visit: Matrix
    ) -> nib.Nifti1Image:
        image = nib.Nifti1Image(np.asarray(values, dtype=np.float32), affine)
        return apply_linear(image, reference, to_visit)

    fixed = halfway(baseline.intensity, baseline.affine, halfway_to_baseline)
    moving = halfway(followup.intensity, followup.affine, half)
    parenchyma = np.asarray(
        halfway(baseline.parenchyma, baseline.affine, halfway_to_baseline).dataobj
    )
    slab = np.asarray(halfway(baseline_slab, baseline.affine, halfway_to_baseline).dataobj)
    registration = register_deformable(fixed, moving, preset=preset, out_dir=out_dir)
    determinant = jacobian_determinant(fixed, registration)
    voxel_ml = voxel**3 / 1000.0
    return JacobianChange(
        pbvc=jacobian_change(determinant, parenchyma),
        pcf_change_pct=jacobian_change(determinant, parenchyma * slab),
        halfway_voxel_mm=voxel,
        parenchyma_ml=float(parenchyma.sum()) * voxel_ml,
    )


def jacobian_change(
    jacobian: npt.NDArray[np.floating], parenchyma: npt.NDArray[np.floating]
) -> float:
    """PBVC (%) from a registration's Jacobian determinant over the baseline parenchyma.

    >>> round(jacobian_change(np.full((4, 4, 4), 0.99), np.ones((4, 4, 4))), 9)
    -1.0
    """
    weight = np.asarray(parenchyma, dtype=np.float64)
    total = float(weight.sum())
    if total <= 0:
        raise ValueError("no parenchyma to integrate the Jacobian over")
    return 100.0 * (float((weight * np.asarray(jacobian, dtype=np.float64)).sum()) / total - 1.0)
