"""Lesion change and lesion tracking on synthetic images with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mriproc.config import load_protocol
from mriproc.followup import track_lesions
from mriproc.lesions import min_lesion_volume_ml
from mriproc.longitudinal import (
    HalfwayVisit,
    LongitudinalError,
    lesion_changes,
)

ZOOMS = (1.0, 1.0, 3.0)
SHAPE = (64, 64, 10)
PROTOCOL = load_protocol("esims")


def ball(centre: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    squared = sum(((g - c) * z) ** 2 for g, c, z in zip(grid, centre, ZOOMS, strict=True))
    return np.asarray(squared <= radius_mm**2)


def visit(lesions: list[np.ndarray], seed: int, *, hidden: int | None = None) -> HalfwayVisit:
    """White matter (PD 100, T2 100) with lesions (PD 130, T2 200), noise SD 3.

    ``hidden``: the index of a lesion present in the image but not in the label map
    (a lesion the visit's own segmentation missed).
    """
    rng = np.random.default_rng(seed)
    occupied = np.any(lesions, axis=0) if lesions else np.zeros(SHAPE, bool)
    channels = [
        np.where(occupied, value, 100.0) + rng.normal(0, 3, SHAPE) for value in (130.0, 200.0)
    ]
    labels = np.zeros(SHAPE, np.int32)
    for number, lesion in enumerate(lesions, start=1):
        if number - 1 != hidden:
            labels[lesion] = number
    x, y = np.indices(SHAPE[:2])
    brain = np.repeat((np.hypot(x - 32, y - 32) <= 30)[..., None], SHAPE[2], axis=2)
    return HalfwayVisit(channels, labels, np.where(brain, 1.0, 0.0), np.asarray(brain))


MIN_CHANGE_ML = min_lesion_volume_ml(3.0, ZOOMS)
RULES = {
    "params": PROTOCOL.new_enlarging,
    "nawm_min_wm_fraction": 0.8,
    "min_change_ml": MIN_CHANGE_ML,
}


def changes(earlier: HalfwayVisit, later: HalfwayVisit) -> dict[int, str]:
    return lesion_changes(earlier, later, ZOOMS, **RULES).category_of()


def test_new_enlarging_stable_and_shrinking_lesions() -> None:
    stable = ball((20, 20, 5), 4.0)
    # +73 % by nominal volume: enlarging (small-lesion threshold 45 %).
    growing_before, growing_after = ball((44, 20, 5), 4.0), ball((44, 20, 5), 4.8)
    shrinking_before, shrinking_after = ball((20, 44, 5), 6.0), ball((20, 44, 5), 3.5)
    new = ball((44, 44, 5), 4.0)
    earlier = visit([stable, growing_before, shrinking_before], seed=1)
    later = visit([stable, growing_after, shrinking_after, new], seed=2)
    assert changes(earlier, later) == {1: "stable", 2: "enlarging", 3: "shrinking", 4: "new"}


def test_a_lesion_missed_earlier_is_not_new() -> None:
    """Joint analysis: the earlier image holds the lesion's signal, so it is not new."""
    kept = ball((20, 20, 5), 4.0)
    missed = ball((44, 44, 5), 4.0)
    earlier = visit([kept, missed], seed=3, hidden=1)
    later = visit([kept, missed], seed=4)
    assert changes(earlier, later) == {1: "stable", 2: "stable"}


def test_a_lesion_cut_at_another_slice_position_is_not_enlarging() -> None:
    """One lesion, two acquisitions: the earlier one cut it across two slices.

    Earlier, half of its signal is in each of two slices and only one is labelled; later,
    all of it is in the labelled slice. Over the labelled voxels the signal doubles; over
    the region grown by a slice each way it does not change: stable. A new lesion of the
    same size is still new.
    """
    disc = ball((20, 20, 5), 3.0) & (np.indices(SHAPE)[2] == 5)
    below = np.roll(disc, 1, axis=2)
    earlier = visit([disc], seed=11)
    for channel, value in zip(earlier.channels, (130.0, 200.0), strict=True):
        channel[disc | below] = 100.0 + 0.5 * (value - 100.0)
    later = visit([disc], seed=12)
    assert disc.sum() * float(np.prod(ZOOMS)) / 1000 > MIN_CHANGE_ML
    assert changes(earlier, later) == {1: "stable"}
    new = ball((44, 44, 5), 3.0) & (np.indices(SHAPE)[2] == 5)
    assert changes(earlier, visit([disc, new], seed=13)) == {1: "stable", 2: "new"}


def test_split_and_merge_groups() -> None:
    # Two earlier lesions that merge into one later lesion; one that splits in two.
    left, right = ball((14, 20, 5), 3.5), ball((22, 20, 5), 3.5)
    merged = left | right | ball((18, 20, 5), 3.5)
    whole = ball((44, 44, 5), 6.0)
    part_a, part_b = ball((40, 44, 5), 3.0), ball((49, 44, 5), 3.0)
    earlier = visit([left, right, whole], seed=5)
    later = visit([merged, part_a, part_b], seed=6)
    found = lesion_changes(earlier, later, ZOOMS, **RULES)
    groups = {g.later: g.earlier for g in found.groups}
    assert groups == {(1,): (1, 2), (2, 3): (3,)}
    assert {g.later: g.category for g in found.groups}[(2, 3)] == "shrinking"


def test_no_shared_white_matter_is_an_error() -> None:
    earlier = visit([], seed=7)
    later = visit([], seed=8)
    empty = HalfwayVisit(earlier.channels, earlier.labels, earlier.wm, np.zeros(SHAPE, bool))
    with pytest.raises(LongitudinalError, match="share only 0"):
        lesion_changes(empty, later, ZOOMS, **RULES)


def test_tracking_keeps_identities_through_splits_and_merges() -> None:
    maps = track_lesions(
        [1, 2, 3],
        [
            ([1, 2, 3, 4], [(1, 1), (2, 1), (3, 2), (3, 3)]),  # 1+2 merge; 3 splits; 4 new
            ([1, 2], [(1, 1), (4, 2)]),
        ],
    )
    assert maps[0] == {1: "L001", 2: "L002", 3: "L003"}
    assert maps[1] == {1: "L001", 2: "L003", 3: "L003.1", 4: "L004"}
    assert maps[2] == {1: "L001", 2: "L004"}


def test_two_follow_ups_are_registered_through_the_baseline(tmp_path: Path) -> None:
    """The composed record: later-from-earlier through the baseline, and its halfway space."""
    import json

    from scipy.spatial.transform import Rotation

    from mriproc.followup import earlier_to_later, halfway_through_baseline

    def rigid(angles: list[float], shift: list[float]) -> np.ndarray:
        matrix = np.eye(4)
        matrix[:3, :3] = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
        matrix[:3, 3] = shift
        return matrix

    to_m12, to_m24 = rigid([2, -1, 3], [1.0, -2.0, 0.5]), rigid([-3, 2, 1], [-1.5, 0.5, 2.0])
    records = []
    for name, matrix, asymmetry in (("m12", to_m12, 0.02), ("m24", to_m24, 0.03)):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps(
                {
                    "earlier": "m00.nii.gz",
                    "later": f"{name}.nii.gz",
                    "earlier_to_later_ras": matrix.tolist(),
                    "asymmetry_mm": asymmetry,
                }
            )
        )
        records.append(path)
    composed = halfway_through_baseline(*records, tmp_path / "composed")
    record = json.loads(composed.read_text())
    expected = to_m24 @ np.linalg.inv(to_m12)
    np.testing.assert_allclose(earlier_to_later(composed), expected, atol=1e-12)
    half = np.asarray(record["halfway_to_later_ras"])
    np.testing.assert_allclose(half @ half, expected, atol=1e-10)
    np.testing.assert_allclose(
        np.asarray(record["halfway_to_earlier_ras"]) @ half, np.eye(4), atol=1e-10
    )
    assert (record["earlier"], record["later"]) == ("m12.nii.gz", "m24.nii.gz")
    assert record["asymmetry_mm"] == pytest.approx(0.05)
