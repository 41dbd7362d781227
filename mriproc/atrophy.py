"""Brain volume change between baseline and a follow-up, in their halfway space.

Both visits' partial-volume tissue fractions (lesion voxels counted as parenchyma)
are resampled into the halfway space of their inverse-consistent rigid
registration, so neither is interpolated more than the other, and compared on the
voxels both scans cover:

* ``pbvc``: percentage brain volume change, 100 x (parenchyma at follow-up /
  parenchyma at baseline - 1) summed over the intracranial region both scans cover
  (a boundary-shift integral on fractions: inside the brain both fractions are 1 and
  only the moving boundaries contribute).
* ``pcf_change_pct``: the partial cerebral fraction of both visits over the *same*
  anatomical slab, the baseline slab carried by the registration (weighted by its
  fractional coverage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BrainChange", "HalfwayBrain", "brain_change"]


@dataclass(frozen=True, eq=False)
class HalfwayBrain:
    """One visit's fractions and coverage in the pair's halfway space."""

    parenchyma: npt.NDArray[np.floating]  # GM + WM (+ lesion) fraction
    csf: npt.NDArray[np.floating]
    coverage: npt.NDArray[np.floating]  # 1 where the scan's field of view holds the voxel


@dataclass(frozen=True)
class BrainChange:
    """Brain volume change from baseline to a follow-up."""

    pbvc: float  # %
    pcf_change_pct: float  # %
    baseline_pcf: float  # over the carried slab, in halfway space
    followup_pcf: float
    region_ml: float  # intracranial volume both scans cover


def brain_change(
    baseline: HalfwayBrain,
    followup: HalfwayBrain,
    slab: npt.NDArray[np.floating],
    voxel_size_mm: tuple[float, float, float],
    *,
    min_coverage: float = 0.999,
) -> BrainChange:
    """PBVC and PCF change of ``followup`` relative to ``baseline``.

    ``slab`` is the baseline's PCF slab weight in halfway space.
    """
    covered = (np.asarray(baseline.coverage) >= min_coverage) & (
        np.asarray(followup.coverage) >= min_coverage
    )
    p0 = np.where(covered, np.asarray(baseline.parenchyma, dtype=np.float64), 0.0)
    p1 = np.where(covered, np.asarray(followup.parenchyma, dtype=np.float64), 0.0)
    c0 = np.where(covered, np.asarray(baseline.csf, dtype=np.float64), 0.0)
    c1 = np.where(covered, np.asarray(followup.csf, dtype=np.float64), 0.0)
    if p0.sum() <= 0.0:
        raise ValueError("the two scans share no brain tissue in their common field of view")
    weight = np.asarray(slab, dtype=np.float64)
    pcf0 = float((weight * p0).sum() / max((weight * (p0 + c0)).sum(), 1e-9))
    pcf1 = float((weight * p1).sum() / max((weight * (p1 + c1)).sum(), 1e-9))
    if (weight * (p0 + c0)).sum() <= 0.0:
        raise ValueError("the carried PCF slab lies outside the common field of view")
    voxel_ml = float(np.prod(voxel_size_mm)) / 1000.0
    return BrainChange(
        pbvc=100.0 * (float(p1.sum()) / float(p0.sum()) - 1.0),
        pcf_change_pct=100.0 * (pcf1 / pcf0 - 1.0),
        baseline_pcf=pcf0,
        followup_pcf=pcf1,
        region_ml=float(((p0 + c0) > 0).sum()) * voxel_ml,
    )
