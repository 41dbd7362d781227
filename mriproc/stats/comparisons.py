"""Between-arm comparisons: Table 2 of a trial paper.

Each arm is compared with the reference arm on the participants of those two arms:

* change outcomes at every follow-up visit: Welch's t-test (unadjusted difference in
  means) and ANCOVA adjusted for the outcome's baseline value and the baseline CEL
  count;
* cumulative CEL and new/enlarging T2 counts over the follow-up visits: negative
  binomial regression (rate ratio) with the number of usable follow-up scans as
  exposure, and a Wilcoxon rank-sum test of the count per follow-up scan as the
  sensitivity analysis;
* active scans: logistic GEE on every follow-up scan (odds ratio), and Fisher's exact
  test of the participants with at least one active follow-up scan.

Differences are comparison arm minus reference arm; ratios are comparison arm over
reference arm.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mriproc.stats import models
from mriproc.stats.data import TrialData, unit_of
from mriproc.stats.formatting import DIGITS, mean_sd, median_iqr, proportion_text
from mriproc.stats.models import Estimate
from mriproc.stats.outcomes import (
    BASELINE_CEL,
    CHANGE_OUTCOMES,
    COUNT_OUTCOMES,
    ChangeOutcome,
    CumulativeCount,
    active_scan_frame,
    change_frame,
    count_frame,
    excluded_scans,
)

__all__ = ["COMPARISON_COLUMNS", "TESTS", "between_arm_comparisons"]

COMPARISON_COLUMNS: dict[str, str] = {
    "outcome": "Outcome (endpoint name, or a count formed from endpoints).",
    "visits": "Follow-up visit(s) the outcome is taken at.",
    "test": "Statistical test or model.",
    "role": "Place of the test in the analysis (adjusted, sensitivity, ...).",
    "formula": "Model formula (statsmodels/patsy notation); arm is treatment-coded.",
    "estimand": "What the estimate measures, and its direction.",
    "reference_arm": "Arm compared against.",
    "arm": "Arm compared with the reference.",
    "n_reference": "Participants of the reference arm in the analysis.",
    "n_arm": "Participants of the compared arm in the analysis.",
    "reference_summary": "The outcome in the reference arm.",
    "arm_summary": "The outcome in the compared arm.",
    "estimate": "Effect estimate (see estimand).",
    "ci_low": "Lower end of the 95 % confidence interval.",
    "ci_high": "Upper end of the 95 % confidence interval.",
    "p_value": "Two-sided P value.",
    "excluded_scans": "Scans of the two arms at these visits whose value is n/a (left out).",
    "note": "Why an estimate is missing, who was left out, model warnings.",
}


@dataclass(frozen=True)
class Test:
    """A test's name as the output shows it."""

    name: str
    role: str


TESTS = {
    "welch": Test("Welch two-sample t-test", "unadjusted"),
    "ancova": Test("ANCOVA (ordinary least squares)", "adjusted for baseline"),
    "nb": Test("Negative binomial regression (NB2, log link, Wald CI)", "main"),
    "wilcoxon": Test("Wilcoxon rank-sum test (Mann-Whitney U)", "sensitivity"),
    "gee": Test("Logistic GEE (exchangeable correlation, robust SE)", "per scan"),
    "fisher": Test("Fisher's exact test (conditional MLE odds ratio)", "per participant"),
}


@dataclass(frozen=True)
class _Outcome:
    """What the rows of one outcome share."""

    name: str
    visits: str
    pair: tuple[str, str]
    excluded: int
    note: str = ""


def _row(
    test: str,
    outcome: _Outcome,
    *,
    formula: str,
    estimand: str,
    frame: pd.DataFrame,
    summaries: Callable[[pd.DataFrame], str],
    estimate: Estimate,
    note: str = "",
) -> dict[str, Any]:
    reference, arm = outcome.pair
    in_arm = {a: frame[frame["arm"] == a] for a in outcome.pair}
    if frame.empty:  # one reason is enough
        notes = "not estimable: " + (
            f"no usable value ({outcome.excluded} scan(s) n/a, see exclusions.tsv)"
            if outcome.excluded
            else "no value in the endpoint table"
        )
    else:
        notes = "; ".join(n for n in (outcome.note, note, estimate.note) if n)
    return {
        "outcome": outcome.name,
        "visits": outcome.visits,
        "test": TESTS[test].name,
        "role": TESTS[test].role,
        "formula": formula,
        "estimand": estimand,
        "reference_arm": reference,
        "arm": arm,
        "n_reference": int(in_arm[reference]["participant_id"].nunique()),
        "n_arm": int(in_arm[arm]["participant_id"].nunique()),
        "reference_summary": summaries(in_arm[reference]),
        "arm_summary": summaries(in_arm[arm]),
        "estimate": estimate.estimate,
        "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high,
        "p_value": estimate.p_value,
        "excluded_scans": outcome.excluded,
        "note": notes,
    }


def ancova_formula(frame: pd.DataFrame, outcome: ChangeOutcome) -> tuple[str, pd.DataFrame, str]:
    """The ANCOVA formula, its complete cases and a note on who or what was left out.

    A covariate without variation (e.g. no baseline CEL in anyone) is dropped, saying so.
    """
    covariates = [outcome.baseline_column, BASELINE_CEL]
    complete = frame.dropna(subset=covariates)
    if complete.empty:
        return " + ".join([f"{outcome.endpoint} ~ arm", *covariates]), complete, ""
    notes = []
    if len(complete) < len(frame):
        notes.append(
            f"{len(frame) - len(complete)} participant(s) without a baseline "
            f"{outcome.baseline_endpoint} or cel_count left out"
        )
    kept = [c for c in covariates if complete[c].nunique() > 1]
    notes += [f"{c} dropped (the same in everyone)" for c in covariates if c not in kept]
    return " + ".join([f"{outcome.endpoint} ~ arm", *kept]), complete, "; ".join(notes)


def _change_rows(
    data: TrialData, pair: tuple[str, str], change: ChangeOutcome, month: float
) -> list[dict[str, Any]]:
    reference, arm = pair
    frame = change_frame(data, pair, change, month)
    digits = DIGITS[unit_of(change.endpoint)]

    def summary(rows: pd.DataFrame) -> str:
        return f"{mean_sd(rows[change.endpoint], digits=digits)} (n = {len(rows)})"

    formula, complete, note = ancova_formula(frame, change)
    outcome = _Outcome(
        change.endpoint,
        data.session_label(month),
        pair,
        excluded_scans(data, pair, (change.endpoint,), (month,)),
    )
    return [
        _row(
            "welch",
            outcome,
            formula=f"{change.endpoint} ~ arm",
            estimand=f"difference in means, {arm} - {reference}",
            frame=frame,
            summaries=summary,
            estimate=models.welch_t_test(frame, change.endpoint),
        ),
        _row(
            "ancova",
            outcome,
            formula=formula,
            estimand=f"adjusted difference in means, {arm} - {reference}",
            frame=complete,
            summaries=summary,
            estimate=models.ancova(complete, formula),
            note=note,
        ),
    ]


def followup_visits(data: TrialData) -> str:
    """The follow-up sessions a cumulative count sums over, e.g. ``ses-M12 + ses-M24``."""
    return " + ".join(data.session_label(m) for m in data.followup_months) or "none"


def _count_rows(
    data: TrialData, pair: tuple[str, str], count: CumulativeCount
) -> list[dict[str, Any]]:
    reference, arm = pair
    frame = count_frame(data, pair, count)
    frame["count_per_scan"] = frame[count.name] / frame["followup_scans"]

    def summary(rows: pd.DataFrame) -> str:
        values = rows[count.name]
        return f"{mean_sd(values, digits=2)}; {median_iqr(values, digits=1)} (n = {len(rows)})"

    partial = int((frame["followup_scans"] < len(data.followup_months)).sum())
    outcome = _Outcome(
        count.name,
        followup_visits(data),
        pair,
        excluded_scans(data, pair, count.components, data.followup_months),
        f"{partial} participant(s) with fewer usable follow-up scans" if partial else "",
    )
    return [
        _row(
            "nb",
            outcome,
            formula=f"{count.name} ~ arm + offset(log(followup_scans))",
            estimand=f"rate ratio, {arm} / {reference}",
            frame=frame,
            summaries=summary,
            estimate=models.negative_binomial(frame, count.name, exposure="followup_scans"),
        ),
        _row(
            "wilcoxon",
            outcome,
            formula=f"{count.name} / followup_scans ~ arm",
            estimand=f"P({arm} > {reference}) + P(tie)/2",
            frame=frame,
            summaries=summary,
            estimate=models.rank_sum_test(frame, "count_per_scan"),
        ),
    ]


def _proportion(column: str, what: str) -> Callable[[pd.DataFrame], str]:
    return lambda rows: proportion_text(int(rows[column].sum()), len(rows), what)


def _active_rows(data: TrialData, pair: tuple[str, str]) -> list[dict[str, Any]]:
    reference, arm = pair
    scans = active_scan_frame(data, pair)
    participants = (
        scans.groupby("participant_id", observed=True)
        .agg(arm=("arm", "first"), any_active_scan=("active_scan", "max"))
        .reset_index()
    )
    participants["arm"] = pd.Categorical(participants["arm"], categories=list(pair))
    outcome = _Outcome(
        "active_scan",
        followup_visits(data),
        pair,
        excluded_scans(data, pair, ("active_scan",), data.followup_months),
    )
    per_scan = (
        "gee",
        "active_scan ~ arm, groups = participant_id",
        f"odds ratio of an active scan, {arm} / {reference}",
        scans,
        "scans",
        models.gee_logistic(scans, "active_scan", groups="participant_id"),
    )
    per_participant = (
        "fisher",
        "any_active_scan ~ arm",
        f"odds ratio of >= 1 active follow-up scan, {arm} / {reference}",
        participants,
        "participants",
        models.fisher_exact_test(participants, "any_active_scan"),
    )
    return [
        _row(
            test,
            outcome,
            formula=formula,
            estimand=estimand,
            frame=frame,
            summaries=_proportion(formula.split(" ~ ")[0], unit),
            estimate=estimate,
        )
        for test, formula, estimand, frame, unit, estimate in (per_scan, per_participant)
    ]


def pair_comparisons(
    data: TrialData,
    pair: tuple[str, str],
    *,
    outcomes: Collection[str] | None = None,
    change_months: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """Every comparison of ``pair[1]`` with ``pair[0]``, in the order of Table 2.

    ``outcomes`` (names as in the ``outcome`` column) and ``change_months`` (visits of
    the change outcomes) restrict the analysis, e.g. for the validation runs.
    """

    def wanted(name: str) -> bool:
        return outcomes is None or name in outcomes

    months = data.followup_months if change_months is None else tuple(change_months)
    rows: list[dict[str, Any]] = []
    for change in CHANGE_OUTCOMES:
        if wanted(change.endpoint):
            for month in months:
                rows += _change_rows(data, pair, change, month)
    for count in COUNT_OUTCOMES:
        if wanted(count.name):
            rows += _count_rows(data, pair, count)
    if wanted("active_scan"):
        rows += _active_rows(data, pair)
    return rows


def _nothing_to_compare(data: TrialData) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "outcome": outcome,
                "visits": followup_visits(data),
                "reference_arm": data.reference_arm,
                "note": f"not estimable: only one arm ({data.reference_arm}), nothing to compare",
            }
            for outcome in (
                *(c.endpoint for c in CHANGE_OUTCOMES),
                *(c.name for c in COUNT_OUTCOMES),
                "active_scan",
            )
        ],
        columns=list(COMPARISON_COLUMNS),
    )


def between_arm_comparisons(data: TrialData) -> pd.DataFrame:
    """Table 2: every non-reference arm against the reference arm (columns
    :data:`COMPARISON_COLUMNS`)."""
    if len(data.arms) < 2:
        return _nothing_to_compare(data)
    rows: list[dict[str, Any]] = []
    for arm in data.arms[1:]:
        rows += pair_comparisons(data, (data.reference_arm, arm))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
