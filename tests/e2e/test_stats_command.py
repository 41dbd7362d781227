"""``mriproc stats`` end to end on a simulated trial's tables: the known effect found,
every output written, the same bytes again."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from comparison_rows import comparison

from mriproc.cli import EXIT_OK, main
from mriproc.stats.comparisons import TESTS
from mriproc.stats.simulation import write_simulated_tables


def test_mriproc_stats_reports_the_known_pcf_effect_within_its_ci(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trial"
    write_simulated_tables(out, 150, pcf_effect=0.26, rate_ratio=0.6, seed=2005)
    assert main(["stats", str(out)]) == EXIT_OK
    stats = out / "mriproc" / "stats"
    assert f"Summary: {stats / 'summary.html'}" in capsys.readouterr().out
    names = {
        "analysis.json",
        "summary.md",
        "summary.html",
        *(
            f"{t}.{x}"
            for t in ("baseline", "comparisons", "change_from_baseline", "subgroups", "exclusions")
            for x in ("tsv", "json")
        ),
    }
    assert {p.name for p in stats.iterdir()} == names

    comparisons = pd.read_csv(stats / "comparisons.tsv", sep="\t", na_values=["n/a"])
    for test in ("welch", "ancova"):
        row = comparison(comparisons, "pcf_change_pct", test, "ses-M24")
        assert row["ci_low"] < 0.26 < row["ci_high"]
        assert row["ci_high"] - row["ci_low"] < 0.6  # an informative interval
    nb = comparison(comparisons, "cumulative_cel_count", "nb")
    assert nb["ci_low"] < 0.6 < nb["ci_high"] < 1.0
    assert comparisons["estimand"].str.contains("ivig - placebo|ivig / placebo|P\\(ivig").all()

    html = (stats / "summary.html").read_text()
    for test in TESTS.values():
        assert test.name.replace("'", "&#x27;") in html
    assert "<code>pcf_change_pct ~ arm + baseline_pcf + baseline_cel_count</code>" in html
    assert "Reference arm: <b>placebo</b>" in html
    record = json.loads((stats / "analysis.json").read_text())
    assert record["FollowUpVisits"] == ["ses-M12", "ses-M24"]

    before = {p.name: p.read_bytes() for p in stats.iterdir()}
    assert main(["stats", str(out)]) == EXIT_OK
    assert {p.name: p.read_bytes() for p in stats.iterdir()} == before
