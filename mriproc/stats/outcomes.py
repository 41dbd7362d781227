"""The trial outcomes, and per-participant data frames of one arm pair for each.

* change outcomes (``pcf_change_pct``, ``pbvc``) at a follow-up visit, with the
  baseline value they are adjusted for (PCF for the PCF change, BPF for PBVC) and
  the baseline CEL count;
* cumulative counts over the follow-up visits: CEL (``cel_count``) and new plus
  enlarging T2 lesions (``new_t2_count + enlarging_t2_count``, each versus the
  previous visit), with the number of follow-up scans that entered the sum;
* active scans: one row per follow-up scan, and per participant whether any
  follow-up scan was active.

A follow-up scan enters a cumulative count only when every part of the count is
usable on it; a participant's exposure is the number of such scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mriproc.stats.data import TrialData

__all__ = [
    "CHANGE_OUTCOMES",
    "COUNT_OUTCOMES",
    "ChangeOutcome",
    "CumulativeCount",
    "active_scan_frame",
    "change_frame",
    "count_frame",
]


@dataclass(frozen=True)
class ChangeOutcome:
    """A change from baseline at a follow-up visit, and the baseline value it adjusts for."""

    endpoint: str
    baseline_endpoint: str
    label: str

    @property
    def baseline_column(self) -> str:
        """Column of the baseline value in :func:`change_frame`."""
        return f"baseline_{self.baseline_endpoint}"


@dataclass(frozen=True)
class CumulativeCount:
    """A count summed over a participant's follow-up scans."""

    name: str
    components: tuple[str, ...]
    label: str

    @property
    def definition(self) -> str:
        """How the count is formed, e.g. ``new_t2_count + enlarging_t2_count``."""
        return " + ".join(self.components)


CHANGE_OUTCOMES = (
    ChangeOutcome("pcf_change_pct", "pcf", "PCF change from baseline (%)"),
    ChangeOutcome("pbvc", "bpf", "PBVC, brain volume change from baseline (%)"),
)
COUNT_OUTCOMES = (
    CumulativeCount("cumulative_cel_count", ("cel_count",), "Cumulative CEL count"),
    CumulativeCount(
        "cumulative_new_enlarging_t2_count",
        ("new_t2_count", "enlarging_t2_count"),
        "Cumulative new or enlarging T2 lesions",
    ),
)
BASELINE_CEL = "baseline_cel_count"


def _pair_participants(data: TrialData, pair: tuple[str, str]) -> pd.DataFrame:
    chosen = data.participants[data.participants["arm"].isin(pair)]
    frame = pd.DataFrame(
        {
            "participant_id": chosen["participant_id"].astype(str).to_numpy(),
            "arm": pd.Categorical(chosen["arm"].astype(str), categories=list(pair)),
        }
    )
    return frame.set_index("participant_id")


def _at(data: TrialData, endpoint: str, month: float) -> pd.Series:
    return data.values_of(endpoint, month).droplevel("visit_month")


def change_frame(
    data: TrialData, pair: tuple[str, str], outcome: ChangeOutcome, month: float
) -> pd.DataFrame:
    """Participants of ``pair`` with a usable ``outcome`` at ``month``, and baseline values.

    Columns: ``participant_id, arm, <endpoint>, baseline_<endpoint>, baseline_cel_count``
    (the baseline columns may be missing).
    """
    frame = _pair_participants(data, pair)
    frame[outcome.endpoint] = _at(data, outcome.endpoint, month)
    frame[outcome.baseline_column] = _at(data, outcome.baseline_endpoint, data.baseline_month)
    frame[BASELINE_CEL] = _at(data, "cel_count", data.baseline_month)
    frame = frame[frame[outcome.endpoint].notna()]
    return frame.reset_index().sort_values("participant_id").reset_index(drop=True)


def _followup_values(data: TrialData, pair: tuple[str, str], endpoint: str) -> pd.Series:
    rows = data.values[
        (data.values["endpoint"] == endpoint)
        & data.values["visit_month"].isin(data.followup_months)
        & data.values["arm"].isin(pair)
    ]
    return rows.set_index(["participant_id", "visit_month"])["value"]


def count_frame(data: TrialData, pair: tuple[str, str], outcome: CumulativeCount) -> pd.DataFrame:
    """Per participant of ``pair``: the count summed over usable follow-up scans.

    Columns: ``participant_id, arm, <name>, followup_scans``; participants without a
    usable follow-up scan are left out.
    """
    parts = pd.concat(
        [_followup_values(data, pair, c).rename(c) for c in outcome.components], axis=1
    ).dropna()
    per_scan = parts.sum(axis=1)
    grouped = per_scan.groupby(level="participant_id")
    frame = _pair_participants(data, pair)
    frame[outcome.name] = grouped.sum()
    frame["followup_scans"] = grouped.size()
    frame = frame[frame["followup_scans"].notna()].astype(
        {outcome.name: float, "followup_scans": int}
    )
    return frame.reset_index().sort_values("participant_id").reset_index(drop=True)


def active_scan_frame(data: TrialData, pair: tuple[str, str]) -> pd.DataFrame:
    """One row per usable follow-up scan of ``pair``: ``participant_id, arm, visit_month,
    active_scan``."""
    values = _followup_values(data, pair, "active_scan").rename("active_scan").reset_index()
    arms = _pair_participants(data, pair)["arm"]
    values["arm"] = pd.Categorical(
        values["participant_id"].map(arms).astype(str), categories=list(pair)
    )
    values["active_scan"] = values["active_scan"].astype(int)
    columns = ["participant_id", "arm", "visit_month", "active_scan"]
    return values[columns].sort_values(["participant_id", "visit_month"]).reset_index(drop=True)


def excluded_scans(
    data: TrialData, pair: tuple[str, str], endpoints: tuple[str, ...], months: tuple[float, ...]
) -> int:
    """Scans of ``pair`` at ``months`` where any of ``endpoints`` is not usable."""
    rows = data.excluded[
        data.excluded["endpoint"].isin(endpoints)
        & data.excluded["visit_month"].isin(months)
        & data.excluded["arm"].isin(pair)
    ]
    return len(rows[["participant_id", "session"]].drop_duplicates())
