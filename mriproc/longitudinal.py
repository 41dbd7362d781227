"""New, enlarging, shrinking and stable T2 lesions between two visits of one subject.

Both visits are resampled into their halfway space (:func:`mriproc.registration.register_halfway`)
and analysed together, not as two independent masks:

1. Intensities of each visit are normalised to the normal-appearing white matter
   (NAWM) the two visits share (white matter on average, a lesion in neither): each
   channel becomes a z-score in that visit's NAWM noise units.
2. Each voxel's partial-volume lesion fraction, at each visit, is its position on
   the line from NAWM to the subject's lesion signature (the median of the two
   visits' lesion interiors), clipped to [0, 1]
   (:func:`mriproc.t2lesions.lesion_fraction`).
3. Lesions of the two visits that overlap are one group (this is where splits and
   merges are resolved); a group's volume at each visit is the sum of that visit's
   lesion fractions over the group's voxels (the union of its lesions, grown by one
   voxel in-plane), so both visits are measured on the same voxels with the same
   interpolation.
4. A group with no earlier lesion is *new* when the earlier visit holds less than
   ``new_max_earlier_fraction`` of its lesion signal (else the earlier segmentation
   missed it); other groups are *enlarging* or *shrinking* when their volume changed
   by more than the size-dependent threshold (Molyneux et al. 1992; the size is the
   largest earlier cross-section), *stable* otherwise.
5. A change smaller than the smallest lesion the protocol counts (``min_change_ml``)
   is no change: a group is new, enlarging or shrinking only when its lesion signal
   changed by at least that much over its region grown by one slice each way, with
   each visit's normal-appearing-WM level subtracted.  Two acquisitions cut a small
   lesion at different slice positions, so part of its signal can lie in the slices
   next to the region; on rescans of an unchanged brain that alone made lesions of
   0.03-0.2 mL look new or 50-100 % larger (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.endpoints import NewEnlargingParams
from mriproc.lesions import in_plane_cross, slice_axis
from mriproc.t2lesions import lesion_fraction

__all__ = [
    "CHANGE_CATEGORIES",
    "HalfwayVisit",
    "LesionChanges",
    "LesionGroup",
    "LongitudinalError",
    "lesion_changes",
]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

CHANGE_CATEGORIES = ("new", "enlarging", "stable", "shrinking")
_MIN_NAWM = 100


class LongitudinalError(ValueError):
    """The two visits cannot be compared (e.g. no shared normal-appearing white matter)."""


@dataclass(frozen=True, eq=False)
class HalfwayVisit:
    """One visit's maps resampled into the pair's halfway space."""

    channels: Sequence[npt.NDArray[np.floating]]  # the protocol's lesion channels
    labels: npt.NDArray[np.integer]  # T2 lesion labels (nearest neighbour)
    wm: npt.NDArray[np.floating]  # white-matter fraction
    brain: BoolArray


@dataclass(frozen=True)
class LesionGroup:
    """Overlapping lesions of the earlier and the later visit, and what happened to them."""

    earlier: tuple[int, ...]  # labels at the earlier visit (empty: found only later)
    later: tuple[int, ...]  # labels at the later visit
    before_ml: float  # lesion volume (summed lesion fractions) at the earlier visit
    after_ml: float  # ... at the later visit, on the same voxels
    category: str  # one of CHANGE_CATEGORIES


@dataclass(frozen=True)
class LesionChanges:
    """Every later-visit lesion's group, with the lesion signature used."""

    groups: tuple[LesionGroup, ...]
    lesion_signature: npt.NDArray[np.float64]  # z-scores (NAWM units) per channel

    def category_of(self) -> dict[int, str]:
        """Later-visit label -> change category."""
        return {label: g.category for g in self.groups for label in g.later}

    def count(self, category: str) -> int:
        """Number of later-visit lesions in ``category``."""
        return sum(len(g.later) for g in self.groups if g.category == category)


def _z_scores(
    channels: Sequence[npt.NDArray[np.floating]], nawm: BoolArray
) -> npt.NDArray[np.float64]:
    stacked = []
    for channel in channels:
        data = np.asarray(channel, dtype=np.float64)
        median = float(np.median(data[nawm]))
        sd = max(1.4826 * float(np.median(np.abs(data[nawm] - median))), 1e-6 * abs(median), 1e-12)
        stacked.append((data - median) / sd)
    return np.stack(stacked, axis=-1)


def _groups(
    earlier: npt.NDArray[np.integer], later: npt.NDArray[np.integer], min_overlap: int
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Connected groups of the overlap graph between earlier and later labels."""
    both = (earlier > 0) & (later > 0)
    pairs, counts = np.unique(np.stack([earlier[both], later[both]]), axis=1, return_counts=True)
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node: tuple[str, int]) -> tuple[str, int]:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for label in np.unique(later[later > 0]):
        find(("later", int(label)))
    for (e, lat), n in zip(pairs.T, counts, strict=True):
        if n > min_overlap:
            root_e, root_l = find(("earlier", int(e))), find(("later", int(lat)))
            parent[root_e] = root_l
    members: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for node in list(parent):
        members.setdefault(find(node), []).append(node)
    found = []
    for nodes in members.values():
        later_labels = tuple(sorted(n for kind, n in nodes if kind == "later"))
        if later_labels:  # lesions that vanished are not counted
            found.append((tuple(sorted(n for kind, n in nodes if kind == "earlier")), later_labels))
    return sorted(found, key=lambda g: g[1])


def _across_slices(zooms: Sequence[float]) -> BoolArray:
    """A 3-voxel line along the slice axis, as a 3-D structure."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    index: list[int | slice] = [1, 1, 1]
    index[slice_axis(zooms)] = slice(None)
    structure[tuple(index)] = True
    return structure


def _largest_cross_section_cm2(mask: BoolArray, voxel_size_mm: Sequence[float]) -> float:
    axis = slice_axis(voxel_size_mm)
    in_plane = [z for i, z in enumerate(voxel_size_mm) if i != axis]
    per_slice = np.moveaxis(mask, axis, -1).sum(axis=(0, 1))
    return float(per_slice.max(initial=0)) * in_plane[0] * in_plane[1] / 100.0


def lesion_changes(
    earlier: HalfwayVisit,
    later: HalfwayVisit,
    voxel_size_mm: Sequence[float],
    *,
    params: NewEnlargingParams,
    nawm_min_wm_fraction: float,
    min_change_ml: float,
) -> LesionChanges:
    """Classify every lesion of ``later`` against ``earlier`` (both in halfway space).

    ``min_change_ml``: the smallest change of a group's lesion volume that counts
    (:func:`mriproc.lesions.min_lesion_volume_ml` of the protocol's labelling rule).
    """
    zooms = tuple(float(z) for z in voxel_size_mm)
    cross = in_plane_cross(zooms)
    lesion_any = ndimage.binary_dilation((earlier.labels > 0) | (later.labels > 0), cross)
    shared = earlier.brain & later.brain & ~lesion_any
    wm = 0.5 * (np.asarray(earlier.wm, dtype=np.float64) + np.asarray(later.wm, dtype=np.float64))
    nawm = shared & (wm >= nawm_min_wm_fraction)
    if nawm.sum() < 10 * _MIN_NAWM and shared.sum() >= 10 * _MIN_NAWM:
        # A tissue model that rarely calls voxels pure WM (5 mm slices): the most
        # WM-like tenth of the shared brain.
        nawm = shared & (wm >= np.quantile(wm[shared], 0.9))
    if nawm.sum() < _MIN_NAWM:
        raise LongitudinalError(
            f"the two visits share only {int(nawm.sum())} normal-appearing white-matter voxels"
        )
    z_earlier, z_later = _z_scores(earlier.channels, nawm), _z_scores(later.channels, nawm)
    interiors = [ndimage.binary_erosion(v.labels > 0, cross) for v in (earlier, later)]
    pooled = [z[m] for z, m in zip((z_earlier, z_later), interiors, strict=True)]
    if sum(len(p) for p in pooled) < 10:
        pooled = [z_earlier[earlier.labels > 0], z_later[later.labels > 0]]
    if sum(len(p) for p in pooled) == 0:
        return LesionChanges((), np.zeros(z_earlier.shape[-1]))
    signature = np.median(np.concatenate(pooled), axis=0)
    origin = np.zeros_like(signature)
    fraction_earlier = np.clip(lesion_fraction(z_earlier, origin, signature), 0.0, 1.0)
    fraction_later = np.clip(lesion_fraction(z_later, origin, signature), 0.0, 1.0)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    across = _across_slices(zooms)
    floor_earlier = float(fraction_earlier[nawm].mean())
    floor_later = float(fraction_later[nawm].mean())

    groups = []
    for earlier_labels, later_labels in _groups(
        earlier.labels, later.labels, params.new_max_overlap_voxels
    ):
        members_later = np.isin(later.labels, later_labels)
        members_earlier = np.isin(earlier.labels, earlier_labels)
        region = ndimage.binary_dilation(members_later | members_earlier, cross)
        before = float(fraction_earlier[region].sum()) * voxel_ml
        after = float(fraction_later[region].sum()) * voxel_ml
        wide = ndimage.binary_dilation(region, across)
        change = float(fraction_later[wide].sum() - fraction_earlier[wide].sum())
        change = (change - (floor_later - floor_earlier) * float(wide.sum())) * voxel_ml
        if abs(change) < min_change_ml:
            category = "stable"
        elif not earlier_labels and before < params.new_max_earlier_fraction * after:
            category = "new"
        else:
            sized = members_earlier if earlier_labels else members_later
            small = _largest_cross_section_cm2(sized, zooms) < params.small_lesion_max_area_cm2
            threshold = (
                params.small_lesion_min_growth_pct if small else params.large_lesion_min_growth_pct
            )
            if change > 0 and (before <= 0.0 or after > before * (1.0 + threshold / 100.0)):
                category = "enlarging"
            elif change < 0 and after < before / (1.0 + threshold / 100.0):
                category = "shrinking"
            else:
                category = "stable"
        groups.append(LesionGroup(earlier_labels, later_labels, before, after, category))
    return LesionChanges(tuple(groups), signature)
