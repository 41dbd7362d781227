"""Agreement between two sets of results: endpoint errors, Dice and lesion-wise F1.

Used by the benchmark harness (mriproc versus simulated ground truth) and for rater
agreement (automated versus a rater's mask).  Lesions are found with the project's
one labelling function, so "a lesion" is the same thing on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from mriproc.lesions import label_lesions

__all__ = [
    "MSSEG_MIN_VOXELS",
    "SIZE_BOUNDS_MM3",
    "DetectionScore",
    "LesionwiseScore",
    "compare_endpoints",
    "detection_score",
    "dice",
    "icc_agreement",
    "lesionwise_score",
    "size_class",
]

# The lesion-wise convention of the MSSEG challenges, as the field reports detection:
# a connected component of at least this many voxels is a lesion, and it counts as
# detected (or as correct) when any of its voxels overlaps the other mask.
MSSEG_MIN_VOXELS = 3
# Lesion volumes (mm³) the detection scores are broken down by: under 50 mm³ (a sphere
# under 4.6 mm across: most new lesions of a follow-up, and lesions under the 3 mm
# in-plane minimum of 5 mm-slice protocols), 50 to 500 mm³, and 500 mm³ and over.
SIZE_BOUNDS_MM3 = (50.0, 500.0)


def dice(truth: npt.ArrayLike, prediction: npt.ArrayLike) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty).

    >>> dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    0.6666666666666666
    """
    a, b = np.asarray(truth) != 0, np.asarray(prediction) != 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def icc_agreement(truth: npt.ArrayLike, result: npt.ArrayLike) -> float:
    """ICC(A,1): two-way, absolute agreement, single measures (McGraw and Wong 1996).

    Agreement of ``result`` with ``truth`` over paired measurements (a constant bias
    lowers it, unlike a correlation).

    >>> round(icc_agreement([1.0, 2.0, 3.0, 4.0], [1.1, 2.0, 2.9, 4.2]), 3)
    0.996
    """
    y = np.column_stack([np.asarray(truth, dtype=float), np.asarray(result, dtype=float)])
    n, k = y.shape
    grand = y.mean()
    ms_rows = k * ((y.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    ms_cols = n * ((y.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    residual = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    ms_error = (residual**2).sum() / ((n - 1) * (k - 1))
    return float(
        (ms_rows - ms_error) / (ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n)
    )


@dataclass(frozen=True)
class LesionwiseScore:
    """Lesion-wise detection: a lesion counts as found when the other side overlaps it."""

    n_truth: int
    n_predicted: int
    truth_detected: int
    predicted_correct: int

    @property
    def recall(self) -> float:
        """Share of true lesions overlapped by a predicted one (1 when there are none)."""
        return 1.0 if self.n_truth == 0 else self.truth_detected / self.n_truth

    @property
    def precision(self) -> float:
        """Share of predicted lesions overlapping a true one (1 when there are none)."""
        return 1.0 if self.n_predicted == 0 else self.predicted_correct / self.n_predicted

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)

    def __add__(self, other: LesionwiseScore) -> LesionwiseScore:
        """Pool counts over scans (micro-average)."""
        return LesionwiseScore(
            self.n_truth + other.n_truth,
            self.n_predicted + other.n_predicted,
            self.truth_detected + other.truth_detected,
            self.predicted_correct + other.predicted_correct,
        )


def size_class(volume_mm3: float, bounds_mm3: Sequence[float] = SIZE_BOUNDS_MM3) -> str:
    """The size class of a lesion of ``volume_mm3`` (labels name the bounds).

    >>> [size_class(v) for v in (3.0, 50.0, 499.9, 2000.0)]
    ['<50mm3', '50-500mm3', '50-500mm3', '>=500mm3']
    """
    edges = [f"{b:g}" for b in bounds_mm3]
    for index, bound in enumerate(bounds_mm3):
        if volume_mm3 < bound:
            return f"<{edges[0]}mm3" if index == 0 else f"{edges[index - 1]}-{edges[index]}mm3"
    return f">={edges[-1]}mm3"


@dataclass(frozen=True)
class DetectionScore:
    """Lesion-wise detection overall and per size class (:func:`detection_score`).

    In ``by_size`` a class's recall is over the true lesions of that size and its
    precision over the found lesions of that size; every class of ``bounds_mm3`` is
    present (with zero counts when neither side has such lesions).
    """

    overall: LesionwiseScore
    by_size: dict[str, LesionwiseScore]


def detection_score(
    truth: npt.ArrayLike,
    prediction: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    connectivity: int,
    min_voxels: int = MSSEG_MIN_VOXELS,
    bounds_mm3: Sequence[float] = SIZE_BOUNDS_MM3,
) -> DetectionScore:
    """Lesion-wise detection by the MSSEG convention, overall and per lesion size.

    Lesions are the components (``connectivity``) of at least ``min_voxels`` voxels
    of each mask, whatever the protocol's minimum lesion size; a true lesion is
    detected when any voxel of it is in ``prediction``, a found lesion is correct when
    any voxel of it is in ``truth``.

    >>> truth = np.zeros((20, 20, 3), bool); truth[1:4, 1:4, 1] = truth[10:18, 10:18, 0:3] = True
    >>> found = np.zeros_like(truth); found[2:3, 2:5, 1] = found[5:7, 15:17, 1] = True
    >>> score = detection_score(truth, found, (1.0, 1.0, 1.0), connectivity=26)
    >>> score.overall.recall, score.overall.precision
    (0.5, 0.5)
    >>> score.by_size["<50mm3"].truth_detected, score.by_size["50-500mm3"].n_truth
    (1, 1)
    """
    voxel_mm3 = float(np.prod(np.asarray(voxel_size_mm, dtype=float)))
    # Per side and per component: a lesion (>= min_voxels), overlapping the other
    # mask, and its size class.
    sides = []
    for mask, other in ((truth, prediction), (prediction, truth)):
        found = label_lesions(
            mask, voxel_size_mm, connectivity=connectivity, min_in_plane_diameter_mm=0.0
        )
        hit = np.zeros(found.count + 1, dtype=bool)
        hit[found.labels[np.asarray(other) != 0]] = True
        sizes = [size_class(float(n) * voxel_mm3, bounds_mm3) for n in found.voxel_counts]
        sides.append((found.voxel_counts >= min_voxels, hit[1:], np.array(sizes, dtype=str)))

    def of(chosen: str | None) -> LesionwiseScore:
        counts = []
        for lesion, hit, size in sides:
            counted = lesion if chosen is None else lesion & (size == chosen)
            counts += [int(counted.sum()), int((counted & hit).sum())]
        n_truth, truth_detected, n_found, found_correct = counts
        return LesionwiseScore(n_truth, n_found, truth_detected, found_correct)

    classes = [size_class(v, bounds_mm3) for v in (0.0, *bounds_mm3)]
    return DetectionScore(of(None), {c: of(c) for c in classes})


def lesionwise_score(
    truth: npt.ArrayLike,
    prediction: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    connectivity: int,
    min_in_plane_diameter_mm: float,
) -> LesionwiseScore:
    """Count lesions of each mask and how many overlap a lesion of the other."""
    kwargs = {"connectivity": connectivity, "min_in_plane_diameter_mm": min_in_plane_diameter_mm}
    true_lesions = label_lesions(truth, voxel_size_mm, **kwargs)  # type: ignore[arg-type]
    predicted = label_lesions(prediction, voxel_size_mm, **kwargs)  # type: ignore[arg-type]
    overlap = (true_lesions.labels > 0) & (predicted.labels > 0)
    detected = np.unique(true_lesions.labels[overlap])
    correct = np.unique(predicted.labels[overlap])
    return LesionwiseScore(true_lesions.count, predicted.count, len(detected), len(correct))


def compare_endpoints(truth: pd.DataFrame, result: pd.DataFrame) -> pd.DataFrame:
    """Per-endpoint agreement of two ``endpoints.tsv`` tables (as read by ``read_table``).

    Rows are matched on participant, session and endpoint.  ``n`` counts pairs where
    both values exist; ``n_missing`` counts true values the result lacks.  Errors are
    result minus truth in the endpoint's unit.
    """
    keys = ["participant_id", "session", "endpoint"]
    joined = truth[[*keys, "value", "unit"]].merge(
        result[[*keys, "value", "status"]], on=keys, how="left", suffixes=("_truth", "_result")
    )
    joined = joined[joined["value_truth"].notna()]
    records = []
    for endpoint, rows in joined.groupby("endpoint", sort=False):
        both = rows[rows["value_result"].notna()]
        error = both["value_result"] - both["value_truth"]
        records.append(
            {
                "endpoint": endpoint,
                "unit": rows["unit"].iloc[0],
                "n": len(both),
                "n_missing": int(rows["value_result"].isna().sum()),
                "bias": float(error.mean()) if len(both) else np.nan,
                "median_abs_error": float(error.abs().median()) if len(both) else np.nan,
                "max_abs_error": float(error.abs().max()) if len(both) else np.nan,
                "pearson_r": float(both["value_truth"].corr(both["value_result"]))
                if len(both) > 2 and both["value_truth"].std() > 0
                else np.nan,
            }
        )
    return pd.DataFrame.from_records(records)
