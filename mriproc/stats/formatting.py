"""Fixed text for numbers, so the same analysis always gives the same bytes.

>>> mean_sd([1.0, 2.0, 3.0], digits=2)
'2.00 ± 1.00'
>>> median_iqr([1.0, 2.0, 3.0, 10.0], digits=1)
'2.5 [1.8, 4.8]'
>>> p_text(0.0004), p_text(0.0123), p_text(float("nan"))
('< 0.001', '0.012', 'n/a')
>>> number(0.123456789), number(float("nan")), number(-0.0)
('0.123457', 'n/a', '0')
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = [
    "DIGITS",
    "estimate_text",
    "mean_sd",
    "median_iqr",
    "number",
    "p_text",
    "proportion_text",
]

NA = "n/a"
# Decimals shown in the summaries, by endpoint unit.
DIGITS = {"fraction": 4, "%": 2, "mL": 2, "n": 1, "0/1": 2}


def number(value: float | None) -> str:
    """A number in a TSV cell: 6 significant digits, ``n/a`` when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def _fixed(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _array(values: Iterable[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def mean_sd(values: Iterable[float], *, digits: int) -> str:
    """``mean ± SD`` (sample SD); ``n/a`` without values."""
    x = _array(values)
    if x.size == 0:
        return NA
    sd = _fixed(float(x.std(ddof=1)), digits) if x.size > 1 else NA
    return f"{_fixed(float(x.mean()), digits)} ± {sd}"


def median_iqr(values: Iterable[float], *, digits: int) -> str:
    """``median [Q1, Q3]`` (linear quantiles); ``n/a`` without values."""
    x = _array(values)
    if x.size == 0:
        return NA
    q1, median, q3 = (float(q) for q in np.quantile(x, [0.25, 0.5, 0.75]))
    return f"{_fixed(median, digits)} [{_fixed(q1, digits)}, {_fixed(q3, digits)}]"


def proportion_text(count: int, total: int, what: str) -> str:
    """``k/n what (p %)``."""
    if total == 0:
        return f"0/0 {what}"
    return f"{count}/{total} {what} ({100.0 * count / total:.1f} %)"


def p_text(p_value: float) -> str:
    """A P value as a paper shows it."""
    if math.isnan(p_value):
        return NA
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def estimate_text(estimate: float, low: float, high: float, *, digits: int = 2) -> str:
    """``estimate (low to high)``; the estimate alone without an interval."""
    if math.isnan(estimate):
        return NA
    if math.isnan(low) or math.isnan(high):
        return _fixed(estimate, digits)

    def show(value: float) -> str:
        return "∞" if math.isinf(value) else _fixed(value, digits)

    return f"{show(estimate)} ({show(low)} to {show(high)})"
