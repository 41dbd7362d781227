"""Lesion endpoints of one visit, and PCF/BPF with lesions counted as parenchyma.

:func:`visit_lesions` runs the T2 lesion, CEL and black-hole segmentations on the
visit's reading-space images, writes their masks and the lesion label map, and
returns the endpoint values with, for every endpoint it could not compute, the
reason (a missing contrast, a segmentation that found no reference tissue).  PCF
and BPF are computed here, after the lesions, because lesion voxels count as
parenchyma whatever the tissue model made of them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.blackholes import segment_black_holes
from mriproc.config import Protocol
from mriproc.endpoints import EndpointGroup, visit_endpoints_of
from mriproc.enhancing import segment_enhancing
from mriproc.evaluation import detection_score, dice, lesionwise_score
from mriproc.io.nifti import read_image, save_image
from mriproc.lesions import LabelledLesions, label_lesions
from mriproc.t2lesions import LesionSegmentationError, normal_appearing_wm, segment_t2_lesions
from mriproc.tissues import DSEG_LABELS

__all__ = ["LesionOutcome", "brain_fractions", "visit_lesions"]

_LESION_LABEL = next(k for k, v in DSEG_LABELS.items() if v == "lesion")


@dataclass
class LesionOutcome:
    """What :func:`visit_lesions` measured, wrote and could not compute."""

    measures: dict[str, float] = field(default_factory=dict)
    not_available: dict[str, str] = field(default_factory=dict)  # endpoint -> reason
    images: dict[str, Path] = field(default_factory=dict)
    lesion_list: Path | None = None
    rater: dict[str, float | str] = field(default_factory=dict)  # agreement, when a rater's mask


def brain_fractions(
    tissue: Mapping[str, npt.NDArray[np.float32]],
    slab: npt.NDArray[np.float32],
    parenchyma_classes: tuple[str, ...],
    lesion: npt.NDArray[np.bool_] | None = None,
) -> tuple[float, float]:
    """PCF (weighted by the carried slab) and BPF; lesion voxels are all parenchyma."""
    csf = np.asarray(tissue["CSF"], dtype=np.float64)
    parenchyma = np.sum(
        [np.asarray(tissue[c], dtype=np.float64) for c in parenchyma_classes if c != "lesion"],
        axis=0,
    )
    if lesion is not None and "lesion" in parenchyma_classes:
        parenchyma = np.where(lesion, parenchyma + csf, parenchyma)
        csf = np.where(lesion, 0.0, csf)
    pcf = float((slab * parenchyma).sum() / (slab * (parenchyma + csf)).sum())
    bpf = float(parenchyma.sum() / (parenchyma + csf).sum())
    return pcf, bpf


def _load(path: str | Path) -> npt.NDArray[np.float32]:
    return np.asarray(read_image(path).dataobj, dtype=np.float32)


def visit_lesions(
    images: Mapping[str, str | Path],
    tissue: Mapping[str, str | Path],
    template: Mapping[str, str | Path],
    *,
    protocol: Protocol,
    out_dir: Path,
    rater_mask: str | Path | None = None,
    refused: Collection[str] = (),
) -> LesionOutcome:
    """Lesion masks, lesion endpoints, PCF and BPF of one visit.

    With a rater's T2 lesion mask the endpoints (and CEL, black holes, PCF) use it;
    the automated mask is still computed and written, and the agreement of the two
    (Dice, lesion-wise F1 with the rater as reference) is recorded in ``rater``.

    Parameters
    ----------
    images
        Contrast role -> reading-space image (bias-corrected, co-registered); roles
        the session lacks are simply absent.
    tissue
        :func:`mriproc.visit.tissue_classes` outputs (``CSF``, ``GM``, ``WM``,
        ``brain``, ``dseg``).
    template
        :func:`mriproc.visit.brain_masks` template maps (``WM``, ``CSF``, ``slab``,
        ``lesion_prior``).
    protocol
        The protocol (its ``t2_lesions``, ``cel``, ``black_holes``, ``labelling``
        and ``pcf`` sections).
    out_dir
        Where the masks, the label map, the dseg and ``lesions.json`` are written.
    rater_mask
        A rater's T2 lesion mask on the reading-space grid, or None.
    refused
        Roles the session has but whose co-registration was refused by the quality
        check: absent from ``images``, and named as such in the reasons.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = LesionOutcome()
    reference = read_image(tissue["brain"])
    affine = reference.affine
    zooms = tuple(float(z) for z in reference.header.get_zooms()[:3])
    fractions = {k: _load(tissue[k]) for k in ("CSF", "GM", "WM")}
    brain = np.asarray(reference.dataobj) > 0
    template_wm = _load(template["WM"])
    loaded: dict[str, npt.NDArray[np.float32]] = {}

    def contrast(role: str) -> npt.NDArray[np.float32]:
        if role not in loaded:
            loaded[role] = _load(images[role])
        return loaded[role]

    def lacking(group: EndpointGroup) -> str | None:
        needed = protocol.required_contrasts(group)
        absent = [r for r in needed if r not in images and r not in refused]
        bad = [r for r in needed if r not in images and r in refused]
        reasons = ["needs " + ", ".join(f"{r} (missing)" for r in absent)] if absent else []
        if bad:
            reasons.append(f"needs {', '.join(bad)} (refused by the co-registration check)")
        return "; ".join(reasons) or None

    def save(values: npt.ArrayLike, name: str, dtype: type = np.uint8) -> Path:
        return save_image(np.asarray(values, dtype=dtype), affine, out_dir / f"{name}.nii.gz")

    def record(found: LabelledLesions, volume: str, count: str, image: str) -> None:
        """Endpoint values of ``found`` and its mask (``image``: output key, file name)."""
        outcome.measures[volume] = found.total_volume_ml
        outcome.measures[count] = float(found.count)
        outcome.images[image] = save(found.mask, f"{image}_mask")

    def unavailable(reason: str, group: EndpointGroup) -> None:
        """Every visit endpoint of ``group`` is n/a, for ``reason``."""
        outcome.not_available.update(dict.fromkeys(visit_endpoints_of(group), reason))

    t2_mask: npt.NDArray[np.bool_] | None = None
    t2_labels: npt.NDArray[np.int32] | None = None
    automated: LabelledLesions | None = None
    probabilities = None
    reason = lacking("t2_lesions")
    if reason is None:
        try:
            segmented = segment_t2_lesions(
                [contrast(r) for r in protocol.t2_lesions.channels],
                fractions,
                template_wm,
                brain,
                zooms,
                params=protocol.t2_lesions,
                labelling=protocol.labelling,
                prior=_load(template["lesion_prior"]) if "lesion_prior" in template else None,
            )
            automated, probabilities = segmented.lesions, segmented.probabilities
        except LesionSegmentationError as err:
            reason = f"T2 lesion segmentation failed: {err}"
    lesions = automated
    if rater_mask is not None:
        # The rater's mask is used whatever happened to the automated one.
        rater = _rater_lesions(rater_mask, reference.shape, affine, zooms, protocol)
        probabilities = None  # the lesions are the rater's
        if isinstance(rater, str):
            reason, lesions = rater, None
        else:
            reason, lesions = None, rater
            outcome.rater = _agreement(rater_mask, rater, automated, zooms, protocol)
        if automated is not None:
            outcome.images["t2lesionautomated"] = save(automated.mask, "t2lesion_automated")
    if lesions is not None:
        t2_mask, t2_labels = lesions.mask, lesions.labels
        record(lesions, "t2_lesion_volume", "t2_lesion_count", "t2lesion")
        outcome.images["lesions"] = save(t2_labels, "lesions_dseg", np.int32)
    else:
        unavailable(reason or "no T2 lesion mask", "t2_lesions")

    enhancing_mask: npt.NDArray[np.bool_] | None = None
    needs_t2 = protocol.cel.require_t2_correspondence and t2_mask is None
    reason = lacking("cel") or ("no T2 lesion mask" if needs_t2 else None)
    if reason is None:
        nawm = normal_appearing_wm(fractions["WM"], template_wm, brain, protocol.t2_lesions)
        if t2_mask is not None:
            nawm &= ~t2_mask
        try:
            pre, post = protocol.cel.requires  # pre- and post-contrast (checked on loading)
            cel = segment_enhancing(
                contrast(pre),
                contrast(post),
                nawm,
                brain,
                _load(template["CSF"]),
                zooms,
                params=protocol.cel,
                labelling=protocol.labelling,
                t2_lesions=t2_labels,
            )
        except ValueError as err:
            reason = f"CEL segmentation failed: {err}"
        else:
            enhancing_mask = cel.lesions.mask
            record(cel.lesions, "cel_volume", "cel_count", "cel")
    if reason is not None:
        unavailable(reason, "cel")

    black_mask: npt.NDArray[np.bool_] | None = None
    reason = lacking("black_holes") or (None if t2_mask is not None else "no T2 lesion mask")
    if reason is None and t2_mask is not None:
        try:
            holes = segment_black_holes(
                contrast(protocol.black_holes.requires[0]),
                t2_mask,
                fractions["GM"],
                brain,
                zooms,
                params=protocol.black_holes,
                labelling=protocol.labelling,
                enhancing=enhancing_mask,
            )
        except ValueError as err:
            reason = f"black-hole segmentation failed: {err}"
        else:
            black_mask = holes.lesions.mask
            record(holes.lesions, "black_hole_volume", "black_hole_count", "blackhole")
    if reason is not None:
        unavailable(reason, "black_holes")

    reason = protocol.tissue_model_lacks(images, refused)
    if reason is None:
        pcf, bpf = brain_fractions(
            fractions, _load(template["slab"]), protocol.pcf.parenchyma_classes, t2_mask
        )
        outcome.measures.update(pcf=pcf, bpf=bpf)
    else:
        unavailable(reason, "pcf")
    dseg = np.asarray(read_image(tissue["dseg"]).dataobj, dtype=np.int16)
    if t2_mask is not None:
        dseg = np.where(t2_mask, _LESION_LABEL, dseg).astype(np.int16)
    outcome.images["dseg"] = save(dseg, "dseg", np.int16)
    if t2_labels is not None:
        outcome.lesion_list = out_dir / "lesions.json"
        outcome.lesion_list.write_text(
            json.dumps(
                _lesion_list(t2_labels, affine, zooms, enhancing_mask, black_mask, probabilities),
                indent=1,
            )
            + "\n"
        )
    return outcome


def _rater_lesions(
    path: str | Path,
    shape: tuple[int, ...],
    affine: npt.NDArray[np.float64],
    zooms: tuple[float, ...],
    protocol: Protocol,
) -> LabelledLesions | str:
    """The rater's lesions, or why the mask cannot be used."""
    image = read_image(path)
    if image.shape[:3] != shape[:3] or not np.allclose(image.affine, affine, atol=1e-3):
        return (
            f"rater mask {path} is not on the reading-space grid (shape {image.shape[:3]}, "
            f"expected {shape[:3]} with the reading-space image's affine)"
        )
    return label_lesions(
        np.asarray(image.dataobj) > 0,
        zooms,
        connectivity=protocol.labelling.connectivity,
        min_in_plane_diameter_mm=protocol.labelling.min_in_plane_diameter_mm,
    )


def _agreement(
    path: str | Path,
    rater: LabelledLesions,
    automated: LabelledLesions | None,
    zooms: tuple[float, ...],
    protocol: Protocol,
) -> dict[str, float | str]:
    """Automated versus the rater (as reference): volumes, counts, Dice, lesion-wise F1
    (the protocol's lesions) and detection by the MSSEG convention."""
    record: dict[str, float | str] = {
        "rater_mask": str(path),
        "rater_volume_ml": rater.total_volume_ml,
        "rater_count": float(rater.count),
    }
    if automated is None:  # the automated segmentation failed: nothing to compare
        return record
    score = lesionwise_score(
        rater.mask,
        automated.mask,
        zooms,
        connectivity=protocol.labelling.connectivity,
        min_in_plane_diameter_mm=protocol.labelling.min_in_plane_diameter_mm,
    )
    detection = detection_score(
        rater.mask, automated.mask, zooms, connectivity=protocol.labelling.connectivity
    ).overall
    record.update(
        automated_volume_ml=automated.total_volume_ml,
        automated_count=float(automated.count),
        dice=dice(rater.mask, automated.mask),
        lesion_f1=score.f1,
        detection_f1=detection.f1,
        detection_recall=detection.recall,
        detection_precision=detection.precision,
    )
    return record


def _lesion_list(
    labels: npt.NDArray[np.int32],
    affine: npt.NDArray[np.float64],
    zooms: tuple[float, ...],
    enhancing: npt.NDArray[np.bool_] | None,
    black_holes: npt.NDArray[np.bool_] | None,
    probabilities: npt.NDArray[np.float64] | None = None,
) -> list[dict[str, object]]:
    """One entry per labelled lesion: volume, centroid (scanner mm), enhancing, black hole,
    and the lesion classifier's probability when one decided."""
    count = int(labels.max()) if labels.size else 0
    index = np.arange(1, count + 1)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    centroids = ndimage.center_of_mass(labels > 0, labels, index) if count else []

    def touches(mask: npt.NDArray[np.bool_] | None) -> list[bool | None]:
        if mask is None:
            return [None] * count
        hits = np.bincount(labels[mask].ravel(), minlength=count + 1)[1:]
        return [bool(h) for h in hits]

    chances: list[float | None] = (
        [None] * count if probabilities is None else [float(p) for p in probabilities]
    )
    entries = []
    for number, size, centroid, enh, hole, chance in zip(
        index, sizes, centroids, touches(enhancing), touches(black_holes), chances, strict=True
    ):
        world = affine @ np.append(np.asarray(centroid, dtype=float), 1.0)
        entries.append(
            {
                "label": int(number),
                "volume_ml": float(size) * voxel_ml,
                "centroid_mm": [round(float(w), 2) for w in world[:3]],
                "enhancing": enh,
                "black_hole": hole,
                **({} if chance is None else {"probability": round(chance, 4)}),
            }
        )
    return entries
