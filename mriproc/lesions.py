"""What "a lesion" is: the one labelling function used by every stage.

Segmentation, counting, tracking and the simulator's ground truth all call
:func:`label_lesions`, so a lesion count means the same thing everywhere: the
connected components of a binary mask under the protocol's connectivity, minus
those narrower in-plane than the protocol's minimum diameter.

The in-plane diameter of a component is the diameter of the circle whose area
equals the component's largest cross-section in the acquisition plane.  The
acquisition plane is perpendicular to the voxel axis with the largest spacing
(the slice axis of a 2-D acquisition; the last axis for isotropic voxels).

A 3 x 3 x 1 square of 1 mm voxels has an in-plane diameter of 2 * sqrt(9 / pi),
about 3.4 mm, so it is kept by a 3 mm minimum and dropped by a 4 mm one:

>>> import numpy as np
>>> mask = np.zeros((10, 10, 5), dtype=bool)
>>> mask[2:5, 2:5, 2] = True
>>> label_lesions(mask, (1.0, 1.0, 1.0), connectivity=26, min_in_plane_diameter_mm=3.0).count
1
>>> label_lesions(mask, (1.0, 1.0, 1.0), connectivity=26, min_in_plane_diameter_mm=4.0).count
0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = [
    "MIN_REFERENCE_VOXELS",
    "LabelledLesions",
    "connectivity_structure",
    "enhancing_components",
    "in_plane_cross",
    "label_lesions",
    "lesions_from_labels",
    "mask_volume_ml",
    "min_lesion_volume_ml",
    "slice_axis",
]

_RANK_FOR_CONNECTIVITY = {6: 1, 18: 2, 26: 3}

# The fewest voxels of a reference tissue (normal-appearing white matter, grey
# matter) whose median and robust SD the lesion stages use: with fewer, a wrong
# template fit or an empty tissue class would set every threshold, so the stage
# stops and says why instead.
MIN_REFERENCE_VOXELS = 100


def connectivity_structure(connectivity: int) -> npt.NDArray[np.bool_]:
    """The 3-D neighbourhood for 6-, 18- or 26-connectivity (never a library default).

    >>> int(connectivity_structure(6).sum()), int(connectivity_structure(26).sum())
    (7, 27)
    """
    try:
        rank = _RANK_FOR_CONNECTIVITY[connectivity]
    except KeyError:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity!r}") from None
    structure: npt.NDArray[np.bool_] = ndimage.generate_binary_structure(3, rank)
    return structure


def in_plane_cross(zooms: Sequence[float]) -> npt.NDArray[np.bool_]:
    """The 2-D cross (4-neighbourhood) in the acquisition plane, as a 3-D structure."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    index: list[int | slice] = [slice(None)] * 3
    index[slice_axis(zooms)] = 1
    structure[tuple(index)] = ndimage.generate_binary_structure(2, 1)
    return structure


def min_lesion_volume_ml(min_in_plane_diameter_mm: float, voxel_size_mm: Sequence[float]) -> float:
    """Volume of the smallest lesion the labelling rule counts: a disc of the minimum
    in-plane diameter, one slice thick.

    >>> round(min_lesion_volume_ml(3.0, (0.94, 0.94, 5.0)), 4)
    0.0353
    >>> round(min_lesion_volume_ml(3.0, (1.0, 1.0, 1.0)), 4)
    0.0071
    """
    thickness = float(np.max(np.asarray(voxel_size_mm, dtype=float)))
    return float(np.pi / 4.0 * min_in_plane_diameter_mm**2 * thickness / 1000.0)


def slice_axis(voxel_size_mm: Sequence[float]) -> int:
    """The voxel axis with the largest spacing; the last one when spacings tie.

    >>> slice_axis((0.94, 0.94, 5.0)), slice_axis((5.0, 0.9, 0.9)), slice_axis((1.0, 1.0, 1.0))
    (2, 0, 2)
    """
    sizes = np.asarray(voxel_size_mm, dtype=float)
    return int(len(sizes) - 1 - np.argmax(sizes[::-1]))


def mask_volume_ml(mask: npt.ArrayLike, voxel_size_mm: Sequence[float]) -> float:
    """Volume of the non-zero voxels of ``mask`` in millilitres.

    >>> mask_volume_ml(np.ones((10, 10, 10), dtype=bool), (1.0, 1.0, 2.0))
    2.0
    """
    voxel_ml = float(np.prod(np.asarray(voxel_size_mm, dtype=float))) / 1000.0
    return float(np.count_nonzero(mask)) * voxel_ml


@dataclass(frozen=True)
class LabelledLesions:
    """Connected lesion components, numbered 1..count in raster order of first voxel."""

    labels: npt.NDArray[np.int32]
    voxel_counts: npt.NDArray[np.int64]
    volumes_ml: npt.NDArray[np.float64]
    in_plane_diameters_mm: npt.NDArray[np.float64]

    @property
    def count(self) -> int:
        """Number of lesions."""
        return len(self.voxel_counts)

    @property
    def total_volume_ml(self) -> float:
        """Sum of the lesion volumes in millilitres."""
        return float(self.volumes_ml.sum())

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """The binary mask of the kept lesions."""
        return self.labels > 0


def label_lesions(
    mask: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    connectivity: int,
    min_in_plane_diameter_mm: float,
) -> LabelledLesions:
    """Label the lesions of a binary 3-D mask.

    Parameters
    ----------
    mask
        3-D array; non-zero voxels are lesion.
    voxel_size_mm
        Voxel spacing along the three array axes (from the image header).
    connectivity
        6, 18 or 26: which neighbours join two voxels into one lesion.
    min_in_plane_diameter_mm
        Components whose in-plane diameter is smaller are dropped.

    Returns
    -------
    LabelledLesions
        ``labels`` numbers the kept components 1..count; order is deterministic
        (raster order of each component's first voxel).
    """
    binary = np.asarray(mask) != 0
    if binary.ndim != 3:
        raise ValueError(f"lesion masks are 3-D; got an array of shape {binary.shape}")
    sizes = np.asarray(voxel_size_mm, dtype=float)
    if sizes.shape != (3,) or not np.all(sizes > 0):
        raise ValueError(f"voxel_size_mm must be three positive numbers, got {voxel_size_mm!r}")
    if min_in_plane_diameter_mm < 0:
        raise ValueError("min_in_plane_diameter_mm must not be negative")

    raw, n_raw = ndimage.label(binary, structure=connectivity_structure(connectivity))
    axis = slice_axis(tuple(float(s) for s in sizes))
    pixel_area_mm2 = float(np.prod(np.delete(sizes, axis)))
    diameters = _in_plane_diameters(raw, n_raw, axis, pixel_area_mm2)
    keep = np.concatenate([[False], diameters >= min_in_plane_diameter_mm])
    return lesions_from_labels(np.where(keep[raw], raw, 0), tuple(float(s) for s in sizes))


def lesions_from_labels(labels: npt.ArrayLike, voxel_size_mm: Sequence[float]) -> LabelledLesions:
    """Lesions given by a label image (each value > 0 is one lesion, connected or not).

    Labels are renumbered 1..count in raster order of each lesion's first voxel; used
    when lesions are grouped by something other than connectivity (the enhancing
    parts of one T2 lesion are one CEL).

    >>> image = np.zeros((4, 4, 1), dtype=int)
    >>> image[0, 0, 0] = image[3, 3, 0] = 7
    >>> found = lesions_from_labels(image, (1.0, 1.0, 1.0))
    >>> found.count, found.voxel_counts.tolist()
    (1, [2])
    """
    values = np.asarray(labels)
    sizes = np.asarray(voxel_size_mm, dtype=float)
    flat = values.ravel()
    present, first = np.unique(flat, return_index=True)
    order = present[present > 0][np.argsort(first[present > 0])]
    lookup = np.zeros(int(values.max(initial=0)) + 1, dtype=np.int32)
    lookup[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    renumbered = lookup[values] if values.size else values.astype(np.int32)
    count = len(order)
    axis = slice_axis(tuple(float(s) for s in sizes))
    pixel_area_mm2 = float(np.prod(np.delete(sizes, axis)))
    voxel_counts = np.bincount(renumbered.ravel(), minlength=count + 1)[1:].astype(np.int64)
    return LabelledLesions(
        labels=renumbered.astype(np.int32),
        voxel_counts=voxel_counts,
        volumes_ml=voxel_counts.astype(np.float64) * float(np.prod(sizes)) / 1000.0,
        in_plane_diameters_mm=_in_plane_diameters(renumbered, count, axis, pixel_area_mm2),
    )


def _in_plane_diameters(
    raw: npt.NDArray[np.int32], n_raw: int, axis: int, pixel_area_mm2: float
) -> npt.NDArray[np.float64]:
    """Equivalent-circle diameter of each component's largest in-plane cross-section."""
    if n_raw == 0:
        return np.zeros(0, dtype=np.float64)
    per_slice = np.moveaxis(raw, axis, 0).reshape(raw.shape[axis], -1)
    largest = np.zeros(n_raw + 1, dtype=np.int64)
    for slice_labels in per_slice:
        np.maximum(largest, np.bincount(slice_labels, minlength=n_raw + 1), out=largest)
    areas_mm2 = largest[1:] * pixel_area_mm2
    return np.asarray(2.0 * np.sqrt(areas_mm2 / np.pi), dtype=np.float64)


def enhancing_components(
    mask: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    min_voxels: int,
    connectivity: int,
    min_in_plane_diameter_mm: float,
    t2_labels: npt.ArrayLike | None = None,
) -> LabelledLesions:
    """CEL of an enhancing mask: the one CEL count rule (measurement and ground truth).

    Components (:func:`label_lesions` with the protocol's connectivity and minimum
    diameter) of at least ``min_voxels``; with ``t2_labels`` (a T2 lesion label
    image) the kept components inside one T2 lesion are grouped into one CEL.
    """
    found = label_lesions(
        mask,
        voxel_size_mm,
        connectivity=connectivity,
        min_in_plane_diameter_mm=min_in_plane_diameter_mm,
    )
    small = np.flatnonzero(found.voxel_counts < min_voxels) + 1
    kept = np.where(np.isin(found.labels, small), 0, found.labels)
    if t2_labels is not None:
        return lesions_from_labels(np.where(kept > 0, np.asarray(t2_labels), 0), voxel_size_mm)
    return lesions_from_labels(kept, voxel_size_mm)
