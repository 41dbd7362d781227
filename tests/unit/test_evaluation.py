"""Agreement metrics used by the benchmarks and for rater agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mriproc.evaluation import compare_endpoints, dice, lesionwise_score


def blobs(*corners: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros((30, 30, 6), dtype=bool)
    for x, y, z in corners:
        mask[x : x + 4, y : y + 4, z : z + 2] = True
    return mask


def test_dice() -> None:
    a = blobs((2, 2, 1))
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    shifted = np.roll(a, 2, axis=0)
    assert dice(a, shifted) == pytest.approx(0.5)


def test_lesionwise_counts_misses_and_false_positives() -> None:
    truth = blobs((2, 2, 1), (12, 12, 1), (22, 22, 1))
    prediction = blobs((3, 3, 1), (12, 12, 1), (2, 22, 1))  # two found, one missed, one false
    score = lesionwise_score(
        truth, prediction, (1.0, 1.0, 1.0), connectivity=26, min_in_plane_diameter_mm=0.0
    )
    assert (score.n_truth, score.n_predicted, score.truth_detected, score.predicted_correct) == (
        3,
        3,
        2,
        2,
    )
    assert score.recall == pytest.approx(2 / 3)
    assert score.precision == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 / 3)
    pooled = score + score
    assert pooled.n_truth == 6 and pooled.f1 == pytest.approx(2 / 3)


def test_lesionwise_uses_the_protocol_minimum_size() -> None:
    truth = blobs((2, 2, 1))
    prediction = truth.copy()
    prediction[20, 20, 3] = True  # a 1-voxel speck is not a lesion at 3 mm
    score = lesionwise_score(
        truth, prediction, (1.0, 1.0, 1.0), connectivity=26, min_in_plane_diameter_mm=3.0
    )
    assert score.n_predicted == 1 and score.f1 == 1.0


def test_compare_endpoints_reports_error_and_missing() -> None:
    keys = {"participant_id": ["sub-01", "sub-01", "sub-02", "sub-02"], "session": ["ses-M00"] * 4}
    truth = pd.DataFrame(
        {
            **keys,
            "endpoint": ["pcf", "cel_count"] * 2,
            "value": [0.80, 2.0, 0.82, 0.0],
            "unit": ["fraction", "n"] * 2,
        }
    )
    result = pd.DataFrame(
        {
            **keys,
            "endpoint": ["pcf", "cel_count"] * 2,
            "value": [0.81, 3.0, 0.81, np.nan],
            "status": ["ok", "ok", "ok", "no T1w_gad"],
        }
    )
    table = compare_endpoints(truth, result).set_index("endpoint")
    assert table.loc["pcf", "n"] == 2
    assert table.loc["pcf", "bias"] == pytest.approx(0.0)
    assert table.loc["pcf", "median_abs_error"] == pytest.approx(0.01)
    assert table.loc["cel_count", "n"] == 1
    assert table.loc["cel_count", "n_missing"] == 1
    assert table.loc["cel_count", "max_abs_error"] == pytest.approx(1.0)
