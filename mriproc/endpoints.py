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

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ENDPOINTS",
    "LESION_ENDPOINTS",
    "LONGITUDINAL_ENDPOINTS",
    "VISIT_ENDPOINTS",
    "Endpoint",
    "EndpointGroup",
]

EndpointGroup = Literal[
    "t2_lesions", "black_holes", "cel", "pcf", "new_enlarging", "active_scan", "pbvc"
]


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
