"""``mriproc stats``: the statistics on endpoint tables, their validation and the
command's input errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from comparison_rows import comparison
from scipy import stats

from mriproc.cli import EXIT_USAGE, main
from mriproc.stats import (
    StatsInputError,
    analyse_trial,
    models,
    prepare_trial,
    simulate_endpoint_table,
)
from mriproc.stats.comparisons import TESTS, between_arm_comparisons
from mriproc.stats.data import find_participants, read_participants
from mriproc.stats.descriptives import exclusion_table
from mriproc.stats.simulation import write_simulated_tables
from mriproc.stats.validation import operating_characteristics, repeat_comparisons
from mriproc.tables import read_table

PAIR = ["placebo", "ivig"]


def _frame(**columns: list[float] | list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    frame["arm"] = pd.Categorical(frame["arm"], categories=PAIR)
    frame["participant_id"] = [f"sub-{i:02d}" for i in range(len(frame))]
    return frame


@pytest.fixture(scope="module")
def trial() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated two-arm trial (30 per arm), read-only."""
    return simulate_endpoint_table(30, pcf_effect=0.3, rate_ratio=0.6, seed=4)


# --------------------------------------------------------------------------- models


def test_welch_t_test_is_the_difference_compared_minus_reference() -> None:
    frame = _frame(arm=["placebo"] * 4 + ["ivig"] * 4, y=[1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 7.0])
    result = models.welch_t_test(frame, "y")
    assert result.estimate == pytest.approx(4.75 - 2.5)
    assert result.ci_low < result.estimate < result.ci_high
    # Welch's t and Satterthwaite's degrees of freedom, by hand (Student's t differs)
    va, vb = np.var([3.0, 4.0, 5.0, 7.0], ddof=1) / 4, np.var([1.0, 2.0, 3.0, 4.0], ddof=1) / 4
    t = 2.25 / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 3)
    assert result.p_value == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9)
    half_width = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert (result.ci_low, result.ci_high) == pytest.approx((2.25 - half_width, 2.25 + half_width))


def test_ancova_recovers_the_arm_effect_adjusted_for_a_covariate() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    arm = np.repeat(PAIR, 100)
    y = 2.0 * x + np.where(arm == "ivig", 0.5, 0.0) + rng.normal(scale=0.01, size=200)
    frame = _frame(arm=list(arm), y=list(y), x=list(x))
    result = models.ancova(frame, "y ~ arm + x")
    assert result.estimate == pytest.approx(0.5, abs=0.01)
    assert result.ci_low < 0.5 < result.ci_high
    assert result.p_value < 1e-6


def test_negative_binomial_rate_ratio_is_the_ratio_of_means() -> None:
    # With arm as the only covariate the maximum-likelihood rate ratio is exactly the
    # ratio of the arms' mean counts (per unit exposure).
    counts = [0, 1, 5, 2, 0, 8, 3, 1, 0, 0, 2, 1, 0, 4, 1, 0]
    frame = _frame(arm=["placebo"] * 8 + ["ivig"] * 8, y=counts, scans=[2.0] * 16)
    result = models.negative_binomial(frame, "y", exposure="scans")
    assert result.estimate == pytest.approx(np.mean(counts[8:]) / np.mean(counts[:8]), rel=1e-4)
    assert result.ci_low < result.estimate < result.ci_high
    assert 0 < result.p_value < 1


def test_negative_binomial_without_over_dispersion_falls_back_to_poisson() -> None:
    # Under-dispersed counts: the NB dispersion's estimate is 0, so its Hessian is
    # singular; Poisson regression (robust SE) gives the same ratio of means.
    counts = [1, 1, 1, 2, 1, 1, 2, 1, 2, 2, 1, 2, 2, 2, 1, 2]
    frame = _frame(arm=["placebo"] * 8 + ["ivig"] * 8, y=counts, scans=[1.0] * 16)
    result = models.negative_binomial(frame, "y", exposure="scans")
    assert "Poisson regression with robust (sandwich) SE instead" in result.note
    assert result.estimate == pytest.approx(14 / 10, rel=1e-6)
    assert result.ci_low < result.estimate < result.ci_high


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ([0] * 8, "every y is 0"),
        ([0, 2, 1, 3, 0, 0, 0, 0], "every y in ivig is 0"),
    ],
    ids=["all-zero", "one-arm-zero"],
)
def test_negative_binomial_states_why_it_cannot_be_fitted(counts: list[int], reason: str) -> None:
    frame = _frame(arm=["placebo"] * 4 + ["ivig"] * 4, y=counts, scans=[1.0] * 8)
    result = models.negative_binomial(frame, "y", exposure="scans")
    assert math.isnan(result.estimate) and math.isnan(result.p_value)
    assert result.note.startswith("not estimable: ")
    assert reason in result.note


def test_too_few_participants_is_a_stated_reason() -> None:
    frame = _frame(arm=["placebo", "placebo", "ivig"], y=[1.0, 2.0, 3.0])
    for result in (models.welch_t_test(frame, "y"), models.rank_sum_test(frame, "y")):
        assert "fewer than 2 participants in an arm (placebo has 2, ivig has 1)" in result.note


def test_fisher_exact_at_the_boundary_keeps_its_p_value() -> None:
    frame = _frame(arm=["placebo"] * 6 + ["ivig"] * 6, y=[1, 1, 1, 1, 1, 0] + [0] * 6)
    result = models.fisher_exact_test(frame, "y")
    assert result.estimate == 0.0
    assert result.p_value == pytest.approx(0.01515, abs=1e-4)  # 2-sided Fisher, 5/6 vs 0/6


# --------------------------------------------------------------------------- data


def test_reference_arm_is_placebo_else_the_first_in_sorted_order(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    endpoints, participants = trial
    assert prepare_trial(endpoints, participants).arms == ("placebo", "ivig")
    renamed = participants.assign(arm=participants["arm"].replace({"placebo": "zzz"}))
    data = prepare_trial(endpoints.assign(arm=pd.NA), renamed)
    assert data.arms == ("ivig", "zzz")
    assert prepare_trial(endpoints, participants, reference_arm="ivig").arms == ("ivig", "placebo")
    with pytest.raises(StatsInputError, match="reference arm 'x' is not an arm"):
        prepare_trial(endpoints, participants, reference_arm="x")


def test_arm_conflict_between_the_tables_is_an_error(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    endpoints, participants = trial
    swapped = participants.assign(
        arm=participants["arm"].map({"placebo": "ivig", "ivig": "placebo"})
    )
    with pytest.raises(StatsInputError, match=r"the arm differs .* sub-10001 \(placebo in"):
        prepare_trial(endpoints, swapped)


def test_na_values_are_excluded_and_counted_never_zero(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    endpoints, participants = trial
    broken = endpoints.copy()
    hit = (
        (broken["participant_id"] == "sub-10001")
        & (broken["session"] == "ses-M24")
        & (broken["endpoint"] == "pcf_change_pct")
    )
    broken.loc[hit, ["value", "status"]] = [np.nan, "registration failed: T1w.nii.gz"]
    data = prepare_trial(broken, participants)
    comparisons = between_arm_comparisons(data)
    row = comparison(comparisons, "pcf_change_pct", "welch", "ses-M24")
    assert (row["n_reference"], row["n_arm"], row["excluded_scans"]) == (29, 30, 1)
    values = broken[broken["endpoint"].eq("pcf_change_pct") & broken["session"].eq("ses-M24")]
    means = values.dropna(subset=["value"]).groupby("arm")["value"].mean()
    assert row["estimate"] == pytest.approx(means["ivig"] - means["placebo"])
    exclusions = exclusion_table(data)
    assert exclusions.to_dict(orient="records") == [
        {
            "endpoint": "pcf_change_pct",
            "session": "ses-M24",
            "visit_month": 24.0,
            "arm": "placebo",
            "reason": "registration failed: T1w.nii.gz",
            "scans": 1,
        }
    ]


def test_participants_missing_from_participants_tsv_are_excluded_with_the_reason(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    endpoints, participants = trial
    data = prepare_trial(endpoints, participants.iloc[1:])
    assert "sub-10001" not in set(data.values["participant_id"])
    reasons = set(data.excluded.loc[data.excluded["participant_id"] == "sub-10001", "status"])
    assert reasons == {"arm unknown (participant not in participants.tsv or its arm is n/a)"}


def test_cumulative_counts_use_the_scans_each_participant_has(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    endpoints, participants = trial
    missing = endpoints[
        ~(
            (endpoints["participant_id"] == "sub-20001")
            & (endpoints["session"] == "ses-M24")
            & (endpoints["endpoint"] == "cel_count")
        )
    ]
    row = comparison(
        between_arm_comparisons(prepare_trial(missing, participants)), "cumulative_cel_count", "nb"
    )
    assert row["n_arm"] == 30  # still in, with one follow-up scan of exposure
    assert "1 participant(s) with fewer usable follow-up scans" in row["note"]


def test_unmeasured_longitudinal_endpoints_say_why_nothing_is_estimated(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # What mriproc run writes today: the longitudinal endpoints are n/a with a status.
    endpoints, participants = trial
    pending = endpoints.copy()
    longitudinal = pending["endpoint"].isin(["pcf_change_pct", "pbvc", "active_scan"])
    pending.loc[longitudinal, ["value", "status"]] = [np.nan, "longitudinal stage not built"]
    table = between_arm_comparisons(prepare_trial(pending, participants))
    row = comparison(table, "pbvc", "ancova", "ses-M12")
    assert math.isnan(row["estimate"])
    assert row["note"] == "not estimable: no usable value (60 scan(s) n/a, see exclusions.tsv)"
    assert comparison(table, "cumulative_cel_count", "nb")["p_value"] < 1
    absent = between_arm_comparisons(prepare_trial(pending[~longitudinal], participants))
    row = comparison(absent, "active_scan", "gee")
    assert row["note"] == "not estimable: no value in the endpoint table"


def test_one_arm_gives_reasons_not_a_crash(trial: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    endpoints, participants = trial
    placebo = participants[participants["arm"] == "placebo"]
    analysis = analyse_trial(prepare_trial(endpoints[endpoints["arm"] == "placebo"], placebo))
    assert analysis.comparisons["p_value"].isna().all()
    assert set(analysis.comparisons["note"]) == {
        "not estimable: only one arm (placebo), nothing to compare"
    }
    assert analysis.subgroups.empty
    assert set(analysis.baseline["arm"]) == {"placebo"}


def test_subgroup_levels_split_edss_at_6_and_relapses_at_1(
    trial: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    endpoints, participants = trial
    subgroups = analyse_trial(prepare_trial(endpoints, participants)).subgroups
    edss = subgroups[
        (subgroups["variable"] == "edss_group") & (subgroups["outcome"] == "pcf_change_pct")
    ]
    counts = edss.set_index("level")[["n_reference", "n_arm"]].sum(axis=1).to_dict()
    expected = (participants["edss"] >= 6).map({True: ">= 6", False: "< 6"}).value_counts()
    assert counts == expected.to_dict()
    relapses = subgroups.loc[subgroups["variable"] == "relapse_group", "level"]
    assert set(relapses) == {"0", ">= 1"}
    assert subgroups["interaction_formula"].str.contains(" ~ arm \\* ").all()
    assert set(subgroups["test"]) == {TESTS["welch"].name, TESTS["nb"].name}


def test_participants_file_is_found_or_the_error_names_where_it_looked(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "mriproc").mkdir(parents=True)
    with pytest.raises(StatsInputError, match=r"no participants\.tsv found .*--participants"):
        find_participants(out)
    bids = tmp_path / "the bids"  # mriproc run records it as a file URI: "the%20bids"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tarm\n01\tplacebo\n")
    for url in (str(bids), bids.as_uri()):
        (out / "mriproc" / "dataset_description.json").write_text(
            json.dumps({"SourceDatasets": [{"URL": url}]})
        )
        assert find_participants(out) == bids / "participants.tsv"
    (out / "participants.tsv").write_text("participant_id\tarm\n")
    assert find_participants(out) == out / "participants.tsv"
    assert read_participants(bids / "participants.tsv")["participant_id"].tolist() == ["sub-01"]
    (bids / "participants.tsv").write_text("participant_id\tsex\nsub-01\tF\n")
    no_arm = re.escape(f"{bids / 'participants.tsv'}: has no arm column")
    with pytest.raises(StatsInputError, match=no_arm):
        read_participants(bids / "participants.tsv")


# --------------------------------------------------------------------------- validation


def test_operating_characteristics_on_200_simulated_trials() -> None:
    # Fast version of benchmarks/bench_stats.py: a PCF-change effect of 0.5 % and no
    # effect on counts. Bounds are loose (binomial SD of a 95 % rate over 200 is 1.5
    # points) but a biased estimate or a wrong interval fails them.
    draws = repeat_comparisons(
        200,
        40,
        pcf_effect=0.5,
        rate_ratio=1.0,
        seed=11,
        outcomes={"pcf_change_pct", "cumulative_cel_count"},
    )
    summary = operating_characteristics(draws, pcf_effect=0.5, rate_ratio=1.0).set_index("test")
    assert (summary["estimable"] == 200).all()
    for test in ("welch", "ancova"):
        row = summary.loc[TESTS[test].name]
        assert abs(row["bias"]) < 4 * row["bias_se"] + 1e-9
        assert 0.90 <= row["coverage"] <= 0.99
        assert row["rejection_rate"] > 0.4  # power, not a false positive
    nb = summary.loc[TESTS["nb"].name]
    assert abs(nb["bias"]) < 4 * nb["bias_se"]
    assert 0.90 <= nb["coverage"] <= 0.99
    for test in ("nb", "wilcoxon"):  # no effect on counts: false-positive rate near 5 %
        assert 0.01 <= summary.loc[TESTS[test].name, "rejection_rate"] <= 0.10


def test_simulated_tables_have_the_endpoint_schema_and_the_known_effect() -> None:
    endpoints, participants = simulate_endpoint_table(400, pcf_effect=0.3, rate_ratio=0.5, seed=2)
    assert set(participants.columns) == {
        "participant_id",
        "arm",
        "sex",
        "age",
        "edss",
        "relapses_2y",
    }
    last = endpoints[(endpoints["session"] == "ses-M24")]
    means = last[last["endpoint"] == "pcf_change_pct"].groupby("arm")["value"].mean()
    assert means["ivig"] - means["placebo"] == pytest.approx(0.3, abs=0.15)
    cel = endpoints[(endpoints["endpoint"] == "cel_count") & (endpoints["visit_month"] > 0)]
    rates = cel.groupby("arm")["value"].mean()
    assert rates["ivig"] / rates["placebo"] == pytest.approx(0.5, abs=0.15)
    assert not endpoints[endpoints["session"] == "ses-M00"]["endpoint"].eq("pbvc").any()


# --------------------------------------------------------------------------- command


def test_mriproc_stats_input_errors_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trial"
    assert main(["stats", str(out)]) == EXIT_USAGE
    assert "no participants.tsv found" in capsys.readouterr().err
    write_simulated_tables(out, 3, seed=1)
    (out / "participants.tsv").write_text("participant_id\tsex\nsub-10001\tF\n")
    assert main(["stats", str(out)]) == EXIT_USAGE
    assert f"{out / 'participants.tsv'}: has no arm column" in capsys.readouterr().err
    write_simulated_tables(out, 3, seed=1)
    assert main(["stats", str(out), "--reference-arm", "ivgi"]) == EXIT_USAGE
    assert "reference arm 'ivgi' is not an arm of the trial (arms: ivig, placebo)" in (
        capsys.readouterr().err
    )
    assert main(["stats", str(out), "--endpoints", str(tmp_path / "nope.tsv")]) == EXIT_USAGE
    assert f"{tmp_path / 'nope.tsv'}: endpoint table not found" in capsys.readouterr().err
    assert not (out / "mriproc" / "stats").exists()


def test_written_endpoint_tables_read_back_for_stats(tmp_path: Path) -> None:
    endpoints_path, participants_path = write_simulated_tables(tmp_path, 4, seed=3)
    endpoints = read_table(endpoints_path)
    data = prepare_trial(endpoints, read_participants(participants_path))
    assert len(data.participants) == 8 and data.excluded.empty
    assert data.followup_months == (12.0, 24.0)
