"""Plausibility checks: a value beyond the protocol's bounds is kept, but flagged.

A flagged row keeps its value; its status becomes ``flagged: <reason>`` so that the
tables, the QC report and the demo show it to a reviewer, and the statistics (which
use only status ``ok``) leave it out, listed among their exclusions.  The bounds
(``plausibility`` in the protocol) are physiological, not statistical: nothing is
fitted to the cohort, so one participant's flags never depend on another's values.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence

from mriproc.config import PlausibilityParams
from mriproc.tables import FLAGGED, EndpointRow

__all__ = ["flag_implausible"]

_BRAIN_CHANGE = ("pbvc", "pcf_change_pct")


def flag_implausible(rows: Sequence[EndpointRow], params: PlausibilityParams) -> list[EndpointRow]:
    """One participant's rows, those beyond the bounds flagged (same order).

    >>> from mriproc.config import load_protocol
    >>> params = load_protocol("esims").plausibility
    >>> row = EndpointRow("sub-01", "ses-M12", 12, "placebo", "pbvc", -4.9)
    >>> flag_implausible([row], params)[0].status
    'flagged: brain loss 4.9 % beyond the bound of 3 % at 12 months'
    """
    reasons: dict[int, str] = {}
    for index, row in enumerate(rows):
        if row.endpoint in _BRAIN_CHANGE and _usable(row) and row.visit_month is not None:
            reason = _brain_change(float(row.value or 0.0), row.visit_month, params)
            if reason:
                reasons[index] = reason
    volumes = sorted(
        (i for i, row in enumerate(rows) if row.endpoint == "t2_lesion_volume" and _usable(row)),
        key=lambda i: float(rows[i].visit_month or 0.0),
    )
    for previous, index in itertools.pairwise(volumes):
        reason = _lesion_jump(rows[previous], float(rows[index].value or 0.0), params)
        if reason:
            reasons[index] = reason
    return [
        dataclasses.replace(row, status=FLAGGED + reasons[i]) if i in reasons else row
        for i, row in enumerate(rows)
    ]


def _usable(row: EndpointRow) -> bool:
    return row.status == "ok" and row.value is not None and row.visit_month is not None


def _brain_change(value: float, months: float, params: PlausibilityParams) -> str | None:
    """Why a brain-volume change (%) from baseline is implausible, or None."""
    if value < 0:
        bound = params.brain_change_allowance_pct + params.brain_loss_per_year_pct * months / 12
        if -value > bound:
            return (
                f"brain loss {-value:.2g} % beyond the bound of {bound:.2g} % at {months:g} months"
            )
        return None
    if value > params.brain_change_allowance_pct:
        return (
            f"brain gain {value:.2g} % beyond the bound of "
            f"{params.brain_change_allowance_pct:.2g} % (adult brains do not grow)"
        )
    return None


def _lesion_jump(earlier: EndpointRow, value: float, params: PlausibilityParams) -> str | None:
    """Why a T2 lesion volume (mL) is implausible after ``earlier``'s, or None."""
    before = float(earlier.value or 0.0)
    change = value - before
    smaller, larger = sorted((before, value))
    ratio = math.inf if smaller <= 0 else larger / smaller
    if (
        abs(change) >= params.t2_lesion_volume_jump_ml
        and ratio >= params.t2_lesion_volume_jump_ratio
    ):
        bounds = (
            f"{params.t2_lesion_volume_jump_ml:g} mL and x{params.t2_lesion_volume_jump_ratio:g}"
        )
        return (
            f"T2 lesion volume {before:.3g} -> {value:.3g} mL since {earlier.session} "
            f"(bounds {bounds})"
        )
    return None
