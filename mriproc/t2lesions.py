"""T2-hyperintense lesions of one visit: seeds in white matter, growth by lesion fraction.

1. Reference intensities, per lesion channel: normal-appearing white matter (NAWM:
   voxels the tissue model calls mostly WM where the template's WM probability is
   high too, so that a tissue model misled by dark non-brain voxels cannot bias it)
   gives a median and a robust SD (MAD); grey matter gives a median.  A lesion must
   be brighter than both.
2. Where lesions may be: seeds only where the template's WM probability, carried to
   the scan, is high (lesions are white-matter lesions; on 5 mm slices a lesion's
   partial-volume voxels have the signal of grey matter, so the subject's own
   tissue classes cannot tell them from cortex or deep grey matter); growth up to
   ``white_matter_margin_mm`` beyond that core ("in or next to white matter").
3. Seeds: hyperintense on every channel relative to NAWM, and far above the brighter
   of NAWM and GM in the channels' combined z-score.
4. Growth by partial-volume fraction: the lesion signature is the median of the
   seeds' interior (in-plane erosion; pure lesion tissue; ``lesion_signature``
   "global"), or each lesion's own brightest seed ("per_lesion": faint and bright
   lesions each delineated at half their own contrast), and each voxel's lesion
   fraction is its position on the line from the background to that signature
   (channels weighted by their noise).  A voxel is lesion when that fraction is at
   least ``min_lesion_fraction`` (the ground-truth convention: a voxel is lesion
   when at least half of it is), first with NAWM as background (global signature
   only), then per lesion
   with the median of a ring around it (a periventricular or juxtacortical lesion
   borders CSF or cortex, not NAWM).  Growth stays within ``grow_mm`` of the seeds
   and connected to them.
5. Components and minimum size: :func:`mriproc.lesions.label_lesions`.
6. With a ``classifier``, steps 1-5 only propose candidates: each is described by
   :func:`mriproc.lesion_candidates.candidate_features` (size, shape, contrast to
   white matter, grey matter and its ring, surrounding tissue, depth, distance to the
   ventricles, the lesion-frequency prior) and kept when the classifier's
   probability is at least ``min_probability``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.config import LabellingParams
from mriproc.endpoints import T2LesionParams
from mriproc.lesion_candidates import candidate_features, load_lesion_classifier
from mriproc.lesions import (
    MIN_REFERENCE_VOXELS,
    LabelledLesions,
    connectivity_structure,
    in_plane_cross,
    label_lesions,
    lesions_from_labels,
)

__all__ = [
    "LesionReferences",
    "T2Lesions",
    "candidate_table",
    "classifier_problem",
    "lesion_fraction",
    "normal_appearing_wm",
    "segment_t2_lesions",
]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

# Fewer interior seed voxels than this: the lesion signature is the median of all seeds.
_MIN_INTERIOR = 20


class LesionSegmentationError(ValueError):
    """The images do not allow lesion segmentation (no normal-appearing white matter)."""


@dataclass(frozen=True)
class LesionReferences:
    """Reference intensities per lesion channel, for the record."""

    nawm_median: npt.NDArray[np.float64]
    nawm_sd: npt.NDArray[np.float64]
    gm_median: npt.NDArray[np.float64]
    lesion_signature: npt.NDArray[np.float64] | None  # None when there is no seed
    seed_voxels: int


@dataclass(frozen=True)
class T2Lesions:
    """The labelled T2 lesions of one scan and the references that found them."""

    lesions: LabelledLesions
    references: LesionReferences
    candidates: int  # lesions proposed before the per-candidate decision (if any)
    # Each kept lesion's probability (label order), when a classifier decided.
    probabilities: npt.NDArray[np.float64] | None = None


def normal_appearing_wm(
    tissue_wm: npt.ArrayLike,
    template_wm: npt.ArrayLike,
    brain: npt.ArrayLike,
    params: T2LesionParams,
) -> BoolArray:
    """White matter by both the tissue model and the template, inside the brain."""
    return np.asarray(
        (np.asarray(brain) > 0)
        & (np.asarray(template_wm) >= params.wm_prior_min)
        & (np.asarray(tissue_wm) >= params.nawm_min_wm_fraction)
    )


def segment_t2_lesions(
    channels: Sequence[npt.ArrayLike],
    tissue: Mapping[str, npt.ArrayLike],
    template_wm: npt.ArrayLike,
    brain: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    params: T2LesionParams,
    labelling: LabellingParams,
    prior: npt.ArrayLike | None = None,
) -> T2Lesions:
    """Segment the T2 lesions of one scan.

    Parameters
    ----------
    channels
        The protocol's lesion channels (bias-corrected, co-registered, one grid).
    tissue
        Tissue fractions ``CSF``, ``GM`` and ``WM`` on that grid (the tissue model).
    template_wm
        The template's white-matter probability carried to the grid.
    brain
        The brain mask.
    voxel_size_mm
        Voxel spacing of the grid.
    params, labelling
        The protocol's ``t2_lesions`` and ``labelling`` sections.
    prior
        The lesion-frequency prior carried to the grid (a feature of the
        per-candidate decision; None: unknown to the classifier).
    """
    data = [np.asarray(c, dtype=np.float64) for c in channels]
    zooms = tuple(float(z) for z in voxel_size_mm)
    in_brain = np.asarray(brain) > 0
    nawm = normal_appearing_wm(tissue["WM"], template_wm, brain, params)
    grey = in_brain & (np.asarray(tissue["GM"]) >= params.gm_min_fraction)
    if nawm.sum() < MIN_REFERENCE_VOXELS or grey.sum() < MIN_REFERENCE_VOXELS:
        raise LesionSegmentationError(
            f"too few white-matter ({int(nawm.sum())}) or grey-matter ({int(grey.sum())}) "
            "voxels for reference intensities"
        )
    nawm_median = np.array([np.median(c[nawm]) for c in data])
    nawm_sd = np.array(
        [1.4826 * np.median(np.abs(c[nawm] - m)) for c, m in zip(data, nawm_median, strict=True)]
    )
    nawm_sd = np.maximum(nawm_sd, 1e-6 * np.maximum(np.abs(nawm_median), 1.0))
    gm_median = np.array([np.median(c[grey]) for c in data])

    core = in_brain & (np.asarray(template_wm) >= params.wm_prior_min)
    zone = in_brain & (
        ndimage.distance_transform_edt(~core, sampling=zooms) <= params.white_matter_margin_mm
    )
    # z-scores in NAWM noise units; hyperintense on every channel.
    z = np.stack([(c - m) / s for c, m, s in zip(data, nawm_median, nawm_sd, strict=True)], -1)
    hyper = np.all(z >= params.channel_min_z, axis=-1) & zone
    above_reference = np.maximum(nawm_median, gm_median)
    z_reference = np.stack(
        [(c - r) / s for c, r, s in zip(data, above_reference, nawm_sd, strict=True)], -1
    )
    combined = z_reference.sum(axis=-1) / np.sqrt(len(data))
    seeds = hyper & core & (combined >= params.seed_z)

    structure = connectivity_structure(labelling.connectivity)
    signature: npt.NDArray[np.float64] | None = None
    mask = np.zeros(seeds.shape, dtype=bool)
    if seeds.any():
        interior = ndimage.binary_erosion(seeds, in_plane_cross(zooms))
        pure = interior if interior.sum() >= _MIN_INTERIOR else seeds
        signature = np.array([np.median(c[pure]) for c in data])
        lesion_point: npt.NDArray[np.float64] | None = None  # per_lesion: each its own
        mask = seeds
        if params.lesion_signature == "global":
            # Channels in NAWM-noise units (z): NAWM at the origin.
            lesion_point = (signature - nawm_median) / nawm_sd
            fraction = lesion_fraction(z, np.zeros_like(lesion_point), lesion_point)
            grow = hyper & (fraction >= params.min_lesion_fraction)
            mask = _geodesic_growth(seeds, grow, structure, zooms, params.grow_mm)
        mask = _local_refinement(
            mask, seeds, z, lesion_point, hyper, zone, zooms, structure, params
        )
    lesions = label_lesions(
        mask,
        zooms,
        connectivity=labelling.connectivity,
        min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
    )
    candidates = lesions.count
    probabilities = None
    if params.classifier is not None:
        features = candidate_table(
            lesions, data, tissue, nawm, template_wm, brain, zooms, params=params, prior=prior
        )
        probability = load_lesion_classifier(params.classifier).probability(features)
        kept = probability >= params.min_probability
        # Dropping labels keeps the raster order of the rest: probabilities follow.
        lookup = np.concatenate([[False], kept])
        lesions = lesions_from_labels(np.where(lookup[lesions.labels], lesions.labels, 0), zooms)
        probabilities = probability[kept]
    references = LesionReferences(
        nawm_median, nawm_sd, gm_median, signature, int(np.count_nonzero(seeds))
    )
    return T2Lesions(lesions, references, candidates, probabilities)


def classifier_problem(params: T2LesionParams, source: str) -> str | None:
    """Why the protocol's lesion classifier cannot be used (None when it can, or is none)."""
    if params.classifier is None:
        return None
    try:
        model = load_lesion_classifier(params.classifier)
    except ValueError as err:
        return f"{source}: t2_lesions.classifier: {err}"
    if model.channels != params.channels:
        return (
            f"{source}: t2_lesions.classifier: {params.classifier!r} was trained on the "
            f"channels {list(model.channels)}, the protocol's are {list(params.channels)}"
        )
    return None


def candidate_table(
    candidates: LabelledLesions,
    channels: Sequence[npt.NDArray[np.float64]],
    tissue: Mapping[str, npt.ArrayLike],
    nawm: BoolArray,
    template_wm: npt.ArrayLike,
    brain: npt.ArrayLike,
    zooms: Sequence[float],
    *,
    params: T2LesionParams,
    prior: npt.ArrayLike | None,
) -> dict[str, npt.NDArray[np.float64]]:
    """The features the per-candidate decision reads, one row per candidate."""
    return candidate_features(
        candidates.labels,
        dict(zip(params.channels, channels, strict=True)),
        nawm,
        tissue,
        template_wm,
        brain,
        zooms,
        ring_mm=params.local_ring_mm,
        prior=prior,
    )


def lesion_fraction(
    scaled: npt.NDArray[np.float64],
    background: npt.NDArray[np.float64],
    lesion: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Each voxel's position on the line background -> lesion (0 background, 1 lesion)."""
    direction = lesion - background
    return np.asarray(((scaled - background) @ direction) / float(direction @ direction))


def _geodesic_growth(
    seeds: BoolArray,
    allowed: BoolArray,
    structure: BoolArray,
    zooms: Sequence[float],
    distance_mm: float,
) -> BoolArray:
    """``seeds`` grown through ``allowed`` by up to ``distance_mm`` (in steps of one voxel)."""
    grown = seeds.copy()
    for _ in range(int(np.ceil(distance_mm / min(zooms)))):
        grown |= ndimage.binary_dilation(grown, structure) & allowed
    return grown


def _local_refinement(
    mask: BoolArray,
    seeds: BoolArray,
    scaled: npt.NDArray[np.float64],
    lesion_point: npt.NDArray[np.float64] | None,
    hyper: BoolArray,
    zone: BoolArray,
    zooms: Sequence[float],
    structure: BoolArray,
    params: T2LesionParams,
) -> BoolArray:
    """Each lesion re-thresholded against the median of a ring of tissue around it.

    The lesion end of the line is ``lesion_point`` (the global signature) or, when
    None, the lesion's own brightest seed (the sum of its channels' z-scores).
    """
    labels, _ = ndimage.label(mask, structure=structure)
    inner, outer = params.local_ring_mm
    pad = [int(np.ceil(outer / z)) + 1 for z in zooms]
    refined = np.zeros_like(mask)
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        window = tuple(
            slice(max(s.start - p, 0), s.stop + p) for s, p in zip(box, pad, strict=True)
        )
        lesion = labels[window] == number
        distance = ndimage.distance_transform_edt(~lesion, sampling=zooms)
        ring = (distance > inner) & (distance <= outer) & ~mask[window] & zone[window]
        if ring.sum() < 5:
            refined[window] |= lesion
            continue
        local = scaled[window]
        background = np.median(local[ring], axis=0)
        own_seeds = lesion & seeds[window]
        if lesion_point is None:
            values = local[own_seeds]
            point = values[np.argmax(values.sum(axis=-1))]
        else:
            point = lesion_point
        if np.allclose(point, background):
            continue  # no contrast to its surroundings: not a lesion
        candidate = (
            (lesion_fraction(local, background, point) >= params.min_lesion_fraction)
            & (distance <= params.grow_mm)
            & hyper[window]
        )
        parts, _ = ndimage.label(candidate | own_seeds, structure=structure)
        kept = np.unique(parts[own_seeds])
        refined[window] |= np.isin(parts, kept[kept > 0])
    return refined
