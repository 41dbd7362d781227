"""Brain and intracranial masks from the MNI152 template registered to a scan.

The template (nilearn's MNI152 2009 tissue maps) is rendered in the scan's contrast
with the head model of :mod:`mriproc.template` (or without a head when the scan is
already skull-stripped), registered to the scan (affine, then SyN), and its brain
envelope and intracranial masks are carried into the scan's grid.

Work in progress (issue 4): the intensity-based refinement of the carried masks is
still to come; see ``benchmarks/RESULTS.md`` for the Dice reached so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.config import RegistrationPreset
from mriproc.registration import (
    apply_transform_files,
    register_linear,
    register_nonlinear,
    resample_isotropic,
)
from mriproc.template import load_template, synthetic_image

__all__ = ["TemplateFit", "carry_template_masks", "fit_template", "is_skull_stripped"]

# A head with skull and scalp is well above 2 L; a stripped brain well below.
_STRIPPED_MAX_ML = 2000.0


def is_skull_stripped(image: nib.Nifti1Image | nib.Nifti2Image) -> bool:
    """True when the non-background part of the image is the size of a brain, not a head.

    The background threshold is 10 % of the 99th intensity percentile; the object is
    the largest connected component after filling holes.
    """
    data = np.asarray(image.dataobj, dtype=np.float32)
    threshold = 0.1 * float(np.percentile(data, 99))
    foreground = data > threshold
    labels, n = ndimage.label(foreground, structure=ndimage.generate_binary_structure(3, 1))
    if n == 0:
        return False
    largest = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    filled = ndimage.binary_fill_holes(largest)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    return float(filled.sum()) * voxel_ml < _STRIPPED_MAX_ML


@dataclass(frozen=True)
class TemplateFit:
    """How the template maps onto a scan: affine (RAS matrix) and deformable stages."""

    scan_to_template: npt.NDArray[np.float64]  # affine stage only
    transform_files: tuple[Path, ...]  # affine + SyN, template -> scan resampling
    skull_stripped: bool
    final_metric: float


def fit_template(
    image: nib.Nifti1Image | nib.Nifti2Image,
    contrast: str,
    *,
    preset: RegistrationPreset,
    work_dir: Path,
    deformable: bool = True,
) -> TemplateFit:
    """Register the template, rendered in ``contrast``, onto ``image`` (affine, then SyN).

    The registration runs on a copy of ``image`` resampled to isotropic voxels of the
    preset's ``template_voxel_mm``; the transforms map world coordinates, so they apply
    to ``image``'s own grid as well.
    """
    template = load_template()
    stripped = is_skull_stripped(image)
    data, affine = synthetic_image(template, contrast, with_head=not stripped)
    moving = nib.Nifti1Image(data, affine)
    moving.header.set_xyzt_units("mm")
    fixed = resample_isotropic(image, preset.template_voxel_mm)
    linear = register_linear(fixed, moving, transform="affine", preset=preset, out_dir=work_dir)
    files: tuple[Path, ...] = (linear.transform_file,)
    if deformable:
        files = register_nonlinear(
            fixed, moving, initial=linear, preset=preset, out_dir=work_dir
        ).transform_files
    return TemplateFit(linear.fixed_to_moving, files, stripped, linear.final_metric)


def carry_template_masks(
    image: nib.Nifti1Image | nib.Nifti2Image, fit: TemplateFit
) -> dict[str, npt.NDArray[np.float32]]:
    """Template brain-envelope and intracranial masks on the scan's grid (0..1 maps)."""
    template = load_template()
    masks = {
        "brain": (template.outside_mm == 0).astype(np.float32),
        "icv": (template.outside_mm <= 2.0).astype(np.float32),
    }
    carried = {}
    for name, mask in masks.items():
        in_template = nib.Nifti1Image(mask, template.affine)
        in_template.header.set_xyzt_units("mm")
        in_scan = apply_transform_files(in_template, image, fit.transform_files)
        carried[name] = np.asarray(in_scan.dataobj, dtype=np.float32)
    return carried
