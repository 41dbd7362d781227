"""Which scans the QC report flags, and why.

A scan is flagged when ``errors.tsv`` lists it (failed or skipped, or a stage of its
participant failed), when any of its endpoints is ``n/a`` (the status says why: a
missing contrast, a registration refused by the quality check, a failed stage), or
when a value lies outside the protocol's plausibility bounds (status ``flagged:``).
Each flag links to the scan's section of its subject page.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mriproc.report.inputs import TrialTables
from mriproc.tables import FLAGGED

__all__ = ["PARTICIPANT_ANCHOR", "Flag", "flagged_scans"]

PARTICIPANT_ANCHOR = "participant"


@dataclass(frozen=True)
class Flag:
    """A flagged scan (``session`` None: a participant-level stage) and its reasons."""

    participant_id: str
    session: str | None
    reasons: tuple[str, ...]

    @property
    def anchor(self) -> str:
        """The id of the scan's section on its subject page."""
        return self.session or PARTICIPANT_ANCHOR

    @property
    def link(self) -> str:
        """Relative link from a report page to the scan's section."""
        return f"{self.participant_id}.html#{self.anchor}"


def _na_reasons(rows: pd.DataFrame) -> list[str]:
    """``n/a`` endpoints of one scan grouped by their status.

    >>> missing = "needs T1w_gad (missing)"
    >>> rows = pd.DataFrame({"endpoint": ["pcf", "cel_count", "cel_volume"],
    ...                      "status": ["ok", missing, missing]})
    >>> _na_reasons(rows)
    ['n/a: cel_count, cel_volume (needs T1w_gad (missing))']
    """
    missing = rows[(rows["status"] != "ok") & ~_is_flagged(rows)]
    reasons = []
    for status, group in missing.groupby("status", sort=True):
        status = str(status)
        names = list(group["endpoint"])
        listed = f"all {len(names)} endpoints" if len(names) == len(rows) > 2 else ", ".join(names)
        reasons.append(f"n/a: {listed} ({status})")
    return reasons


def _is_flagged(rows: pd.DataFrame) -> pd.Series:
    return rows["status"].astype(str).str.startswith(FLAGGED)


def _implausible_reasons(rows: pd.DataFrame) -> list[str]:
    """Values of one scan outside the plausibility bounds, with the bound.

    >>> rows = pd.DataFrame({"endpoint": ["pcf", "pbvc"], "value": [0.8, -4.94],
    ...                      "status": ["ok", "flagged: brain loss 4.9 % beyond 3 %"]})
    >>> _implausible_reasons(rows)
    ['implausible: pbvc = -4.94 (brain loss 4.9 % beyond 3 %)']
    """
    flagged = rows[_is_flagged(rows)]
    return [
        f"implausible: {endpoint} = {float(value):.4g} ({str(status).removeprefix(FLAGGED)})"
        for endpoint, value, status in zip(
            flagged["endpoint"], flagged["value"].astype(float), flagged["status"], strict=True
        )
    ]


def flagged_scans(tables: TrialTables) -> list[Flag]:
    """Every flagged scan, errors first within a scan, in participant and visit order."""
    reasons: dict[tuple[str, str | None], list[str]] = {}
    for error in tables.errors:
        crash = f" [crash file {error.crash_file}]" if error.crash_file else ""
        reasons.setdefault((error.participant_id, error.session), []).append(
            f"{error.stage} error: {error.reason}{crash}"
        )
    for (participant, session), rows in tables.endpoints.groupby(
        ["participant_id", "session"], sort=True
    ):
        found = _na_reasons(rows) + _implausible_reasons(rows)
        if found:
            reasons.setdefault((str(participant), str(session)), []).extend(found)
    order: dict[tuple[str, str | None], int] = {
        (participant, session): index
        for participant in tables.participants()
        for index, (session, _) in enumerate(tables.sessions_of(participant))
    }
    return [
        Flag(participant, session, tuple(found))
        for (participant, session), found in sorted(
            reasons.items(),
            key=lambda item: (item[0][0], item[0][1] is not None, order.get(item[0], 0)),
        )
    ]
