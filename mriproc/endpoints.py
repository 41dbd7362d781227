"""The endpoints: each one defined once, and every list of them derived from here.

An endpoint's name, unit, protocol group (which decides the contrasts it needs:
:meth:`mriproc.config.Protocol.required_contrasts`), meaning, the visit it is
compared with and the derivative mask its value is measured on.  The tables, the
records, the validation, the statistics and the report take their lists from this
module; to add an endpoint, add it here, measure it (a function of the visit or
follow-up stage that puts its value in the record), give its parameters to the
protocol files, and give the simulator's ground truth its true value.

This module imports nothing from mriproc: it is the ground floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ENDPOINTS",
    "LESION_ENDPOINTS",
    "LONGITUDINAL_ENDPOINTS",
    "VISIT_ENDPOINTS",
    "ActiveScanParams",
    "BlackHoleParams",
    "CelParams",
    "Endpoint",
    "EndpointGroup",
    "NewEnlargingParams",
    "PbvcParams",
    "PcfParams",
    "T2LesionParams",
    "bounds",
    "visit_endpoints_of",
]

EndpointGroup = Literal[
    "t2_lesions", "black_holes", "cel", "pcf", "new_enlarging", "active_scan", "pbvc"
]
TissueClass = Literal["GM", "WM", "CSF", "lesion"]
ExcludedStructure = Literal["vessels", "dural_sinuses", "choroid_plexus"]


def bounds(lo: float | None = None, hi: float | None = None) -> dict[str, float | None]:
    """Field metadata: the range a protocol value must lie in (checked on loading)."""
    return {"min": lo, "max": hi}


# --------------------------------------------------------------------------- parameters
# Each endpoint group's section of a protocol file (``t2_lesions:``, ``cel:``, ...):
# the parameters its measurement takes, with their allowed ranges.  Loaded and
# checked by :func:`mriproc.config.load_protocol`.


@dataclass(frozen=True, slots=True)
class T2LesionParams:
    """T2-hyperintense lesion segmentation."""

    channels: tuple[str, ...] = field(metadata={"min_len": 1})
    white_matter_margin_mm: float = field(metadata=bounds(0.0, 20.0))
    wm_prior_min: float = field(metadata=bounds(0.0, 1.0))  # template WM: where seeds may be
    nawm_min_wm_fraction: float = field(metadata=bounds(0.5, 1.0))
    gm_min_fraction: float = field(metadata=bounds(0.5, 1.0))
    seed_z: float = field(metadata=bounds(0.0, 50.0))
    channel_min_z: float = field(metadata=bounds(-10.0, 50.0))
    min_lesion_fraction: float = field(metadata=bounds(0.0, 1.0))
    # The lesion end of the partial-volume line: one for all lesions, or each its own.
    lesion_signature: Literal["global", "per_lesion"]
    grow_mm: float = field(metadata=bounds(0.0, 20.0))
    local_ring_mm: tuple[float, float]
    # Per-candidate decision: a lesion classifier (shipped name or .json file; None:
    # every candidate is a lesion) and the probability a candidate needs to be kept.
    classifier: str | None
    min_probability: float = field(metadata=bounds(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class BlackHoleParams:
    """T1 black holes: T2 lesions hypointense on pre-contrast T1."""

    requires: tuple[str, ...]
    exclude_enhancing: bool
    gm_min_fraction: float = field(metadata=bounds(0.5, 1.0))  # grey matter: the reference
    cortical_depth_mm: float = field(metadata=bounds(1.0, 50.0))  # cortex: near the surface
    rim_mm: float = field(metadata=bounds(0.0, 10.0))  # lesion rim left out (partial volume)


@dataclass(frozen=True, slots=True)
class CelParams:
    """Contrast-enhancing lesions."""

    requires: tuple[str, ...]
    min_voxels: int = field(metadata=bounds(1, 1000))
    exclude_structures: tuple[ExcludedStructure, ...]
    require_t2_correspondence: bool
    seed_z: float = field(metadata=bounds(0.0, 100.0))
    grow_z: float = field(metadata=bounds(0.0, 100.0))
    surface_margin_mm: float = field(metadata=bounds(0.0, 30.0))
    csf_prior_max: float = field(metadata=bounds(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class NewEnlargingParams:
    """New and enlarging T2 lesions between two visits."""

    new_max_overlap_voxels: int = field(metadata=bounds(0, 1000))
    small_lesion_max_area_cm2: float = field(metadata=bounds(0.0, 100.0))
    small_lesion_min_growth_pct: float = field(metadata=bounds(0.0, 1000.0))
    large_lesion_min_growth_pct: float = field(metadata=bounds(0.0, 1000.0))
    # A lesion found only at the later visit is new when the earlier image's lesion
    # signal at its place is below this fraction of the later one (else the earlier
    # segmentation missed it, and it is compared by size like any other).
    new_max_earlier_fraction: float = field(metadata=bounds(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class ActiveScanParams:
    """A scan is active with at least this many CEL or new/enlarging lesions."""

    min_cel: int = field(metadata=bounds(1, 1000))
    min_new_or_enlarging: int = field(metadata=bounds(1, 1000))


@dataclass(frozen=True, slots=True)
class PcfParams:
    """Partial cerebral fraction over an axial slab defined in MNI152 space."""

    slab_inferior_mni_z_mm: float = field(metadata=bounds(-72.0, 110.0))
    slab_thickness_mm: float = field(metadata=bounds(1.0, 180.0))
    parenchyma_classes: tuple[TissueClass, ...] = field(metadata={"min_len": 1})
    channels: tuple[str, ...] = field(metadata={"min_len": 1})  # unmixed into tissue fractions
    # PCF, BPF and the brain-volume changes need a tissue model from at least this
    # many of the channels (the lesion stage uses the model whatever it has).
    min_channels: int = field(metadata=bounds(1, 10))
    parenchyma_margin_mm: float = field(metadata=bounds(0.0, 10.0))  # beyond the brain mask
    csf_margin_mm: float = field(metadata=bounds(0.0, 20.0))  # beyond the intracranial mask
    skull_edge_depth_mm: float = field(metadata=bounds(0.0, 20.0))  # bone partial volume
    brain_envelope_closing_mm: float = field(metadata=bounds(0.0, 30.0))  # bridges sulci

    def in_slab(self, mni_z_mm: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.bool_]:
        """Where MNI152 z coordinates (mm) lie in the PCF slab.

        The slab is ``[inferior, inferior + thickness)``: the one definition, for the
        measurement and the ground truth.

        >>> import numpy as np
        >>> params = PcfParams(0.0, 10.0, ("GM", "WM"), ("T2w",), 1, 0.0, 0.0, 0.0, 0.0)
        >>> params.in_slab(np.array([-1.0, 0.0, 9.9, 10.0])).tolist()
        [False, True, True, False]
        """
        lo = self.slab_inferior_mni_z_mm
        inside: npt.NDArray[np.bool_] = (mni_z_mm >= lo) & (mni_z_mm < lo + self.slab_thickness_mm)
        return inside


@dataclass(frozen=True, slots=True)
class PbvcParams:
    """Registration-based percentage brain volume change (:mod:`mriproc.atrophy`)."""

    method: Literal["jacobian", "boundary_shift"]
    # Boundary shift: the brain surface and which of its vertices are measured.
    surface_smoothing_mm: float = field(metadata=bounds(0.0, 5.0))
    thick_slice_ratio: float = field(metadata=bounds(1.0, 20.0))
    max_normal_tilt_deg: float = field(metadata=bounds(0.0, 90.0))
    # Profiles along the normals and the search for the edge's displacement.
    profile_half_length_mm: float = field(metadata=bounds(0.5, 20.0))
    profile_step_mm: float = field(metadata=bounds(0.05, 2.0))
    profile_window_mm: float = field(metadata=bounds(0.2, 20.0))
    profile_smoothing_mm: float = field(metadata=bounds(0.0, 5.0))
    search_mm: float = field(metadata=bounds(0.1, 10.0))
    min_profile_correlation: float = field(metadata=bounds(-1.0, 1.0))
    # Self-calibration: the image against a copy scaled by this much (linear, %).
    calibration_scale_pct: float = field(metadata=bounds(0.1, 10.0))
    # A value is n/a (with the reason) when fewer edge points than this could be
    # measured in either direction, when the calibration found the scaled copy's
    # edges moved by a gain outside these limits, or when the forward and backward
    # runs disagree by more than this many percentage points.
    min_edge_points: int = field(metadata=bounds(1, 10_000_000))
    min_calibration_gain: float = field(metadata=bounds(0.0, 10.0))
    max_calibration_gain: float = field(metadata=bounds(0.0, 10.0))
    max_direction_difference_pct: float = field(metadata=bounds(0.0, 100.0))


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of SPEC.md: its name, unit, protocol group and meaning.

    ``compares_with``: the visit a longitudinal endpoint compares the scan with
    (``none``: measured on the visit alone); ``lesion_mask``: the lesion mask (desc
    entity) a visit endpoint is measured on, which a rater's mask replaces.
    """

    name: str
    unit: Literal["mL", "n", "0/1", "fraction", "%"]
    group: EndpointGroup
    description: str
    compares_with: Literal["none", "previous", "baseline"] = "none"
    lesion_mask: str | None = None

    @property
    def longitudinal(self) -> bool:
        """Measured by the longitudinal stage (against another visit)."""
        return self.compares_with != "none"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "t2_lesion_volume",
        "mL",
        "t2_lesions",
        "Total volume of T2-hyperintense lesions.",
        lesion_mask="t2lesion",
    ),
    Endpoint(
        "t2_lesion_count",
        "n",
        "t2_lesions",
        "Number of T2-hyperintense lesions.",
        lesion_mask="t2lesion",
    ),
    Endpoint(
        "black_hole_volume",
        "mL",
        "black_holes",
        "Total volume of T1 black holes (T2 lesions hypointense on pre-contrast T1).",
        lesion_mask="blackhole",
    ),
    Endpoint(
        "black_hole_count", "n", "black_holes", "Number of T1 black holes.", lesion_mask="blackhole"
    ),
    Endpoint("cel_count", "n", "cel", "Number of gadolinium-enhancing lesions.", lesion_mask="cel"),
    Endpoint(
        "cel_volume",
        "mL",
        "cel",
        "Total volume of gadolinium-enhancing lesions.",
        lesion_mask="cel",
    ),
    Endpoint(
        "new_t2_count",
        "n",
        "new_enlarging",
        "New T2 lesions versus the previous visit (no overlap with any earlier lesion).",
        compares_with="previous",
    ),
    Endpoint(
        "enlarging_t2_count",
        "n",
        "new_enlarging",
        "Enlarging T2 lesions versus the previous visit (growth above the protocol's "
        "size-dependent threshold).",
        compares_with="previous",
    ),
    Endpoint(
        "new_t2_count_vs_baseline",
        "n",
        "new_enlarging",
        "New T2 lesions versus baseline.",
        compares_with="baseline",
    ),
    Endpoint(
        "enlarging_t2_count_vs_baseline",
        "n",
        "new_enlarging",
        "Enlarging T2 lesions versus baseline.",
        compares_with="baseline",
    ),
    Endpoint(
        "active_scan",
        "0/1",
        "active_scan",
        "1 when the scan has at least one CEL or at least one new/enlarging T2 lesion "
        "(versus the previous visit).",
        compares_with="previous",
    ),
    Endpoint(
        "pcf",
        "fraction",
        "pcf",
        "Partial cerebral fraction: parenchyma / (parenchyma + CSF) inside the "
        "intracranial mask over the protocol's anatomical slab.",
    ),
    Endpoint(
        "bpf",
        "fraction",
        "pcf",
        "Brain parenchymal fraction: parenchyma / (parenchyma + CSF) over the whole "
        "imaged intracranial volume (2-D protocols may not cover the whole brain).",
    ),
    Endpoint(
        "pcf_change_pct",
        "%",
        "pcf",
        "100 x (PCF at this visit - PCF at baseline) / PCF at baseline, on the baseline slab.",
        compares_with="baseline",
    ),
    Endpoint(
        "pbvc",
        "%",
        "pbvc",
        "Registration-based percentage brain volume change from baseline.",
        compares_with="baseline",
    ),
)

# Measured on the visit alone, in catalogue order.
VISIT_ENDPOINTS = tuple(e.name for e in ENDPOINTS if not e.longitudinal)
# Measured on a visit's lesion masks (a rater's mask replaces the automated one).
LESION_ENDPOINTS = tuple(e.name for e in ENDPOINTS if e.lesion_mask is not None)
# Measured by the longitudinal stage at every follow-up, in catalogue order.
LONGITUDINAL_ENDPOINTS = tuple(e.name for e in ENDPOINTS if e.longitudinal)


def visit_endpoints_of(group: EndpointGroup) -> tuple[str, ...]:
    """The group's endpoints measured on the visit alone, in catalogue order.

    What becomes n/a, with one reason, when the group cannot be measured at a visit.

    >>> visit_endpoints_of("cel")
    ('cel_count', 'cel_volume')
    >>> visit_endpoints_of("pcf")
    ('pcf', 'bpf')
    """
    return tuple(e.name for e in ENDPOINTS if e.group == group and not e.longitudinal)
