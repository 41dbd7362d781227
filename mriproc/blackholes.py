"""T1 black holes: parts of T2 lesions hypointense on pre-contrast T1.

A T2-lesion voxel, outside the lesion's in-plane rim of ``rim_mm`` (rim voxels
share their volume with the surrounding tissue, and next to CSF or cortex they are
dark on T1w whatever the lesion is), is black hole when its pre-contrast T1w signal
is at or below the protocol's reference (default: the mean of cortical grey matter, ie voxels the
tissue model calls grey matter within ``cortical_depth_mm`` of the brain's surface,
so that deep grey matter does not set it); enhancing voxels are excluded (an active
lesion's oedema is transiently hypointense).  Components and minimum size:
:func:`mriproc.lesions.label_lesions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.config import LabellingParams
from mriproc.endpoints import BlackHoleParams
from mriproc.lesions import LabelledLesions, in_plane_cross, label_lesions

__all__ = ["BlackHoles", "segment_black_holes"]


@dataclass(frozen=True)
class BlackHoles:
    """Black holes of one scan and the T1w threshold that defined them."""

    lesions: LabelledLesions
    threshold: float


def segment_black_holes(
    t1w: npt.ArrayLike,
    t2_lesions: npt.ArrayLike,
    gm: npt.ArrayLike,
    brain: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    params: BlackHoleParams,
    labelling: LabellingParams,
    enhancing: npt.ArrayLike | None = None,
) -> BlackHoles:
    """Black holes inside ``t2_lesions`` on the co-registered pre-contrast ``t1w``."""
    image = np.asarray(t1w, dtype=np.float64)
    zooms = tuple(float(z) for z in voxel_size_mm)
    in_brain = np.asarray(brain) > 0
    depth = ndimage.distance_transform_edt(in_brain, sampling=zooms)
    cortex = (
        in_brain & (np.asarray(gm) >= params.gm_min_fraction) & (depth <= params.cortical_depth_mm)
    )
    cortex &= np.asarray(t2_lesions) == 0
    if cortex.sum() < 100:
        raise ValueError(
            f"too few cortical grey-matter voxels ({int(cortex.sum())}) for a T1 reference"
        )
    threshold = float(image[cortex].mean())
    inside = np.asarray(t2_lesions) > 0
    rim = round(params.rim_mm / min(zooms))
    if rim > 0:
        inside = ndimage.binary_erosion(inside, in_plane_cross(zooms), iterations=rim)
    mask = inside & (image <= threshold)
    if params.exclude_enhancing and enhancing is not None:
        mask &= np.asarray(enhancing) == 0
    lesions = label_lesions(
        mask,
        zooms,
        connectivity=labelling.connectivity,
        min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
    )
    return BlackHoles(lesions, threshold)
