"""The tests and models of the between-arm comparisons, one function each.

Every function takes a data frame whose ``arm`` column is a two-level
:class:`pandas.Categorical` (the reference arm first) and returns an
:class:`Estimate` of the comparison arm versus the reference: a difference
(comparison - reference) or a ratio (comparison / reference) with its 95 %
confidence interval and two-sided P value.  A model that cannot be fitted gives an
:class:`Estimate` without numbers and a note saying why, never an exception:
statsmodels' warnings are caught and reported in the note.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CONFIDENCE",
    "Estimate",
    "ancova",
    "fisher_exact_test",
    "gee_logistic",
    "interaction_p_value",
    "negative_binomial",
    "rank_sum_test",
    "too_few",
    "welch_t_test",
]

CONFIDENCE = 0.95
_NAN = math.nan


@dataclass(frozen=True)
class Estimate:
    """An effect estimate with its 95 % CI and P value; NaN where not estimable."""

    estimate: float = _NAN
    ci_low: float = _NAN
    ci_high: float = _NAN
    p_value: float = _NAN
    note: str = ""

    @property
    def estimable(self) -> bool:
        """True when the estimate and its P value are numbers."""
        return math.isfinite(self.estimate) and math.isfinite(self.p_value)

    def with_note(self, note: str) -> Estimate:
        """The same estimate with ``note`` appended."""
        return replace(self, note="; ".join(n for n in (self.note, note) if n))


def not_estimable(reason: str) -> Estimate:
    """An estimate without numbers, saying why."""
    return Estimate(note=f"not estimable: {reason}")


def arm_levels(frame: pd.DataFrame) -> tuple[str, str]:
    """(reference, comparison) arm of a two-arm frame."""
    reference, compared = (str(level) for level in frame["arm"].cat.categories)
    return reference, compared


def too_few(frame: pd.DataFrame, minimum: int = 2) -> str | None:
    """Why ``frame`` is too small to compare its two arms (None when it is not)."""
    counts = frame["arm"].value_counts()
    small = [f"{arm} has {int(counts.get(arm, 0))}" for arm in arm_levels(frame)]
    if all(int(counts.get(arm, 0)) >= minimum for arm in arm_levels(frame)):
        return None
    return f"fewer than {minimum} participants in an arm ({', '.join(small)})"


def _guarded(fit: Callable[[], Estimate], *, interval: bool = True) -> Estimate:
    """Run ``fit``; turn failures into a reason and keep the library's warnings as notes.

    With ``interval``, an estimate without a finite confidence interval is refused.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit()
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, OverflowError) as err:
            result = not_estimable(f"the model could not be fitted ({type(err).__name__}: {err})")
    messages = sorted({" ".join(str(w.message).split()) for w in caught})
    if math.isnan(result.p_value) and not result.note:
        result = not_estimable("the fit gave no finite estimate")
    if (
        interval
        and result.estimable
        and not all(math.isfinite(v) for v in (result.ci_low, result.ci_high))
    ):
        result = not_estimable("the fit gave no finite confidence interval")
    if messages:
        result = result.with_note("warnings: " + " | ".join(messages))
    return result


def _coefficient(frame: pd.DataFrame) -> str:
    return f"arm[T.{arm_levels(frame)[1]}]"


def _from_fit(result: Any, term: str, *, exponentiate: bool = False) -> Estimate:
    low, high = (float(v) for v in np.asarray(result.conf_int(alpha=1 - CONFIDENCE).loc[term]))
    estimate = float(result.params[term])
    transform = math.exp if exponentiate else float
    return Estimate(
        transform(estimate), transform(low), transform(high), float(result.pvalues[term])
    )


# --------------------------------------------------------------------------- continuous


def _samples(frame: pd.DataFrame, outcome: str) -> tuple[np.ndarray, np.ndarray]:
    """``outcome`` in the compared arm and in the reference arm."""
    reference, compared = arm_levels(frame)
    return (
        frame.loc[frame["arm"] == compared, outcome].to_numpy(float),
        frame.loc[frame["arm"] == reference, outcome].to_numpy(float),
    )


def welch_t_test(frame: pd.DataFrame, outcome: str) -> Estimate:
    """Difference in means with Welch's unequal-variance t-test and its 95 % CI."""
    from scipy import stats

    reason = too_few(frame)
    if reason:
        return not_estimable(reason)
    a, b = _samples(frame, outcome)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return not_estimable("no variation within either arm")

    def fit() -> Estimate:
        test = stats.ttest_ind(a, b, equal_var=False)
        interval = test.confidence_interval(CONFIDENCE)
        return Estimate(
            float(a.mean() - b.mean()),
            float(interval.low),
            float(interval.high),
            float(test.pvalue),
        )

    return _guarded(fit)


def ancova(frame: pd.DataFrame, formula: str) -> Estimate:
    """The arm coefficient of an ordinary least-squares model ``formula`` (ANCOVA)."""
    import statsmodels.formula.api as smf

    reason = too_few(frame)
    if reason:
        return not_estimable(reason)
    return _guarded(lambda: _from_fit(smf.ols(formula, frame).fit(), _coefficient(frame)))


# --------------------------------------------------------------------------- counts


def _boundary(frame: pd.DataFrame, outcome: str, *, binary: bool = False) -> str | None:
    """Why a log or logit link has no finite arm effect (every value in an arm at a bound)."""
    values = frame[outcome].astype(float)
    if (values == 0).all():
        return f"every {outcome} is 0"
    if binary and (values == 1).all():
        return f"every {outcome} is 1"
    for arm in arm_levels(frame):
        in_arm = values[frame["arm"] == arm]
        if (in_arm == 0).all():
            return f"every {outcome} in {arm} is 0 (ratio at the boundary)"
        if binary and (in_arm == 1).all():
            return f"every {outcome} in {arm} is 1 (ratio at the boundary)"
    return None


_NO_OVER_DISPERSION = 1e-3  # below: variance mu + alpha mu^2 is within 1 % of Poisson for mu <= 10


def _fit_negative_binomial(formula: str, frame: pd.DataFrame, exposure: str) -> Any:
    """Maximum-likelihood NB2 fit: BFGS, then Newton, then Nelder-Mead until one converges.

    Newton's method alone fails (NaN) on some small, barely over-dispersed samples
    that BFGS fits; None when no method converges to finite coefficients and standard
    errors, or when the dispersion's estimate sits at its boundary (no over-dispersion:
    the NB model is then Poisson's with a singular information matrix, and whether an
    optimiser stops at 1e-5 or 1e-8 depends on the machine's floating point).
    """
    import statsmodels.formula.api as smf

    model = smf.negativebinomial(formula, frame, exposure=frame[exposure].to_numpy(float))
    for method in ("bfgs", "newton", "nm"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = model.fit(disp=0, method=method, maxiter=1000)
        converged = result.mle_retvals.get("converged", False)
        if converged and float(result.params["alpha"]) < _NO_OVER_DISPERSION:
            return None
        if converged and np.isfinite(result.params).all() and np.isfinite(result.bse).all():
            for w in caught:  # only the warnings of the fit that is used
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            return result
    return None


def negative_binomial(frame: pd.DataFrame, outcome: str, *, exposure: str) -> Estimate:
    """Rate ratio from a negative binomial (NB2) regression, log link, log(exposure) offset.

    The dispersion is estimated by maximum likelihood with the coefficients; the
    interval and P value are Wald's.  When the counts show no over-dispersion the
    dispersion's estimate sits at 0 and the model cannot be fitted; the rate ratio
    then comes from Poisson regression with robust (sandwich) standard errors, and
    the note says so.
    """
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    reason = too_few(frame) or _boundary(frame, outcome)
    if reason:
        return not_estimable(reason)
    formula = f"{outcome} ~ arm"

    def fit() -> Estimate:
        result = _fit_negative_binomial(formula, frame, exposure)
        if result is not None:
            return _from_fit(result, _coefficient(frame), exponentiate=True)
        poisson = smf.glm(
            formula,
            frame,
            family=sm.families.Poisson(),
            exposure=frame[exposure].to_numpy(float),
        ).fit(cov_type="HC0")
        return _from_fit(poisson, _coefficient(frame), exponentiate=True).with_note(
            "the negative binomial model could not be fitted (no over-dispersion?): "
            "Poisson regression with robust (sandwich) SE instead"
        )

    return _guarded(fit)


def rank_sum_test(frame: pd.DataFrame, outcome: str) -> Estimate:
    """Wilcoxon rank-sum (Mann-Whitney U) test, two-sided.

    The estimate is U / (n_comparison x n_reference): the probability that a
    comparison-arm value exceeds a reference-arm value, ties counted one half (0.5 =
    no difference).  It has no confidence interval here.
    """
    from scipy import stats

    reason = too_few(frame)
    if reason:
        return not_estimable(reason)
    a, b = _samples(frame, outcome)
    if np.ptp(np.concatenate([a, b])) == 0:
        return not_estimable(f"every {outcome} is the same")

    def fit() -> Estimate:
        test = stats.mannwhitneyu(a, b, alternative="two-sided")
        return Estimate(float(test.statistic) / (len(a) * len(b)), p_value=float(test.pvalue))

    return _guarded(fit, interval=False)


# --------------------------------------------------------------------------- binary


def gee_logistic(frame: pd.DataFrame, outcome: str, *, groups: str) -> Estimate:
    """Odds ratio from a logistic GEE, exchangeable working correlation within ``groups``.

    Robust (sandwich) standard errors; each participant contributes all follow-up scans.
    """
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    participants = frame.drop_duplicates(groups)
    reason = too_few(participants) or _boundary(frame, outcome, binary=True)
    if reason:
        return not_estimable(reason)

    def fit() -> Estimate:
        model = smf.gee(
            f"{outcome} ~ arm",
            groups=groups,
            data=frame,
            family=sm.families.Binomial(),
            cov_struct=sm.cov_struct.Exchangeable(),
        )
        return _from_fit(model.fit(), _coefficient(frame), exponentiate=True)

    return _guarded(fit)


def fisher_exact_test(frame: pd.DataFrame, outcome: str) -> Estimate:
    """Fisher's exact test of a 0/1 outcome; conditional maximum-likelihood odds ratio.

    The 95 % CI is the exact conditional one (Cornfield), consistent with the test.
    """
    from scipy import stats
    from scipy.stats.contingency import odds_ratio

    reason = too_few(frame)
    if reason:
        return not_estimable(reason)
    reference, compared = arm_levels(frame)
    table = [
        [
            int((frame.loc[frame["arm"] == arm, outcome] == 1).sum()),
            int((frame.loc[frame["arm"] == arm, outcome] == 0).sum()),
        ]
        for arm in (compared, reference)
    ]
    if table[0][0] + table[1][0] == 0 or table[0][1] + table[1][1] == 0:
        return not_estimable(f"every {outcome} is the same")

    def fit() -> Estimate:
        ratio = odds_ratio(table, kind="conditional")
        interval = ratio.confidence_interval(CONFIDENCE)
        p_value = stats.fisher_exact(table).pvalue
        return Estimate(
            float(ratio.statistic), float(interval.low), float(interval.high), float(p_value)
        )

    # At the boundary (no events in one arm) the odds ratio is 0 or infinite and one
    # end of its interval too; the exact P value still holds.
    return _guarded(fit, interval=False)


# --------------------------------------------------------------------------- interactions


def interaction_p_value(
    frame: pd.DataFrame,
    formula: str,
    *,
    model: str,
    exposure: str | None = None,
) -> Estimate:
    """Wald test that every ``arm:subgroup`` coefficient of ``formula`` is zero.

    ``model`` is ``ols`` or ``negativebinomial``; the P value is the estimate's
    ``p_value`` (no effect size).
    """
    import statsmodels.formula.api as smf

    def fit() -> Estimate:
        if model == "ols":
            result = smf.ols(formula, frame).fit()
        else:
            assert exposure is not None
            result = _fit_negative_binomial(formula, frame, exposure)
            if result is None:
                return not_estimable("the maximum-likelihood fit did not converge")
        names: Sequence[str] = list(result.params.index)
        terms = [i for i, name in enumerate(names) if ":" in name]
        if not terms:
            return not_estimable("no interaction term could be formed")
        restriction = np.zeros((len(terms), len(names)))
        for row, column in enumerate(terms):
            restriction[row, column] = 1.0
        test = result.wald_test(restriction, scalar=True)
        return Estimate(p_value=float(test.pvalue))

    return _guarded(fit, interval=False)
