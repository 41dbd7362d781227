"""Agreement metrics used by the benchmarks and for rater agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mriproc.evaluation import (
    compare_endpoints,
    detection_score,
    dice,
    lesionwise_score,
    size_class,
)


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


def test_detection_follows_the_msseg_convention() -> None:
    """Components of >= 3 voxels, whatever the protocol's minimum size; any overlap counts."""
    truth = blobs((2, 2, 1), (12, 12, 1))
    truth[25, 25, 4] = truth[25, 26, 4] = True  # 2 voxels: not a lesion
    truth[20, 2, 3] = truth[20, 3, 3] = truth[20, 4, 3] = True  # 3 voxels: a lesion, missed
    prediction = np.zeros_like(truth)
    prediction[5, 5, 2] = True  # one voxel of the first lesion: it is detected...
    prediction[12:16, 12:16, 1:3] = True  # the second, whole
    prediction[2:5, 25:27, 0] = True  # a false lesion (6 voxels)
    score = detection_score(truth, prediction, (1.0, 1.0, 1.0), connectivity=26)
    overall = score.overall
    assert (overall.n_truth, overall.truth_detected) == (3, 2)
    # ...but the single predicted voxel is not a lesion of the prediction.
    assert (overall.n_predicted, overall.predicted_correct) == (2, 1)
    assert overall.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert set(score.by_size) == {"<50mm3", "50-500mm3", ">=500mm3"}
    small = score.by_size["<50mm3"]  # 32-voxel blobs, the 3-voxel lesion, the false one
    assert (small.n_truth, small.truth_detected, small.n_predicted) == (3, 2, 2)
    assert score.by_size[">=500mm3"].n_truth == 0


def test_size_classes_scale_with_the_voxel_size() -> None:
    """The classes are volumes: the same 32-voxel blob is 50-500 mm3 at 2 x 2 x 2 mm."""
    truth = blobs((2, 2, 1))
    score = detection_score(truth, truth, (2.0, 2.0, 2.0), connectivity=26)
    assert score.by_size["50-500mm3"].n_truth == 1 and score.by_size["<50mm3"].n_truth == 0
    assert size_class(49.0) == "<50mm3" and size_class(500.0) == ">=500mm3"
