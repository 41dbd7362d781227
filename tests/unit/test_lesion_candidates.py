"""Features of lesion candidates (the inputs of the per-candidate decision)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mriproc.lesion_candidates import (
    VENTRICLE_MIN_DEPTH_MM,
    LesionClassifier,
    candidate_features,
    load_lesion_classifier,
)


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
    # Both 80 % brighter than white matter: 80 / 30 of the way from it to grey matter.
    assert features["FLAIR_contrast"] == pytest.approx([0.8, 0.8], abs=0.01)
    assert features["FLAIR_gm_position"] == pytest.approx([8 / 3, 8 / 3], abs=0.05)
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


def _model(**changes: object) -> LesionClassifier:
    model = LesionClassifier(
        channels=("FLAIR",),
        features=("volume_mm3", "FLAIR_contrast"),
        log_features=("volume_mm3",),
        fill=np.array([np.log(20.0), 0.3]),
        mean=np.array([np.log(10.0), 0.2]),
        scale=np.array([1.0, 0.1]),
        coefficients=np.array([1.0, 2.0]),
        intercept=-1.0,
    )
    return dataclasses.replace(model, **changes)  # type: ignore[arg-type]


def test_classifier_is_a_logistic_model_of_log_volume_and_contrast() -> None:
    model = _model()
    features = {
        "volume_mm3": np.array([10.0, 10.0 * np.e, np.nan]),
        "FLAIR_contrast": np.array([0.2, 0.3, 0.3]),
        "unused": np.zeros(3),
    }
    expected_score = np.array([-1.0, -1.0 + 1.0 + 2.0, -1.0 + np.log(2.0) + 2.0])
    np.testing.assert_allclose(model.probability(features), 1 / (1 + np.exp(-expected_score)))
    again = LesionClassifier.from_json(model.to_json(), "model.json")
    np.testing.assert_allclose(again.probability(features), model.probability(features))
    assert model.probability({"volume_mm3": np.zeros(0), "FLAIR_contrast": np.zeros(0)}).size == 0
    with pytest.raises(ValueError, match="needs features"):
        model.probability({"volume_mm3": np.ones(2)})
    # A model without features (the training script's "keep every candidate") gives
    # every candidate its intercept's probability.
    constant = _model(features=(), fill=np.zeros(0), mean=np.zeros(0), scale=np.ones(0),
                      coefficients=np.zeros(0), intercept=0.0)  # fmt: skip
    np.testing.assert_array_equal(constant.probability(features), [0.5, 0.5, 0.5])


def test_a_broken_model_file_is_refused_naming_it(tmp_path: Path) -> None:
    good = json.loads(_model().to_json())
    for change in ({"format": "other/1"}, {"scale": [1.0, 0.0]}, {"mean": [0.0]}):
        path = tmp_path / "broken.json"
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(ValueError, match=r"broken\.json: not a lesion classifier"):
            load_lesion_classifier(str(path))
        load_lesion_classifier.cache_clear()
    with pytest.raises(ValueError, match="no shipped lesion classifier named 'nothing'"):
        load_lesion_classifier("nothing")


@pytest.mark.parametrize(("name", "channel"), [("flair", "FLAIR"), ("esims", "T2w")])
def test_the_shipped_classifiers_serve_their_protocols(name: str, channel: str) -> None:
    from mriproc.config import load_protocol
    from mriproc.t2lesions import classifier_problem

    protocol = load_protocol(name)
    assert protocol.t2_lesions.classifier == name
    assert classifier_problem(protocol.t2_lesions, protocol.source) is None
    model = load_lesion_classifier(name)
    assert model.channels == protocol.t2_lesions.channels
    # Trained on simulated scans only (the real development scans stay a test), with
    # its held-out metrics recorded.
    record = model.record
    assert "--appearance realistic" in record["training_data"]["simulator"]
    assert record["metrics"]["leave_one_subject_out_auc"] > 0.8
    assert "prior" in model.features and f"{channel}_gm_position" in model.features
