"""What a lesion candidate looks like and where it is: one row of features per candidate.

The per-candidate decision of the T2 lesion stage (issue 23: a sensitive intensity
method proposes candidates, a transparent classifier keeps the real lesions) reads
these features.  Each is computed for every labelled candidate at once
(``scipy.ndimage`` reductions over the label image), from what the lesion stage has
on the reading-space grid:

* size and shape: volume (mm³), in-plane diameter, extent across slices (mm),
  elongation (largest over smallest principal axis, in mm);
* contrast, per lesion channel, in normal-appearing white-matter noise units: the
  mean and the maximum inside, and the contrast to a ring around the candidate
  (inside minus ring);
* surroundings: the tissue model's CSF, grey- and white-matter fractions in the ring;
  the template's white-matter probability inside;
* place: depth below the brain surface (cortex) and distance to the ventricles (mm),
  and the lesion-frequency prior inside (:func:`mriproc.template.load_lesion_prior`,
  carried to the scan) when given.

Nothing here decides: the features are the same for every protocol, their weights
are learned (a model shipped as package data) and judged leave-one-patient-out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.lesions import lesions_from_labels, slice_axis

__all__ = ["VENTRICLE_MIN_DEPTH_MM", "candidate_features"]

FloatArray = npt.NDArray[np.float64]

# CSF deeper than this below the brain surface is ventricular (sulcal CSF is shallower).
VENTRICLE_MIN_DEPTH_MM = 15.0
# Ventricles: voxels the tissue model calls at least this much CSF.
_VENTRICLE_CSF_FRACTION = 0.5


def candidate_features(
    labels: npt.ArrayLike,
    channels: Mapping[str, npt.ArrayLike],
    nawm: npt.ArrayLike,
    tissue: Mapping[str, npt.ArrayLike],
    template_wm: npt.ArrayLike,
    brain: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    ring_mm: tuple[float, float],
    prior: npt.ArrayLike | None = None,
) -> dict[str, FloatArray]:
    """Features of candidates ``1..labels.max()`` (each array: one value per candidate).

    The keys come in a stable order: size and shape, then per channel (in the order of
    ``channels``) its contrasts, then surroundings and place.

    Parameters
    ----------
    labels
        Candidate label image (0 background, 1..n candidates).
    channels
        Lesion channel name -> image (bias-corrected, on the grid of ``labels``).
    nawm
        Normal-appearing white matter: each channel's median and robust SD there are
        its reference (contrasts are in those noise units).
    tissue
        Tissue fractions ``CSF``, ``GM``, ``WM`` (the tissue model).
    template_wm
        The template's white-matter probability carried to the grid.
    brain
        The brain mask.
    voxel_size_mm
        Voxel spacing.
    ring_mm
        The ring around a candidate: from ``ring_mm[0]`` to ``ring_mm[1]`` mm from it
        (nearer than any other candidate).
    prior
        The lesion-frequency prior carried to the grid, or None (the feature is NaN).

    >>> labels = np.zeros((12, 12, 3), int); labels[4:7, 4:7, 1] = 1
    >>> flair = np.where(labels > 0, 200.0, 100.0) + np.indices(labels.shape)[0]
    >>> ones = np.ones(labels.shape)
    >>> f = candidate_features(labels, {"FLAIR": flair}, labels == 0,
    ...     {"CSF": 0 * ones, "GM": 0 * ones, "WM": ones}, ones, ones > 0, (1.0, 1.0, 1.0),
    ...     ring_mm=(1.0, 2.0))
    >>> f["volume_mm3"].tolist(), bool(f["FLAIR_ring_contrast"][0] > 10)
    ([9.0], True)
    """
    label_image = np.asarray(labels, dtype=np.int32)
    zooms = tuple(float(z) for z in voxel_size_mm)
    count = int(label_image.max(initial=0))
    index = np.arange(1, count + 1)
    found = lesions_from_labels(label_image, zooms)  # renumbered in raster order
    if found.count != count:
        raise ValueError("candidate labels must be 1..n without gaps")
    renumbered = found.labels.astype(np.float64)
    order = _reduce(ndimage.maximum, renumbered, label_image, index).astype(np.int64) - 1
    features: dict[str, FloatArray] = {
        "volume_mm3": found.volumes_ml[order] * 1000.0,
        "in_plane_diameter_mm": found.in_plane_diameters_mm[order].astype(np.float64),
    }
    features.update(_shape(label_image, index, zooms))

    reference = np.asarray(nawm) > 0
    in_brain = np.asarray(brain) > 0
    ring = _rings(label_image, zooms, ring_mm) * in_brain
    for name, image in channels.items():
        data = np.asarray(image, dtype=np.float64)
        median = float(np.median(data[reference]))
        sd = max(1.4826 * float(np.median(np.abs(data[reference] - median))), 1e-6)
        z = (data - median) / sd
        inside = _mean(z, label_image, index)
        features[f"{name}_z_mean"] = inside
        features[f"{name}_z_max"] = _reduce(ndimage.maximum, z, label_image, index)
        features[f"{name}_ring_contrast"] = inside - _mean(z, ring, index)
    for name in ("CSF", "GM", "WM"):
        features[f"ring_{name}"] = _mean(np.asarray(tissue[name], np.float64), ring, index)
    features["template_wm"] = _mean(np.asarray(template_wm, np.float64), label_image, index)

    depth = ndimage.distance_transform_edt(in_brain, sampling=zooms)
    features["depth_mm"] = _mean(depth, label_image, index)
    ventricles = (
        in_brain
        & (np.asarray(tissue["CSF"]) >= _VENTRICLE_CSF_FRACTION)
        & (depth >= VENTRICLE_MIN_DEPTH_MM)
    )
    if ventricles.any():
        to_ventricles = ndimage.distance_transform_edt(~ventricles, sampling=zooms)
        features["ventricle_distance_mm"] = _reduce(
            ndimage.minimum, to_ventricles, label_image, index
        )
    else:
        features["ventricle_distance_mm"] = np.full(count, np.nan)
    features["prior"] = (
        np.full(count, np.nan)
        if prior is None
        else _mean(np.asarray(prior, np.float64), label_image, index)
    )
    return features


def _mean(
    values: FloatArray, labels: npt.NDArray[np.int32], index: npt.NDArray[np.int64]
) -> FloatArray:
    return _reduce(ndimage.mean, values, labels, index)


def _reduce(
    function: object,
    values: FloatArray,
    labels: npt.NDArray[np.int32],
    index: npt.NDArray[np.int64],
) -> FloatArray:
    if not len(index):
        return np.zeros(0)
    result = function(values, labels=labels, index=index)  # type: ignore[operator]
    return np.asarray(result, dtype=np.float64)


def _shape(
    labels: npt.NDArray[np.int32], index: npt.NDArray[np.int64], zooms: tuple[float, ...]
) -> dict[str, FloatArray]:
    """Extent across slices and elongation (principal axes of the voxel centres, mm)."""
    axis = slice_axis(zooms)
    extent = np.zeros(len(index))
    elongation = np.ones(len(index))
    for i, where in enumerate(ndimage.find_objects(labels)[: len(index)]):
        if where is None:
            continue
        box = labels[where] == index[i]
        points = np.argwhere(box).astype(np.float64) * np.asarray(zooms)
        extent[i] = (points[:, axis].max() - points[:, axis].min()) + zooms[axis]
        if len(points) > 3:
            spread = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(points.T)), 0.0))
            smallest = max(float(spread[0]), min(zooms) / np.sqrt(12.0))  # one voxel's SD
            elongation[i] = float(spread[-1]) / smallest
    return {"slice_extent_mm": extent, "elongation": elongation}


def _rings(
    labels: npt.NDArray[np.int32], zooms: tuple[float, ...], ring_mm: tuple[float, float]
) -> npt.NDArray[np.int32]:
    """Each background voxel ``ring_mm`` from the candidates, labelled by the nearest one."""
    distance, nearest = ndimage.distance_transform_edt(
        labels == 0, sampling=zooms, return_indices=True
    )
    owner = labels[tuple(nearest)]
    inner, outer = ring_mm
    return np.where((distance >= inner) & (distance <= outer), owner, 0).astype(np.int32)
