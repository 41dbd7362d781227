"""The whole trial analysis as data frames: what ``mriproc stats`` writes."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mriproc.stats.comparisons import between_arm_comparisons
from mriproc.stats.data import TrialData
from mriproc.stats.descriptives import baseline_table, change_table, exclusion_table
from mriproc.stats.subgroups import subgroup_analyses

__all__ = ["TrialAnalysis", "analyse_trial"]


@dataclass(frozen=True)
class TrialAnalysis:
    """Every table of the analysis (see the column dictionaries of each module)."""

    data: TrialData
    baseline: pd.DataFrame
    change: pd.DataFrame
    comparisons: pd.DataFrame
    subgroups: pd.DataFrame
    exclusions: pd.DataFrame


def analyse_trial(data: TrialData) -> TrialAnalysis:
    """Baseline table, change from baseline, between-arm comparisons, subgroups, exclusions."""
    return TrialAnalysis(
        data=data,
        baseline=baseline_table(data),
        change=change_table(data),
        comparisons=between_arm_comparisons(data),
        subgroups=subgroup_analyses(data),
        exclusions=exclusion_table(data),
    )
