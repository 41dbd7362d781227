"""Plausibility flags: values beyond the protocol's bounds are kept, flagged and shown.

Before: a PBVC of -4.94 % (true -0.46 %) had status ``ok``, was not flagged in the
tables or the report, and the demo printed it beside the truth without comment.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from mriproc.cli import _demo_comparison
from mriproc.config import load_protocol
from mriproc.plausibility import flag_implausible
from mriproc.report.flags import flagged_scans
from mriproc.report.inputs import read_trial_tables
from mriproc.stats.data import prepare_trial
from mriproc.tables import EndpointRow, read_table, write_endpoints

PARAMS = load_protocol("esims").plausibility  # allowance 1 %, loss 2 %/year; 3 mL and x2


def _row(session: str, month: float, endpoint: str, value: float | None) -> EndpointRow:
    status = "ok" if value is not None else "needs T1w (missing)"
    return EndpointRow("sub-01", session, month, "placebo", endpoint, value, status)


@pytest.mark.parametrize(
    ("month", "value", "flagged"),
    [
        (12, -2.9, False),  # loss within 1 + 2 x 1 year
        (12, -3.1, True),
        (24, -4.9, False),  # within 1 + 2 x 2 years
        (6, -2.1, True),  # beyond 1 + 2 x 0.5 year
        (12, 0.9, False),  # gain within the allowance
        (12, 1.2, True),  # adult brains do not grow
    ],
)
def test_brain_change_bounds_grow_with_the_interval(
    month: float, value: float, flagged: bool
) -> None:
    for endpoint in ("pbvc", "pcf_change_pct"):
        (row,) = flag_implausible([_row(f"ses-M{month:02g}", month, endpoint, value)], PARAMS)
        assert row.value == value  # kept
        assert row.status.startswith("flagged: ") == flagged, (endpoint, month, value)


def test_bounds_come_from_the_protocol() -> None:
    row = _row("ses-M12", 12, "pbvc", -3.1)
    wider = dataclasses.replace(PARAMS, brain_loss_per_year_pct=3.0)
    assert flag_implausible([row], wider)[0].status == "ok"


def test_lesion_volume_jumps_between_consecutive_visits() -> None:
    rows = [
        _row("ses-M00", 0, "t2_lesion_volume", 2.0),
        _row("ses-M12", 12, "t2_lesion_volume", 4.5),  # x2.25 but +2.5 mL: plausible
        _row("ses-M24", 24, "t2_lesion_volume", 1.0),  # /4.5 and -3.5 mL: flagged
        _row("ses-M36", 36, "t2_lesion_volume", None),  # n/a rows are left alone
    ]
    flagged = flag_implausible(rows, PARAMS)
    assert [r.status for r in flagged[:2]] == ["ok", "ok"]
    assert flagged[2].status == (
        "flagged: T2 lesion volume 4.5 -> 1 mL since ses-M12 (bounds 3 mL and x2)"
    )
    assert flagged[3] == rows[3]


def test_flags_reach_the_tables_the_report_the_statistics_and_the_demo(tmp_path: Path) -> None:
    root = tmp_path / "mriproc"
    rows = [
        _row("ses-M00", 0, "pcf", 0.85),
        _row("ses-M12", 12, "pcf", 0.84),
        _row("ses-M12", 12, "pbvc", -4.94),
    ]
    write_endpoints(flag_implausible(rows, PARAMS), root, protocol_name="esims")
    long = read_table(root / "endpoints.tsv")
    status = dict(zip(long.session + " " + long.endpoint, long.status, strict=True))
    assert status["ses-M12 pbvc"].startswith("flagged: brain loss 4.9 %")
    assert long.loc[long.endpoint == "pbvc", "value"].item() == pytest.approx(-4.94)
    wide = read_table(root / "endpoints_wide.tsv").set_index("session")
    assert wide.loc["ses-M12", "flagged"] == "pbvc" and wide.loc["ses-M12", "pbvc"] == -4.94

    (flag,) = flagged_scans(read_trial_tables(tmp_path))
    assert (flag.participant_id, flag.session) == ("sub-01", "ses-M12")
    assert flag.reasons[0].startswith("implausible: pbvc = -4.94 (brain loss 4.9 %")

    arms = pd.DataFrame({"participant_id": ["sub-01"], "arm": ["placebo"]})
    data = prepare_trial(long, arms)
    assert "pbvc" not in set(data.values.endpoint)  # left out, and listed as such
    excluded = data.excluded.set_index("endpoint")
    assert str(excluded.loc["pbvc", "status"]).startswith("flagged: ")

    truth = tmp_path / "bids" / "derivatives" / "groundtruth"
    write_endpoints(
        [*rows[:2], dataclasses.replace(rows[2], value=-0.46)], truth, protocol_name="x"
    )
    shown = _demo_comparison(root / "endpoints.tsv", tmp_path / "bids")
    assert "Flagged for review (1 value(s) outside the protocol's plausibility bounds" in shown
    assert "sub-01 ses-M12 pbvc = -4.94: brain loss 4.9 %" in shown


@pytest.mark.parametrize(
    ("change", "row", "flagged_with_change"),
    [
        ({"brain_change_allowance_pct": 0.5}, ("pbvc", 0.7), True),  # a gain beyond 0.5 %
        ({"brain_loss_per_year_pct": 1.0}, ("pbvc", -2.5), True),  # 1 + 1 x 1 year
        ({"t2_lesion_volume_jump_ml": 1.0}, ("t2_lesion_volume", 4.5), True),  # +2.5 mL
        ({"t2_lesion_volume_jump_ratio": 4.0}, ("t2_lesion_volume", 6.5), False),  # x3.25
    ],
)
def test_every_plausibility_parameter_moves_a_flag(
    change: dict[str, float], row: tuple[str, float], flagged_with_change: bool
) -> None:
    """Each bound of the protocol's ``plausibility`` section changes a flag when it changes."""
    endpoint, value = row
    rows = [_row("ses-M00", 0, "t2_lesion_volume", 2.0), _row("ses-M12", 12, endpoint, value)]
    default = flag_implausible(rows, PARAMS)[1].status.startswith("flagged: ")
    changed = flag_implausible(rows, dataclasses.replace(PARAMS, **change))[1]
    assert changed.status.startswith("flagged: ") == flagged_with_change
    assert default != flagged_with_change, (change, default)
