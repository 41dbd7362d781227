"""The endpoint registry: one definition, every list derived from it, nothing dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mriproc.cohort import _record_rows
from mriproc.endpoints import ENDPOINTS, LESION_ENDPOINTS, LONGITUDINAL_ENDPOINTS, VISIT_ENDPOINTS
from mriproc.io.bids import SessionInputs
from mriproc.tables import TableError

SESSION = SessionInputs("01", "M12", 12.0, "sessions.tsv", {"T2w": Path("t2.nii.gz")}, {})


def test_every_endpoint_is_in_exactly_one_stage() -> None:
    names = [e.name for e in ENDPOINTS]
    assert len(set(names)) == len(names)
    assert sorted(VISIT_ENDPOINTS + LONGITUDINAL_ENDPOINTS) == sorted(names)
    assert not set(VISIT_ENDPOINTS) & set(LONGITUDINAL_ENDPOINTS)
    assert set(LESION_ENDPOINTS) <= set(VISIT_ENDPOINTS)


def test_a_measure_no_stage_reports_is_an_error_not_a_dropped_value() -> None:
    # Before: a measure missing from a stage's tuple never reached endpoints.tsv.
    record = {"measures": {"pcf": 0.8, "periventricular_count": 3.0}}
    with pytest.raises(TableError, match="periventricular_count"):
        _record_rows(SESSION, "placebo", record, VISIT_ENDPOINTS, reason="not measured")
    rows = _record_rows(SESSION, "placebo", {"measures": {"pcf": 0.8}}, VISIT_ENDPOINTS, reason="x")
    assert [r.endpoint for r in rows] == list(VISIT_ENDPOINTS)
    assert {r.endpoint: r.value for r in rows}["pcf"] == 0.8
