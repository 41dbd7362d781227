"""Gadolinium-enhancing lesions (CEL): post- minus pre-contrast T1 after co-registration.

Both T1w images are already co-registered into the reading space.  The post-contrast
image is scaled so that normal-appearing white matter (NAWM) has the same median as
before contrast; the difference is then in units of its own robust SD in NAWM.
Enhancing voxels are seeds at ``seed_z`` grown (hysteresis) to ``grow_z``.

Not lesions, by the protocol's ``exclude_structures``:

* ``dural_sinuses``: voxels within ``surface_margin_mm`` of the brain mask's surface
  (sinuses and cortical veins lie on it);
* ``choroid_plexus``: voxels where the template's CSF probability, carried to the
  scan, is at least ``csf_prior_max`` (the plexus lies in the ventricles);
* ``vessels``: components under ``min_voxels`` or narrower than the labelling's
  minimum in-plane diameter (1-voxel foci, vessel cross-sections).

With ``require_t2_correspondence`` a CEL is the enhancing part of a T2 lesion, and
the enhancing parts of one T2 lesion are one CEL (a ring broken by noise is still
one lesion).  Components and minimum size: :func:`mriproc.lesions.label_lesions`;
the same rule counts the simulator's ground truth
(:func:`mriproc.lesions.enhancing_components`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.config import LabellingParams
from mriproc.endpoints import CelParams
from mriproc.lesions import (
    MIN_REFERENCE_VOXELS,
    LabelledLesions,
    connectivity_structure,
    enhancing_components,
)

__all__ = ["EnhancingLesions", "segment_enhancing"]


@dataclass(frozen=True)
class EnhancingLesions:
    """CEL of one scan (components with at least ``min_voxels``) and the normalisation."""

    lesions: LabelledLesions
    enhancing: npt.NDArray[np.bool_]  # every enhancing voxel before the T2 and size rules
    post_scale: float
    difference_sd: float


def segment_enhancing(
    pre: npt.ArrayLike,
    post: npt.ArrayLike,
    nawm: npt.ArrayLike,
    brain: npt.ArrayLike,
    template_csf: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    params: CelParams,
    labelling: LabellingParams,
    t2_lesions: npt.ArrayLike | None = None,
) -> EnhancingLesions:
    """Enhancing lesions from co-registered pre- and post-contrast T1w.

    ``t2_lesions`` is the T2 lesion label image (a boolean mask is labelled with the
    protocol's connectivity).
    """
    before = np.asarray(pre, dtype=np.float64)
    after = np.asarray(post, dtype=np.float64)
    zooms = tuple(float(z) for z in voxel_size_mm)
    reference = np.asarray(nawm) > 0
    if reference.sum() < MIN_REFERENCE_VOXELS:
        raise ValueError(f"too few normal-appearing white-matter voxels ({int(reference.sum())})")
    scale = float(np.median(before[reference])) / max(float(np.median(after[reference])), 1e-12)
    difference = after * scale - before
    centre = float(np.median(difference[reference]))
    sd = float(1.4826 * np.median(np.abs(difference[reference] - centre)))
    sd = max(sd, 1e-6 * float(np.median(before[reference])))
    z = (difference - centre) / sd

    in_brain = np.asarray(brain) > 0
    allowed = in_brain.copy()
    if "dural_sinuses" in params.exclude_structures:
        depth = ndimage.distance_transform_edt(in_brain, sampling=zooms)
        allowed &= depth > params.surface_margin_mm
    if "choroid_plexus" in params.exclude_structures:
        allowed &= np.asarray(template_csf) < params.csf_prior_max
    structure = connectivity_structure(labelling.connectivity)
    candidates = allowed & (z >= params.grow_z)
    labels, _ = ndimage.label(candidates, structure=structure)
    seeded = np.unique(labels[candidates & (z >= params.seed_z)])
    enhancing = np.isin(labels, seeded[seeded > 0])
    cel = enhancing
    t2_labels = None
    if params.require_t2_correspondence:
        if t2_lesions is None:
            raise ValueError("the protocol requires T2 correspondence; no T2 lesion mask given")
        t2_labels = np.asarray(t2_lesions)
        if t2_labels.dtype == bool:
            t2_labels = ndimage.label(t2_labels, structure=structure)[0]
        cel = enhancing & (t2_labels > 0)
    min_voxels = params.min_voxels if "vessels" in params.exclude_structures else 1
    lesions = enhancing_components(
        cel,
        zooms,
        min_voxels=min_voxels,
        connectivity=labelling.connectivity,
        min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
        t2_labels=t2_labels,
    )
    return EnhancingLesions(lesions, enhancing, scale, sd)
