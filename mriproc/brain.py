"""Brain and intracranial masks from the MNI152 template registered to a scan.

The template (nilearn's MNI152 2009 tissue maps) is rendered in the scan's contrast
with the head model of :mod:`mriproc.template` (or without a head when the scan is
already skull-stripped), registered to the scan (affine, then SyN), and its brain
envelope and intracranial masks are carried into the scan's grid.

The intracranial mask is then refined on the scan's intensities by the tissue
fractions of :mod:`mriproc.tissues`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt

from mriproc.config import RegistrationPreset
from mriproc.endpoints import PcfParams
from mriproc.io.itk import write_itk_affine
from mriproc.registration import (
    apply_linear,
    map_points,
    mattes_metric,
    register_linear,
    register_nonlinear,
    resample_isotropic,
    sample_linear,
)
from mriproc.template import lesion_prior_on_template, load_template, synthetic_image

__all__ = [
    "ICV_MARGIN_MM",
    "TemplateFit",
    "carry_template_maps",
    "fit_template",
    "fit_through",
    "template_maps",
]


@dataclass(frozen=True)
class TemplateFit:
    """How the template maps onto a scan: its transform files, and the scan's kind."""

    transform_files: tuple[Path, ...]  # affine + SyN, template -> scan resampling
    skull_stripped: bool


# The intracranial mask on the template: its brain mask grown by this much. The
# MNI152 brain mask leaves out the subarachnoid CSF over the convexity, about 2 mm
# thick; the tissue model reaches beyond it by pcf.csf_margin_mm.
ICV_MARGIN_MM = 2.0


def fit_template(
    image: nib.Nifti1Image | nib.Nifti2Image,
    contrast: str,
    *,
    preset: RegistrationPreset,
    work_dir: Path,
    deformable: bool = True,
) -> TemplateFit:
    """Register the template, rendered in ``contrast``, onto ``image`` (affine, then SyN).

    Whether the scan is already skull-stripped is decided by the data: the template
    is rendered both with its head model and as a bare brain, each is registered
    (affine), and the one matching the scan better (lower final Mattes metric) is
    kept.  A size threshold on the scan's foreground was measured to fail: a small
    head imaged over 24 slices of 5 mm measured 1.99 L and was taken for a stripped
    brain (benchmarks/RESULTS.md).

    The registration runs on a copy of ``image`` resampled to isotropic voxels of the
    preset's ``template_voxel_mm``; the transforms map world coordinates, so they apply
    to ``image``'s own grid as well.  The template stays at its 1 mm: rendered at 2 mm
    (to save its cost in every level) the head model's affine fit failed on a real
    scan (patient01 study 2, determinant 10) and the scan was taken for a stripped one
    (benchmarks/RESULTS.md, issue 24).
    """
    template = load_template()
    fixed = resample_isotropic(image, preset.template_voxel_mm)
    affine_preset = replace(preset, iterations=preset.template_affine_iterations)
    candidates = []
    for stripped in (False, True):
        data, affine = synthetic_image(template, contrast, with_head=not stripped)
        moving = nib.Nifti1Image(data, affine)
        moving.header.set_xyzt_units("mm")
        linear = register_linear(
            fixed, moving, transform="affine", preset=affine_preset, out_dir=work_dir
        )
        metric = mattes_metric(fixed, apply_linear(moving, fixed, linear.fixed_to_moving))
        candidates.append((metric, stripped, moving, linear))
    _, stripped, moving, linear = min(candidates, key=lambda c: c[0])
    files: tuple[Path, ...] = (linear.transform_file,)
    if deformable:
        files = register_nonlinear(
            fixed, moving, initial=linear, preset=preset, out_dir=work_dir
        ).transform_files
    return TemplateFit(files, stripped)


def fit_through(
    fit: TemplateFit, scan_to_fitted: npt.NDArray[np.float64], work_dir: Path
) -> TemplateFit:
    """``fit`` (the template on one scan) carried to another scan of the same head.

    ``scan_to_fitted`` maps the other scan's RAS points to the fitted scan's (a rigid
    registration between two visits); it is written as an ITK transform in
    ``work_dir`` and taken first: a point of the other scan moves into the fitted
    scan, then through ``fit``'s transforms into the template.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    first = write_itk_affine(work_dir / "scan_to_fitted_xfm.txt", scan_to_fitted)
    return TemplateFit((first, *fit.transform_files), fit.skull_stripped)


def template_maps(
    pcf: PcfParams, *, lesion_prior: bool = False
) -> dict[str, npt.NDArray[np.float32]]:
    """Maps defined on the template: masks, tissue priors and the protocol's PCF slab.

    ``brain`` is the brain envelope (the template's brain mask), ``icv`` the brain
    with the :data:`ICV_MARGIN_MM` of CSF around it, ``CSF``/``GM``/``WM`` the tissue
    probabilities, ``slab`` the MNI152 axial slab ``[inferior, inferior +
    thickness)`` in z and, with ``lesion_prior``, the lesion-frequency prior
    (:func:`mriproc.template.lesion_prior_on_template`; read by a lesion classifier).
    """
    template = load_template()
    z_mm = template.world_grid(2)
    in_slab = pcf.in_slab(z_mm).astype(np.float32)
    return {
        "brain": (template.outside_mm == 0).astype(np.float32),
        "icv": (template.outside_mm <= ICV_MARGIN_MM).astype(np.float32),
        "CSF": template.csf,
        "GM": template.gm,
        "WM": template.wm,
        "slab": np.broadcast_to(in_slab, template.shape).astype(np.float32),
        **({"lesion_prior": lesion_prior_on_template()} if lesion_prior else {}),
    }


def carry_template_maps(
    image: nib.Nifti1Image | nib.Nifti2Image,
    fit: TemplateFit,
    maps: dict[str, npt.NDArray[np.float32]],
) -> dict[str, npt.NDArray[np.float32]]:
    """Template-space maps averaged over each scan voxel's volume, carried through the fit.

    Thick voxels (5 mm slices) are divided into sub-voxels about as thick as the
    in-plane size; the maps are sampled (linear) at the sub-voxel centres and
    averaged, so a voxel that the slab boundary cuts gets the fraction of it inside.
    The sub-voxel centres are carried through the fit once, for every map.
    """
    template = load_template()
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
    split = np.maximum(np.rint(zooms / zooms.min()), 1).astype(int)
    shape = tuple(int(n) for n in image.shape[:3])
    fine_shape = tuple(n * k for n, k in zip(shape, split, strict=True))
    fine_to_ras = np.asarray(image.affine, dtype=np.float64) @ np.diag([*(1.0 / split), 1.0])
    fine_to_ras[:3, 3] = image.affine[:3, :3] @ (0.5 / split - 0.5) + image.affine[:3, 3]
    indices = np.indices(fine_shape, dtype=np.float32).reshape(3, -1)
    points = fine_to_ras[:3, :3].astype(np.float32) @ indices + fine_to_ras[:3, 3:].astype(
        np.float32
    )
    del indices
    in_template = map_points(points, fit.transform_files)
    to_voxel = np.linalg.inv(template.affine).astype(np.float32)
    voxel = to_voxel[:3, :3] @ in_template + to_voxel[:3, 3:]
    del points, in_template
    carried = {}
    for name, values in maps.items():
        sampled = np.zeros(voxel.shape[1], dtype=np.float32)
        # Only points within a voxel of the map's non-zero box can sample non-zero
        # values (the brain's maps cover a third of a scan's field of view).
        support = values != 0
        nonzero = [np.flatnonzero(support.any(axis=other)) for other in _OTHER_AXES]
        if all(len(n) for n in nonzero):
            near = np.ones(voxel.shape[1], dtype=bool)
            for axis, n in enumerate(nonzero):
                near &= (voxel[axis] > n[0] - 1) & (voxel[axis] < n[-1] + 1)
            sampled[near] = sample_linear(values, voxel[:, near])
        blocks = sampled.reshape(shape[0], split[0], shape[1], split[1], shape[2], split[2])
        carried[name] = np.asarray(blocks.mean(axis=(1, 3, 5)), dtype=np.float32)
    return carried


_OTHER_AXES = ((1, 2), (0, 2), (0, 1))
