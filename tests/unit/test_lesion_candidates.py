"""Features of lesion candidates (the inputs of the per-candidate decision)."""

from __future__ import annotations

import numpy as np
import pytest

from mriproc.lesion_candidates import VENTRICLE_MIN_DEPTH_MM, candidate_features


def scene() -> dict[str, np.ndarray]:
    """A 60 x 60 x 40 mm brain: white matter, a cortical grey-matter shell, a central
    ventricle; one bright lesion in deep white matter, one bright blob in the cortex."""
    shape = (60, 60, 40)
    grid = np.indices(shape).astype(float)
    centre = np.array([30.0, 30.0, 20.0])[:, None, None, None]
    radius = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    brain = radius < 28
    gm = brain & (radius > 24)
    csf = radius < 4
    wm = brain & ~gm & ~csf
    labels = np.zeros(shape, dtype=np.int32)
    labels[30:34, 12:16, 18:21] = 1  # white matter, away from the ventricle
    labels[4:7, 28:31, 19:21] = 2  # in the cortical shell
    rng = np.random.default_rng(3)
    flair = np.where(gm, 130.0, np.where(wm, 100.0, 40.0)) + rng.normal(0, 5, shape)
    flair[labels > 0] = 180.0
    return {"labels": labels, "flair": flair, "brain": brain, "gm": gm, "wm": wm, "csf": csf}


def test_features_tell_a_white_matter_lesion_from_a_cortical_blob() -> None:
    s = scene()
    tissue = {k.upper(): s[k].astype(float) for k in ("gm", "wm", "csf")}
    features = candidate_features(
        s["labels"],
        {"FLAIR": s["flair"]},
        s["wm"] & (s["labels"] == 0),
        tissue,
        s["wm"].astype(float),
        s["brain"],
        (1.0, 1.0, 1.0),
        ring_mm=(1.0, 3.0),
        prior=np.where(s["wm"], 0.2, 0.0),
    )
    # In the caller's label order (the blob comes first in raster order).
    assert features["volume_mm3"].tolist() == [48.0, 18.0]
    assert features["slice_extent_mm"].tolist() == [3.0, 2.0]
    assert (features["FLAIR_z_mean"] > 10).all()  # both far above white-matter noise
    lesion, blob = 0, 1
    assert features["ring_WM"][lesion] > 0.9 and features["ring_GM"][blob] > 0.5
    # The blob is bright against white matter, less so against its grey-matter ring.
    assert features["FLAIR_ring_contrast"][blob] < features["FLAIR_ring_contrast"][lesion]
    assert features["depth_mm"][lesion] > features["depth_mm"][blob]
    assert features["prior"][lesion] == pytest.approx(0.2)
    assert features["ventricle_distance_mm"][lesion] < features["ventricle_distance_mm"][blob]
    assert VENTRICLE_MIN_DEPTH_MM < 28  # the scene's ventricle counts as one


def test_no_candidates_no_rows_and_labels_must_be_dense() -> None:
    s = scene()
    tissue = {k.upper(): s[k].astype(float) for k in ("gm", "wm", "csf")}
    empty = candidate_features(
        np.zeros_like(s["labels"]), {"FLAIR": s["flair"]}, s["wm"], tissue, s["wm"] * 1.0,
        s["brain"], (1.0, 1.0, 1.0), ring_mm=(1.0, 3.0),
    )  # fmt: skip
    assert all(len(v) == 0 for v in empty.values())
    gappy = np.where(s["labels"] == 2, 3, s["labels"])
    with pytest.raises(ValueError, match=r"1\.\.n without gaps"):
        candidate_features(
            gappy, {"FLAIR": s["flair"]}, s["wm"], tissue, s["wm"] * 1.0, s["brain"],
            (1.0, 1.0, 1.0), ring_mm=(1.0, 3.0),
        )  # fmt: skip
