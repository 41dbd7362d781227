"""Descriptive tables: baseline characteristics by arm, change from baseline, exclusions.

Every summary gives the number of values it is based on and the number of scans
whose value was ``n/a`` (excluded, never counted as zero).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mriproc.endpoints import ENDPOINTS
from mriproc.stats.data import BASELINE_ENDPOINTS, TrialData, unit_of
from mriproc.stats.formatting import DIGITS, mean_sd, median_iqr

__all__ = [
    "BASELINE_COLUMNS",
    "CHANGE_COLUMNS",
    "EXCLUSION_COLUMNS",
    "baseline_table",
    "change_table",
    "exclusion_table",
]

_STATISTICS: dict[str, str] = {
    "n": "Number of values summarised.",
    "excluded": "Scans (or participants, for covariates) whose value is n/a, left out.",
    "mean": "Mean.",
    "sd": "Sample standard deviation.",
    "median": "Median.",
    "q1": "First quartile.",
    "q3": "Third quartile.",
}
BASELINE_COLUMNS: dict[str, str] = {
    "section": "participants, scans, covariate (participants.tsv) or endpoint (at baseline).",
    "variable": "What is summarised.",
    "level": "Category of a categorical covariate, or the session of a scan count.",
    "unit": "Unit of the variable.",
    "arm": "Treatment arm.",
    **_STATISTICS,
    "count": "Participants or scans in the category.",
    "percent": "count as a percentage of the arm's participants with a value.",
    "summary": "mean ± SD; median [Q1, Q3], or count (percent).",
}
CHANGE_COLUMNS: dict[str, str] = {
    "endpoint": "Endpoint name.",
    "quantity": "What is summarised: the change from baseline (visit value - baseline "
    "value), or the value of an endpoint that already compares with baseline or with "
    "the previous visit.",
    "unit": "Unit of the endpoint.",
    "arm": "Treatment arm.",
    "session": "Follow-up session.",
    "visit_month": "Months since baseline.",
    **_STATISTICS,
    "summary": "mean ± SD; median [Q1, Q3].",
}
EXCLUSION_COLUMNS: dict[str, str] = {
    "endpoint": "Endpoint name.",
    "session": "Session label.",
    "visit_month": "Months since baseline.",
    "arm": "Treatment arm (n/a when unknown).",
    "reason": "Status of the value in endpoints.tsv, or why the row could not be used.",
    "scans": "Scans left out for this reason.",
}


def _statistics(values: Iterable[float], digits: int) -> dict[str, Any]:
    x = np.asarray(list(values), dtype=float)
    stats: dict[str, Any] = {"n": int(x.size)}
    if x.size:
        q1, median, q3 = (float(q) for q in np.quantile(x, [0.25, 0.5, 0.75]))
        stats |= {
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)) if x.size > 1 else np.nan,
            "median": median,
            "q1": q1,
            "q3": q3,
            "summary": f"{mean_sd(x, digits=digits)}; {median_iqr(x, digits=digits)}",
        }
    else:
        stats["summary"] = "no values"
    return stats


def _covariate_rows(data: TrialData) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    columns = [c for c in data.participants.columns if c not in ("participant_id", "arm")]
    for column in columns:
        numeric = pd.api.types.is_numeric_dtype(data.participants[column])
        for arm in data.arms:
            values = data.participants.loc[data.participants["arm"] == arm, column]
            present = values.dropna()
            base = {"section": "covariate", "variable": column, "arm": arm}
            missing = int(values.isna().sum())
            if numeric:
                rows.append({**base, "level": "", "excluded": missing, **_statistics(present, 1)})
                continue
            for level in sorted(set(data.participants[column].dropna().astype(str))):
                count = int((present.astype(str) == level).sum())
                percent = 100.0 * count / len(present) if len(present) else np.nan
                rows.append(
                    {
                        **base,
                        "level": level,
                        "n": len(present),
                        "excluded": missing,
                        "count": count,
                        "percent": percent,
                        "summary": f"{count} ({percent:.1f} %)",
                    }
                )
    return rows


def _scan_rows(data: TrialData) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    months = sorted(set(data.scans["visit_month"].dropna()))
    for arm in data.arms:
        scans = data.scans[data.scans["arm"] == arm]
        for label, chosen in [
            *((data.session_label(m), scans[scans["visit_month"] == m]) for m in months),
            ("all", scans),
        ]:
            rows.append(
                {
                    "section": "scans",
                    "variable": "scans",
                    "level": label,
                    "arm": arm,
                    "count": len(chosen),
                    "summary": str(len(chosen)),
                }
            )
    return rows


def baseline_table(data: TrialData) -> pd.DataFrame:
    """Table 1: participants, scans, covariates and every endpoint at baseline, by arm."""
    rows: list[dict[str, Any]] = []
    for arm in data.arms:
        count = int((data.participants["arm"] == arm).sum())
        rows.append(
            {
                "section": "participants",
                "variable": "participants",
                "arm": arm,
                "count": count,
                "summary": str(count),
            }
        )
    rows += _scan_rows(data)
    rows += _covariate_rows(data)
    baseline = data.baseline_month
    for endpoint in BASELINE_ENDPOINTS:
        unit = unit_of(endpoint)
        values = data.values[
            (data.values["endpoint"] == endpoint) & (data.values["visit_month"] == baseline)
        ]
        excluded = data.excluded[
            (data.excluded["endpoint"] == endpoint) & (data.excluded["visit_month"] == baseline)
        ]
        for arm in data.arms:
            in_arm = values.loc[values["arm"] == arm, "value"]
            rows.append(
                {
                    "section": "endpoint",
                    "variable": endpoint,
                    "level": data.session_label(baseline),
                    "unit": unit,
                    "arm": arm,
                    "excluded": int((excluded["arm"] == arm).sum()),
                    **_statistics(in_arm, DIGITS[unit]),
                }
            )
    return pd.DataFrame(rows, columns=list(BASELINE_COLUMNS)).fillna({"level": "", "unit": ""})


def _changes(data: TrialData, endpoint: str, month: float) -> pd.DataFrame:
    """``participant_id, arm, value`` of what the change table summarises at ``month``."""
    rows = data.values[(data.values["endpoint"] == endpoint)]
    at_visit = rows[rows["visit_month"] == month].set_index("participant_id")
    kind = next(e.compares_with for e in ENDPOINTS if e.name == endpoint)
    if kind == "none":
        at_baseline = rows[rows["visit_month"] == data.baseline_month].set_index("participant_id")[
            "value"
        ]
        change = at_visit["value"] - at_baseline.reindex(at_visit.index)
        return pd.DataFrame({"arm": at_visit["arm"], "value": change}).reset_index()
    return at_visit[["arm", "value"]].reset_index()


_QUANTITY = {
    "none": "change from baseline",
    "baseline": "value (versus baseline)",
    "previous": "value (versus the previous visit)",
}


def change_table(data: TrialData) -> pd.DataFrame:
    """Change from baseline by endpoint, arm and follow-up visit.

    Endpoints measured on one scan are summarised as visit value minus baseline value
    (participants with both); endpoints that already compare with baseline or with
    the previous visit (``pcf_change_pct``, ``pbvc``, new/enlarging counts, active
    scan) as their value.  ``excluded`` counts the scans of the arm at that visit
    without a usable change.
    """
    rows: list[dict[str, Any]] = []
    for endpoint in ENDPOINTS:
        for month in data.followup_months:
            changes = _changes(data, endpoint.name, month)
            for arm in data.arms:
                scans = int(
                    ((data.scans["visit_month"] == month) & (data.scans["arm"] == arm)).sum()
                )
                values = changes.loc[changes["arm"] == arm, "value"].dropna()
                rows.append(
                    {
                        "endpoint": endpoint.name,
                        "quantity": _QUANTITY[endpoint.compares_with],
                        "unit": endpoint.unit,
                        "arm": arm,
                        "session": data.session_label(month),
                        "visit_month": month,
                        "excluded": scans - len(values),
                        **_statistics(values, DIGITS[endpoint.unit]),
                    }
                )
    return pd.DataFrame(rows, columns=list(CHANGE_COLUMNS))


def exclusion_table(data: TrialData) -> pd.DataFrame:
    """Every value left out, counted by endpoint, visit, arm and reason."""
    excluded = data.excluded.rename(columns={"status": "reason"})
    excluded["arm"] = excluded["arm"].fillna("n/a")
    grouped = (
        excluded.groupby(["endpoint", "session", "visit_month", "arm", "reason"], dropna=False)
        .size()
        .rename("scans")
        .reset_index()
    )
    order = {e.name: i for i, e in enumerate(ENDPOINTS)}
    grouped["_order"] = grouped["endpoint"].map(order)
    grouped = grouped.sort_values(["_order", "visit_month", "session", "arm", "reason"])
    return grouped[list(EXCLUSION_COLUMNS)].reset_index(drop=True)
