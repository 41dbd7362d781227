"""The one row of a between-arm comparisons table for an outcome, a test and a visit.

Used by ``unit/test_stats.py`` and ``e2e/test_stats_command.py``.
"""

from __future__ import annotations

import pandas as pd

from mriproc.stats.comparisons import TESTS


def comparison(table: pd.DataFrame, outcome: str, test: str, visits: str | None = None) -> dict:
    rows = table[(table["outcome"] == outcome) & (table["test"] == TESTS[test].name)]
    if visits is not None:
        rows = rows[rows["visits"] == visits]
    assert len(rows) == 1, rows
    return rows.iloc[0].to_dict()
