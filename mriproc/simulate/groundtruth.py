"""Ground truth of a simulated scan: masks in scan space and endpoint values.

Lesion counts come from the project's one labelling function applied to the
ground-truth masks, so a count in the ground-truth table means exactly what a count
in mriproc's own table means.  Lesion change categories use the lesions' true
(continuous) volumes with the protocol's size-dependent thresholds; brain volumes
(PCF, BPF, PBVC) are integrated on a fine subject-space grid that is the same at
every visit, so they do not depend on head pose or slice thickness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.config import Protocol
from mriproc.lesions import LabelledLesions, label_lesions
from mriproc.simulate.acquisition import SampledGrid
from mriproc.simulate.deformation import CoarseField, subject_to_template_voxels
from mriproc.simulate.lesion_model import SimLesion
from mriproc.simulate.subject import LESION_TISSUES, PARENCHYMA, SimSubject, VisitState
from mriproc.template import Template

__all__ = ["BrainTruth", "ScanTruth", "brain_truth", "change_category", "scan_truth"]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class ScanTruth:
    """Ground-truth maps of one visit on its reading-space grid."""

    affine: npt.NDArray[np.float64]
    voxel_size_mm: tuple[float, float, float]
    probseg: dict[str, FloatArray]  # GM, WM, CSF, lesion fractions
    t2lesion: BoolArray
    blackhole: BoolArray
    cel: BoolArray
    brain: BoolArray  # brain envelope: parenchyma, ventricles and sulcal CSF
    icv: BoolArray
    pcfslab: BoolArray
    sim_label: npt.NDArray[np.int16]  # index+1 of the simulated lesion in each lesion voxel
    lesions: LabelledLesions  # components of t2lesion

    @property
    def bpf(self) -> float:
        """Brain parenchymal fraction of the imaged volume (what a scan can measure).

        2-D protocols cover part of the brain; this is the fraction over the scan's
        field of view, not over the whole brain.
        """
        parenchyma = float(sum(self.probseg[k].sum() for k in ("GM", "WM", "lesion")))
        return parenchyma / (parenchyma + float(self.probseg["CSF"].sum()))

    def dseg(self) -> npt.NDArray[np.int16]:
        """Tissue classes: 0 background, 1 CSF, 2 GM, 3 WM, 4 lesion (most abundant wins)."""
        stack = np.stack([self.probseg[k] for k in ("CSF", "GM", "WM", "lesion")])
        classes = np.asarray(np.argmax(stack, axis=0) + 1, dtype=np.int16)
        classes[stack.sum(axis=0) < 0.5] = 0
        return classes


def scan_truth(
    grid: SampledGrid, state: VisitState, template: Template, protocol: Protocol
) -> ScanTruth:
    """Sample a visit's truth onto its reading-space grid and derive the masks."""
    lesion_t: FloatArray = np.asarray(
        np.sum([state.fractions[name] for name in LESION_TISSUES], axis=0), dtype=np.float32
    )
    probseg = {
        "GM": grid.sample(state.fractions["GM"]),
        "WM": grid.sample(state.fractions["WM"]),
        "CSF": grid.sample(state.fractions["CSF"]),
        "lesion": grid.sample(lesion_t),
    }
    black_hole = grid.sample(state.fractions["black_hole"])
    enhancing = grid.sample(state.lesion_maps.enhancing * lesion_t)
    t2lesion = probseg["lesion"] >= 0.5
    cel = (enhancing >= 0.5) & t2lesion
    blackhole = (black_hole >= 0.5) & t2lesion & ~cel
    parenchyma = probseg["GM"] + probseg["WM"] + probseg["lesion"]
    # The brain mask is the brain's envelope (parenchyma with the ventricles and the
    # CSF of the sulci inside it, as template-based and BET-like masks define it):
    # the template's brain mask carried by the subject's anatomy and atrophy.
    brain = grid.sample((template.outside_mm == 0).astype(np.float32)) >= 0.5
    icv = (parenchyma + probseg["CSF"]) >= 0.5

    # Which simulated lesion each lesion voxel belongs to; voxels whose nearest
    # sample missed every lesion take the label of the closest labelled voxel.
    sim_label = grid.sample(state.lesion_maps.label, order=0).astype(np.int16)
    unlabelled = t2lesion & (sim_label == 0)
    if unlabelled.any() and (sim_label > 0).any():
        # Only the lesions' bounding box (plus a margin) needs the nearest-label search.
        found = np.argwhere(t2lesion | (sim_label > 0))
        lo = np.maximum(found.min(axis=0) - 3, 0)
        hi = found.max(axis=0) + 4
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        local = sim_label[box]
        if (local > 0).any():
            _, nearest = ndimage.distance_transform_edt(local == 0, return_indices=True)
            sim_label[box] = np.where(unlabelled[box], local[tuple(nearest)], local)
    sim_label = np.where(t2lesion, sim_label, 0).astype(np.int16)

    # Slab: template z of the centre of every voxel, in the protocol's MNI range.
    n_sub = len(grid.geometry.slice_offsets_mm)
    nx, ny, nz = grid.geometry.shape
    centre_z_vox = grid.template_voxels[2].reshape(nx, ny, nz, n_sub)[..., n_sub // 2]
    z_mm = centre_z_vox * template.affine[2, 2] + template.affine[2, 3]
    pcfslab = protocol.pcf.in_slab(z_mm) & icv

    zooms = grid.geometry.voxel_size_mm
    lesions = label_lesions(
        t2lesion,
        zooms,
        connectivity=protocol.labelling.connectivity,
        min_in_plane_diameter_mm=protocol.labelling.min_in_plane_diameter_mm,
    )
    return ScanTruth(
        affine=grid.affine,
        voxel_size_mm=zooms,
        probseg=probseg,
        t2lesion=lesions.mask,
        blackhole=blackhole & lesions.mask,
        cel=cel & lesions.mask,
        brain=brain,
        icv=icv,
        pcfslab=pcfslab,
        sim_label=np.where(lesions.mask, sim_label, 0).astype(np.int16),
        lesions=lesions,
    )


@dataclass(frozen=True)
class BrainTruth:
    """Brain volumes of one visit, integrated in subject space."""

    parenchyma_ml: float
    csf_ml: float
    slab_parenchyma_ml: float
    slab_csf_ml: float

    @property
    def pcf(self) -> float:
        """Partial cerebral fraction over the slab."""
        return self.slab_parenchyma_ml / (self.slab_parenchyma_ml + self.slab_csf_ml)

    @property
    def bpf(self) -> float:
        """Brain parenchymal fraction over the whole intracranial volume."""
        return self.parenchyma_ml / (self.parenchyma_ml + self.csf_ml)


def brain_truth(
    template: Template,
    subject: SimSubject,
    state: VisitState,
    visit: int,
    protocol: Protocol,
    *,
    step: float = 1.5,
) -> BrainTruth:
    """Parenchyma and CSF volumes (whole brain and slab) on a fixed subject-space grid.

    The slab is the protocol's MNI z range carried to the subject by its anatomy
    (not by atrophy), so follow-ups measure the same anatomical slab as baseline.
    """
    axes = [
        np.arange(
            template.affine[i, 3] * subject.anatomy_scale,
            (template.affine[i, 3] + template.shape[i]) * subject.anatomy_scale,
            step,
        )
        for i in range(3)
    ]
    subject_mm = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)

    def to_template(atrophy: CoarseField | None) -> FloatArray:
        return subject_to_template_voxels(
            subject_mm,
            anatomy=subject.anatomy,
            anatomy_scale=subject.anatomy_scale,
            atrophy=atrophy,
            template_affine=template.affine,
        )

    anatomical = to_template(None)
    atrophy = subject.atrophy(visit)
    where = anatomical if atrophy is None else to_template(atrophy)
    parenchyma_t = sum(state.fractions[name] for name in PARENCHYMA)
    parenchyma = ndimage.map_coordinates(
        parenchyma_t, where, order=1, mode="constant", prefilter=False
    )
    csf = ndimage.map_coordinates(
        state.fractions["CSF"], where, order=1, mode="constant", prefilter=False
    )
    slab_z = anatomical[2] * template.affine[2, 2] + template.affine[2, 3]
    slab = protocol.pcf.in_slab(slab_z)
    voxel_ml = step**3 / 1000.0
    return BrainTruth(
        parenchyma_ml=float(parenchyma.sum()) * voxel_ml,
        csf_ml=float(csf.sum()) * voxel_ml,
        slab_parenchyma_ml=float(parenchyma[slab].sum()) * voxel_ml,
        slab_csf_ml=float(csf[slab].sum()) * voxel_ml,
    )


def change_category(
    lesions: list[SimLesion], visit: int, reference: int, protocol: Protocol
) -> str:
    """Category of a group of (possibly confluent) lesions at ``visit`` versus ``reference``.

    new: none existed at the reference; enlarging / shrinking: the summed true volume
    changed beyond the protocol's size-dependent threshold (the size is the largest
    reference cross-section); stable otherwise.
    """
    before = sum(lesion.volume_ml(reference) for lesion in lesions)
    if before == 0:
        return "new"
    after = sum(lesion.volume_ml(visit) for lesion in lesions)
    area_cm2 = max(
        np.pi
        * sorted(lesion.radii_mm)[-1]
        * sorted(lesion.radii_mm)[-2]
        * lesion.scale[reference] ** 2
        / 100.0
        for lesion in lesions
    )
    params = protocol.new_enlarging
    threshold = (
        params.small_lesion_min_growth_pct
        if area_cm2 < params.small_lesion_max_area_cm2
        else params.large_lesion_min_growth_pct
    )
    growth_pct = 100.0 * (after / before - 1.0)
    if growth_pct > threshold:
        return "enlarging"
    if after < before / (1.0 + threshold / 100.0):
        return "shrinking"
    return "stable"
