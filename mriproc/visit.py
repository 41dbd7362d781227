"""The steps of per-visit processing as file-in, file-out functions.

Each function here is one node of :func:`mriproc.workflows.visit.init_visit_wf`
(wrapped by :mod:`mriproc.interfaces.visit`): it reads NIfTI files, computes with
:mod:`mriproc.registration`, :mod:`mriproc.brain` and :mod:`mriproc.tissues`, and
writes its results into ``out_dir``.  Every output is on the reading-space grid.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.brain import (
    TemplateFit,
    carry_template_maps,
    fit_template,
    fit_through,
    template_maps,
)
from mriproc.config import RegistrationPreset
from mriproc.endpoints import PcfParams
from mriproc.io.itk import write_itk_affine
from mriproc.io.nifti import read_image, save_image
from mriproc.registration import apply_linear, n4_bias_field, register_linear
from mriproc.tissues import tissue_fractions

__all__ = [
    "RegistrationQualityError",
    "TemplateFitError",
    "bias_correct",
    "brain_masks",
    "check_coregistration",
    "coregister",
    "normalized_mutual_information",
    "tissue_classes",
]


class TemplateFitError(RuntimeError):
    """The template fit maps an implausible intracranial volume into the image."""


class RegistrationQualityError(RuntimeError):
    """A contrast did not register to its visit (wrong subject, blank, corrupt)."""

    def __init__(self, message: str, quality: float) -> None:
        super().__init__(message)
        self.quality = quality


def bias_correct(
    in_files: Sequence[str | Path], out_dir: Path, preset: RegistrationPreset
) -> list[Path]:
    """N4 bias correction; one field, estimated on the first image, for all of them.

    The images are the echoes of one acquisition (same grid, same receive field), or
    a single image.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    first = read_image(in_files[0])
    field = n4_bias_field(first, preset=preset)
    outputs = []
    for path in in_files:
        image = read_image(path)
        if image.shape != first.shape or not np.allclose(image.affine, first.affine, atol=1e-3):
            raise ValueError(f"{path}: not on the grid of {in_files[0]}; echoes must share it")
        corrected = np.asarray(image.dataobj, dtype=np.float32) / field
        name = Path(path).name.replace(".nii.gz", "").replace(".nii", "")
        outputs.append(
            save_image(corrected.astype(np.float32), image.affine, out_dir / f"{name}_n4.nii.gz")
        )
    return outputs


def normalized_mutual_information(
    a: npt.ArrayLike, b: npt.ArrayLike, mask: npt.ArrayLike, bins: int = 32
) -> float:
    """Studholme's NMI, (H(a) + H(b)) / H(a, b): 1 for unrelated images, 2 for identical.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(20, 20, 20)); m = np.ones(x.shape, bool)
    >>> round(normalized_mutual_information(x, 3 * x + 1, m), 2)
    2.0
    >>> normalized_mutual_information(x, rng.normal(size=x.shape), m) < 1.1
    True
    """
    inside = np.asarray(mask, dtype=bool)
    x = np.asarray(a, dtype=np.float64)[inside]
    y = np.asarray(b, dtype=np.float64)[inside]
    joint, _, _ = np.histogram2d(x, y, bins=bins)
    joint /= joint.sum()

    def entropy(p: npt.NDArray[np.float64]) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    return (entropy(joint.sum(axis=0)) + entropy(joint.sum(axis=1))) / entropy(joint)


@dataclass(frozen=True)
class Coregistration:
    """A contrast resampled into reading space and its transform."""

    image: Path
    transform: Path  # ITK text: reading-space RAS point -> moving-image RAS point


def coregister(
    moving: str | Path,
    fixed: str | Path,
    *,
    out_dir: Path,
    preset: RegistrationPreset,
) -> Coregistration:
    """Rigidly register ``moving`` onto ``fixed`` (the reading space) and resample it there.

    The metric sees the whole field of view: restricting it to a brain mask starves
    the coarse levels of samples on 5 mm-slice grids and was measured to fail
    (benchmarks/RESULTS.md).  The result is checked by :func:`check_coregistration`
    once the intracranial mask is known; the two are separate steps so that the
    registration need not wait for the template fit.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    moving_img, fixed_img = read_image(moving), read_image(fixed)
    registration = register_linear(
        fixed_img,
        moving_img,
        transform="rigid",
        preset=replace(preset, sampling_rate=preset.rigid_sampling_rate),
        out_dir=out_dir,
    )
    resampled = apply_linear(moving_img, fixed_img, registration.fixed_to_moving)
    name = Path(moving).name.split(".nii")[0]
    image = save_image(
        np.asarray(resampled.dataobj, dtype=np.float32),
        fixed_img.affine,
        out_dir / f"{name}_coreg.nii.gz",
    )
    transform = write_itk_affine(out_dir / f"{name}_xfm.txt", registration.fixed_to_moving)
    return Coregistration(image, transform)


def check_coregistration(
    registered: str | Path,
    fixed: str | Path,
    *,
    mask: str | Path,
    min_quality: float,
    source: str,
    reference: str,
) -> float:
    """The NMI of a registered contrast with the reading-space image, inside ``mask``.

    ``mask`` is the carried intracranial map (>= 0.5 inside).  Below ``min_quality``
    the registration is refused with :class:`RegistrationQualityError` naming
    ``source`` (the raw file of the contrast) and ``reference`` (that of the reading
    space).
    """
    inside = np.asarray(read_image(mask).dataobj) >= 0.5
    quality = normalized_mutual_information(
        np.asarray(read_image(fixed).dataobj), np.asarray(read_image(registered).dataobj), inside
    )
    if not quality >= min_quality:
        raise RegistrationQualityError(
            f"{source}: did not register to {Path(reference).name} (normalized mutual "
            f"information {quality:.3f} < {min_quality}): wrong subject, blank or corrupt image?",
            quality,
        )
    return quality


# Where a visit's template fit came from (its measures record says which).
OWN_FIT = "fitted to this visit"
BASELINE_FIT = "the baseline's, carried through this visit's halfway registration to it"


def brain_masks(
    reading: str | Path,
    contrast: str,
    *,
    pcf: PcfParams,
    out_dir: Path,
    preset: RegistrationPreset,
    icv_ml_limits: tuple[float, float],
    lesion_prior: bool = False,
    baseline: tuple[TemplateFit, npt.NDArray[np.float64]] | None = None,
) -> tuple[dict[str, Path], TemplateFit]:
    """Fit the template to the reading-space image; write the maps it carries.

    Returns paths of ``brain`` (the carried brain-envelope mask, uint8; refined on
    the scan's intensities by :func:`tissue_classes`) and of the carried 0..1 maps
    ``icv``, ``CSF``, ``GM``, ``WM`` and ``slab`` (float32; ``lesion_prior`` too when
    asked), and the fit (whether the scan was found already skull-stripped among it).

    ``baseline``: the baseline visit's fit and the rigid map of baseline RAS points to
    this follow-up's (its halfway registration): the baseline's fit is carried here
    through the registration instead of fitting the template again.

    The fit is checked: the intracranial volume it maps into the image's field of
    view must lie within ``icv_ml_limits`` (mL), else :class:`TemplateFitError`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    image = read_image(reading)
    if baseline is None:
        fit = fit_template(image, contrast, preset=preset, work_dir=out_dir)
    else:
        baseline_fit, baseline_to_here = baseline
        here_to_baseline = np.asarray(np.linalg.inv(baseline_to_here), dtype=np.float64)
        fit = fit_through(baseline_fit, here_to_baseline, out_dir)
    carried = carry_template_maps(image, fit, template_maps(pcf, lesion_prior=lesion_prior))
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    icv_ml = float(np.count_nonzero(carried["icv"] >= 0.5)) * voxel_ml
    low, high = icv_ml_limits
    if not low <= icv_ml <= high:
        source = "the template fit" if baseline is None else "the baseline's template fit, carried"
        raise TemplateFitError(
            f"{contrast} (the reading space): {source} gives an intracranial volume of "
            f"{icv_ml:.0f} mL inside the field of view ({image.shape[0]} x {image.shape[1]} "
            f"x {image.shape[2]} voxels), outside the protocol's {low:.0f}-{high:.0f} mL "
            "(registration.min_icv_ml, max_icv_ml): an image of part of the head, "
            "a wrong image or a failed fit"
        )
    paths = {
        "brain": save_image(
            (carried.pop("brain") >= 0.5).astype(np.uint8),
            image.affine,
            out_dir / "brain_mask.nii.gz",
        )
    }
    for name, values in carried.items():
        paths[name] = save_image(values, image.affine, out_dir / f"template_{name}.nii.gz")
    return paths, fit


def tissue_classes(
    channels: Sequence[str | Path],
    template: dict[str, str | Path],
    *,
    pcf: PcfParams,
    out_dir: Path,
    skull_stripped: bool = False,
) -> dict[str, Path]:
    """Tissue fractions, classes, refined brain and intracranial masks, PCF slab.

    ``template`` holds the outputs of :func:`brain_masks` (``brain``, ``icv``,
    ``CSF``, ``GM``, ``WM``, ``slab``).  PCF and BPF are computed after the lesions
    (:func:`mriproc.visit_lesions.brain_fractions`), which count as parenchyma.

    The brain mask (the brain's envelope: parenchyma, ventricles and sulci) is the
    carried one cut back to the closing of the parenchyma (``GM + WM >=
    0.5``) by a ball of ``pcf.brain_envelope_closing_mm``, holes filled: where the
    template fit left extra-axial CSF inside the carried envelope, no parenchyma
    bridges it and it is removed; sulci narrower than the ball stay inside.  On a
    ``skull_stripped`` scan the site's stripping has already removed the extra-axial
    tissue (and part of the CSF): the brain mask is the carried one inside the
    stripped image's non-zero region, holes filled.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [read_image(c) for c in channels]
    affine = images[0].affine
    zooms = tuple(float(z) for z in images[0].header.get_zooms()[:3])
    maps = {k: np.asarray(read_image(v).dataobj, dtype=np.float32) for k, v in template.items()}
    icv = maps["icv"] >= 0.5
    region = ndimage.distance_transform_edt(~icv, sampling=zooms) <= pcf.csf_margin_mm
    edge = region & (ndimage.distance_transform_edt(icv, sampling=zooms) <= pcf.skull_edge_depth_mm)
    outside_brain = ndimage.distance_transform_edt(maps["brain"] < 0.5, sampling=zooms)
    tissue_zone = outside_brain <= pcf.parenchyma_margin_mm
    fractions, model = tissue_fractions(
        [np.asarray(i.dataobj, dtype=np.float32) for i in images],
        {k: maps[k] for k in ("CSF", "GM", "WM")},
        region,
        edge,
        tissue_zone,
    )
    parenchyma = fractions.parenchyma
    csf = fractions.csf
    slab = maps["slab"]
    icv_refined = (parenchyma + csf) >= 0.5
    if skull_stripped:
        envelope = ndimage.binary_fill_holes(np.asarray(images[0].dataobj) > 0)
    else:
        envelope = _closing(parenchyma >= 0.5, zooms, pcf.brain_envelope_closing_mm)
    brain = (maps["brain"] >= 0.5) & envelope
    outputs: dict[str, Path] = {
        "brain": save_image(brain.astype(np.uint8), affine, out_dir / "brain_mask.nii.gz"),
        "icv": save_image(icv_refined.astype(np.uint8), affine, out_dir / "icv_mask.nii.gz"),
        "slab": save_image(
            ((slab >= 0.5) & icv_refined).astype(np.uint8), affine, out_dir / "pcfslab_mask.nii.gz"
        ),
        "dseg": save_image(fractions.dseg(), affine, out_dir / "dseg.nii.gz"),
    }
    for name, values in (("CSF", csf), ("GM", fractions.gm), ("WM", fractions.wm)):
        outputs[name] = save_image(
            np.clip(values, 0.0, 1.0).astype(np.float32), affine, out_dir / f"probseg_{name}.nii.gz"
        )
    record = {
        "signatures": {
            c: list(map(float, model.signatures[i])) for i, c in enumerate(("CSF", "GM", "WM"))
        },
        "noise_sd": {
            zone: list(map(float, sd))
            for zone, sd in zip(("interior", "edge"), model.noise_sd, strict=True)
        },
    }
    outputs["record"] = out_dir / "tissues.json"
    (out_dir / "tissues.json").write_text(json.dumps(record, indent=2) + "\n")
    return outputs


def _closing(
    mask: npt.NDArray[np.bool_], zooms: tuple[float, ...], radius_mm: float
) -> npt.NDArray[np.bool_]:
    """Morphological closing by a ball of ``radius_mm`` (voxel sizes ``zooms``), holes filled.

    Dilation and erosion are thresholded Euclidean distance maps: the same result as
    a ball-shaped structuring element, several times faster on 1 mm grids.
    """
    half = [int(radius_mm // z) for z in zooms]
    padded = np.pad(mask, [(h, h) for h in half])
    dilated = ndimage.distance_transform_edt(~padded, sampling=zooms) <= radius_mm
    closed = ndimage.distance_transform_edt(dilated, sampling=zooms) > radius_mm
    inner = tuple(slice(h, closed.shape[i] - h) for i, h in enumerate(half))
    return np.asarray(ndimage.binary_fill_holes(closed[inner]), dtype=bool)


def tissue_model_note(
    channels: Sequence[str], used: Sequence[str], refused: Mapping[str, str] | None = None
) -> str:
    """How a tissue model fitted on fewer than the protocol's ``channels`` was measured.

    Empty when every channel was used.

    >>> tissue_model_note(["FLAIR", "T2w", "T1w"], ["FLAIR", "T2w"])
    'tissue model from FLAIR, T2w only (T1w missing): less precise'
    """
    left = [role for role in channels if role not in used]
    if not left:
        return ""
    why = [
        f"{role} {'refused by the co-registration check' if role in (refused or {}) else 'missing'}"
        for role in left
    ]
    return f"tissue model from {', '.join(used)} only ({'; '.join(why)}): less precise"
