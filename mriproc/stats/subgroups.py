"""Subgroup analyses: the main comparison of each outcome within subgroups.

Subgroups come from ``participants.tsv`` when its columns exist: ``sex``, baseline
``edss`` (< 6 versus >= 6) and ``relapses_2y``, relapses in the two years before
entry (0 versus >= 1).  Within each level the outcomes are compared as in Table 2
(change outcomes at the last visit with Welch's t-test, cumulative counts with
negative binomial regression); the interaction P value tests whether the arm effect
differs between levels (Wald test of the ``arm:<subgroup>`` terms of one model over
all levels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mriproc.stats import models
from mriproc.stats.comparisons import COMPARISON_COLUMNS, TESTS, pair_comparisons
from mriproc.stats.data import TrialData
from mriproc.stats.outcomes import CHANGE_OUTCOMES, COUNT_OUTCOMES, change_frame, count_frame

__all__ = ["SUBGROUPS", "SUBGROUP_COLUMNS", "Subgroup", "subgroup_analyses"]


@dataclass(frozen=True)
class Subgroup:
    """A subgroup variable: its participants.tsv column, model name and levels."""

    column: str
    variable: str
    description: str
    levels: Callable[[pd.Series], pd.Series]


def _sex(values: pd.Series) -> pd.Series:
    return values.astype("string").astype(object).where(values.notna())


def _threshold(cut: float, below: str, above: str) -> Callable[[pd.Series], pd.Series]:
    def levels(values: pd.Series) -> pd.Series:
        numbers = pd.to_numeric(values, errors="coerce")
        return pd.Series(
            np.where(numbers < cut, below, above), index=values.index, dtype=object
        ).where(numbers.notna())

    return levels


SUBGROUPS = (
    Subgroup("sex", "sex", "Sex", _sex),
    Subgroup("edss", "edss_group", "Baseline EDSS", _threshold(6.0, "< 6", ">= 6")),
    Subgroup(
        "relapses_2y",
        "relapse_group",
        "Relapses in the 2 years before entry",
        _threshold(1.0, "0", ">= 1"),
    ),
)
# The comparison shown within subgroups, per outcome.
_MAIN_TESTS = {TESTS["welch"].name, TESTS["nb"].name}
_OUTCOMES = (*(c.endpoint for c in CHANGE_OUTCOMES), *(c.name for c in COUNT_OUTCOMES))

SUBGROUP_COLUMNS: dict[str, str] = {
    "subgroup": "Subgroup variable.",
    "variable": "Name of the subgroup variable in the interaction model.",
    "level": "Subgroup level.",
    **COMPARISON_COLUMNS,
    "interaction_formula": "Model over all levels whose arm:subgroup terms are tested.",
    "interaction_p": "Wald P value that the arm effect is the same in every level.",
}


def _interaction(
    data: TrialData, pair: tuple[str, str], subgroup: Subgroup, levels: pd.Series, outcome: str
) -> tuple[str, models.Estimate]:
    """Formula and P value of the arm x subgroup interaction for ``outcome``."""
    formula = f"{outcome} ~ arm * {subgroup.variable}"
    change = next((c for c in CHANGE_OUTCOMES if c.endpoint == outcome), None)
    if change is not None:
        frame = change_frame(data, pair, change, data.followup_months[-1])
        shown = formula
    else:
        count = next(c for c in COUNT_OUTCOMES if c.name == outcome)
        frame = count_frame(data, pair, count)
        shown = f"{formula} + offset(log(followup_scans))"
    frame[subgroup.variable] = frame["participant_id"].map(levels)
    frame = frame.dropna(subset=[subgroup.variable])
    cells = frame.groupby([subgroup.variable, "arm"], observed=False).size()
    if frame[subgroup.variable].nunique() < 2 or (cells < 2).any():
        return shown, models.not_estimable(
            "needs at least 2 participants of each arm in at least 2 levels"
        )
    if change is not None:
        return shown, models.interaction_p_value(frame, formula, model="ols")
    totals = frame.groupby([subgroup.variable, "arm"], observed=False)[outcome].sum()
    if (totals == 0).any():
        (level, arm) = totals.index[totals.to_numpy() == 0][0]
        return shown, models.not_estimable(
            f"every {outcome} of {arm} with {subgroup.variable} {level} is 0"
        )
    return shown, models.interaction_p_value(
        frame, formula, model="negativebinomial", exposure="followup_scans"
    )


def subgroup_analyses(data: TrialData) -> pd.DataFrame:
    """Table of subgroup estimates and interaction P values (columns :data:`SUBGROUP_COLUMNS`).

    Empty when there is only one arm, no follow-up visit or no subgroup column.
    """
    rows: list[dict[str, Any]] = []
    present = [s for s in SUBGROUPS if s.column in data.participants.columns]
    if len(data.arms) < 2 or not data.followup_months:
        present = []
    ids = data.participants["participant_id"]
    for arm in data.arms[1:]:
        pair = (data.reference_arm, arm)
        for subgroup in present:
            levels = pd.Series(
                subgroup.levels(data.participants[subgroup.column]).to_numpy(),
                index=ids.to_numpy(),
            )
            interactions = {
                outcome: _interaction(data, pair, subgroup, levels, outcome)
                for outcome in _OUTCOMES
            }
            missing = int(levels.isna().sum())
            for level in sorted(set(levels.dropna())):
                within = data.restricted(set(levels.index[levels == level]))
                for row in pair_comparisons(
                    within, pair, outcomes=_OUTCOMES, change_months=data.followup_months[-1:]
                ):
                    if row["test"] not in _MAIN_TESTS:
                        continue
                    formula, interaction = interactions[row["outcome"]]
                    note = f"{missing} participant(s) without {subgroup.column} left out"
                    rows.append(
                        {
                            "subgroup": subgroup.description,
                            "variable": subgroup.variable,
                            "level": level,
                            **row,
                            "note": "; ".join(
                                n
                                for n in (
                                    row["note"],
                                    note if missing else "",
                                    f"interaction {interaction.note}" if interaction.note else "",
                                )
                                if n
                            ),
                            "interaction_formula": formula,
                            "interaction_p": interaction.p_value,
                        }
                    )
    return pd.DataFrame(rows, columns=list(SUBGROUP_COLUMNS))
