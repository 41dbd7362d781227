"""Operating characteristics of the between-arm comparisons, on simulated endpoint tables.

Each repetition draws a trial with :func:`simulate_endpoint_table` (a known PCF-change
difference and rate ratio), runs the very comparisons ``mriproc stats`` runs
(:func:`mriproc.stats.comparisons.pair_comparisons`) and keeps each test's estimate,
95 % CI and P value.  :func:`operating_characteristics` then gives, per test, the
bias of the estimate, how often the CI covers the truth and how often P < 0.05 (the
false-positive rate when the true effect is null, the power otherwise), each rate
with its exact (Clopper-Pearson) 95 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
import pandas as pd

from mriproc.stats.comparisons import TESTS, pair_comparisons
from mriproc.stats.data import prepare_trial
from mriproc.stats.simulation import simulate_endpoint_table

__all__ = ["ALPHA", "operating_characteristics", "repeat_comparisons"]

ALPHA = 0.05
_RATIO_TESTS = {TESTS["nb"].name, TESTS["gee"].name, TESTS["fisher"].name}
_CHANGE_OUTCOMES = {"pcf_change_pct", "pbvc"}
_COUNT_OUTCOMES = {"cumulative_cel_count", "cumulative_new_enlarging_t2_count"}


def repeat_comparisons(
    repetitions: int,
    n_per_arm: int,
    *,
    pcf_effect: float,
    rate_ratio: float,
    seed: int,
    outcomes: Collection[str] | None = None,
) -> pd.DataFrame:
    """Estimates of every test over ``repetitions`` simulated trials.

    Change outcomes are analysed at the last visit.  Repetition ``r`` uses the random
    stream ``(seed, r)``.  Columns: ``repetition, outcome, test, estimate, ci_low,
    ci_high, p_value``.
    """
    rows = []
    for repetition in range(repetitions):
        endpoints, participants = simulate_endpoint_table(
            n_per_arm,
            pcf_effect=pcf_effect,
            rate_ratio=rate_ratio,
            seed=int(np.random.SeedSequence([seed, repetition]).generate_state(1)[0]),
        )
        data = prepare_trial(endpoints, participants)
        for row in pair_comparisons(
            data,
            data.arms[:2],  # type: ignore[arg-type]
            outcomes=outcomes,
            change_months=data.followup_months[-1:],
        ):
            rows.append(
                {
                    "repetition": repetition,
                    **{
                        k: row[k]
                        for k in ("outcome", "test", "estimate", "ci_low", "ci_high", "p_value")
                    },
                }
            )
    return pd.DataFrame(rows)


def _truth(outcome: str, test: str, pcf_effect: float, rate_ratio: float) -> float:
    """The true value of a test's estimand, NaN where the simulation does not fix it."""
    if outcome in _CHANGE_OUTCOMES:
        return pcf_effect
    null = rate_ratio == 1.0
    if outcome in _COUNT_OUTCOMES and test == TESTS["nb"].name:
        return rate_ratio
    if null and test == TESTS["wilcoxon"].name:
        return 0.5
    if null and test in _RATIO_TESTS:
        return 1.0
    return math.nan


def _exact_interval(successes: int, trials: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, trials, alpha=0.05, method="beta")
    return float(low), float(high)


def operating_characteristics(
    draws: pd.DataFrame, *, pcf_effect: float, rate_ratio: float
) -> pd.DataFrame:
    """Per outcome and test: truth, bias, CI coverage and rejection rate (P < 0.05).

    Ratios (rate and odds ratios) are judged on the log scale: ``bias`` is the mean
    log estimate minus the log truth.  ``coverage`` and ``rejection_rate`` come with
    exact 95 % intervals (``*_low``, ``*_high``); ``estimable`` counts the repetitions
    that gave an estimate.
    """
    rows = []
    for (outcome, test), group in draws.groupby(["outcome", "test"], sort=False):
        truth = _truth(str(outcome), str(test), pcf_effect, rate_ratio)
        fitted = group[np.isfinite(group["p_value"].astype(float))]
        n = len(fitted)
        ratio = test in _RATIO_TESTS
        values = fitted["estimate"].to_numpy(float)
        if ratio:  # judged on the log scale; a ratio of 0 has no log
            values = np.log(np.where(values > 0, values, np.nan))
        estimate = pd.Series(values)
        row: dict[str, object] = {
            "outcome": outcome,
            "test": test,
            "scale": "log ratio" if ratio else "difference",
            "truth": truth,
            "repetitions": len(group),
            "estimable": n,
            "mean_estimate": float(np.exp(estimate.mean())) if ratio else float(estimate.mean()),
            "bias": float(estimate.mean() - (math.log(truth) if ratio else truth)),
            "bias_se": float(estimate.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        }
        covered = (fitted["ci_low"] <= truth) & (truth <= fitted["ci_high"])
        has_interval = fitted["ci_low"].notna().all() and math.isfinite(truth)
        hits = int(covered.sum())
        row["coverage"] = hits / n if has_interval and n else math.nan
        row["coverage_low"], row["coverage_high"] = (
            _exact_interval(hits, n) if has_interval and n else (math.nan, math.nan)
        )
        rejected = int((fitted["p_value"] < ALPHA).sum())
        row["rejection_rate"] = rejected / n if n else math.nan
        row["rejection_low"], row["rejection_high"] = (
            _exact_interval(rejected, n) if n else (math.nan, math.nan)
        )
        rows.append(row)
    return pd.DataFrame(rows)
