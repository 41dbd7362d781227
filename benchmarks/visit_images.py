"""Per-visit image checks of a participant-level run against the simulator's truth.

Brain-envelope and intracranial mask Dice (``desc-brain_mask``, ``desc-icv_mask``
against the ground-truth masks), the co-registration error of every registered
contrast (the mean displacement, over the ground-truth brain voxels, between the
written transform ``from-<role>_to-<reading>_mode-image_xfm.txt`` and the map
implied by the simulator's true head poses in ``simulation.json``), and the lesion
masks: T2-lesion and black-hole Dice, lesion-wise detection counts (lesions of at
least the protocol's minimum in-plane diameter, 3 mm by default, on both sides).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from mriproc.config import load_protocol
from mriproc.evaluation import DetectionScore, detection_score, dice, lesionwise_score
from mriproc.io.itk import read_itk_affine
from mriproc.registration import mean_displacement_mm

__all__ = ["visit_image_metrics"]

# Transform entity label -> simulator pose of the moving image.
_POSES = {"T1w": "T1w", "T1wgad": "T1w_gad"}


def _mask(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj) > 0


def visit_image_metrics(
    bids: Path, out: Path, reading: str = "T2w", protocol: str = "esims"
) -> pd.DataFrame:
    """One row per simulated visit: mask Dice, co-registration errors (mm), lesion scores."""
    labelling = load_protocol(protocol).labelling
    truth_root = bids / "derivatives" / "groundtruth"
    simulation = json.loads((truth_root / "simulation.json").read_text())
    rows = []
    for scan in simulation["scans"]:
        p, s = scan["participant_id"], scan["session"]
        truth_dir = truth_root / p / s / "anat"
        result_dir = out / "mriproc" / p / s / "anat"
        row: dict[str, object] = {"participant_id": p, "session": s}
        for name in ("brain", "icv"):
            result = result_dir / f"{p}_{s}_desc-{name}_mask.nii.gz"
            truth = truth_dir / f"{p}_{s}_desc-{name}_mask.nii.gz"
            row[f"{name}_dice"] = dice(_mask(truth), _mask(result)) if result.is_file() else np.nan
        brain_img = nib.load(str(truth_dir / f"{p}_{s}_desc-brain_mask.nii.gz"))
        voxels = np.argwhere(np.asarray(brain_img.dataobj) > 0)[::10]
        points = (np.c_[voxels, np.ones(len(voxels))] @ brain_img.affine.T)[:, :3]
        poses = {k: np.asarray(v) for k, v in scan["poses"].items()}
        for label, pose in _POSES.items():
            xfm = result_dir / f"{p}_{s}_from-{label}_to-{reading}_mode-image_xfm.txt"
            if not xfm.is_file():
                row[f"{label}_error_mm"] = np.nan
                continue
            truth_map = poses[pose] @ np.linalg.inv(poses["dual_echo"])
            row[f"{label}_error_mm"] = mean_displacement_mm(read_itk_affine(xfm), truth_map, points)
        for name in ("t2lesion", "blackhole"):
            result = result_dir / f"{p}_{s}_desc-{name}_mask.nii.gz"
            truth = truth_dir / f"{p}_{s}_desc-{name}_mask.nii.gz"
            row[f"{name}_dice"] = dice(_mask(truth), _mask(result)) if result.is_file() else np.nan
            if name == "t2lesion" and result.is_file():
                score = lesionwise_score(
                    _mask(truth),
                    _mask(result),
                    brain_img.header.get_zooms()[:3],
                    connectivity=labelling.connectivity,
                    min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
                )
                row["lesions_true"], row["lesions_found"] = score.n_truth, score.n_predicted
                row["true_detected"], row["found_correct"] = (
                    score.truth_detected,
                    score.predicted_correct,
                )
                row.update(
                    _detection_columns(
                        "msseg",
                        detection_score(
                            _mask(truth),
                            _mask(result),
                            brain_img.header.get_zooms()[:3],
                            connectivity=labelling.connectivity,
                        ),
                    )
                )
        ours = [result_dir / f"{p}_{s}_desc-{k}lesion_mask.nii.gz" for k in ("new", "enlarging")]
        if all(path.is_file() for path in ours):
            changed = _changed_truth(truth_root, p, s)
            score = lesionwise_score(
                changed,
                _mask(ours[0]) | _mask(ours[1]),
                brain_img.header.get_zooms()[:3],
                connectivity=labelling.connectivity,
                min_in_plane_diameter_mm=0.0,  # the truth's lesions passed the size rule already
            )
            row["changed_true"], row["changed_found"] = score.n_truth, score.n_predicted
            row["changed_detected"], row["changed_correct"] = (
                score.truth_detected,
                score.predicted_correct,
            )
            row.update(
                _detection_columns(
                    "changed_msseg",
                    detection_score(
                        changed,
                        _mask(ours[0]) | _mask(ours[1]),
                        brain_img.header.get_zooms()[:3],
                        connectivity=labelling.connectivity,
                    ),
                )
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _detection_columns(prefix: str, found: DetectionScore) -> dict[str, int]:
    """Lesion-wise counts (MSSEG convention), overall and per size class, as row columns:
    ``<prefix>[_<class>]_{true,found,detected,correct}``."""
    columns = {}
    for name, score in (("", found.overall), *((f"_{k}", v) for k, v in found.by_size.items())):
        for key, value in zip(
            ("true", "found", "detected", "correct"),
            (score.n_truth, score.n_predicted, score.truth_detected, score.predicted_correct),
            strict=True,
        ):
            columns[f"{prefix}{name}_{key}"] = value
    return columns


def _changed_truth(truth_root: Path, participant: str, session: str) -> np.ndarray:
    """The ground truth's new and enlarging lesions (versus the previous visit) of a scan."""
    table = pd.read_csv(truth_root / "lesions.tsv", sep="\t")
    chosen = table[
        (table.participant_id == participant)
        & (table.session == session)
        & table.category.isin(["new", "enlarging"])
    ]
    labels = np.asarray(
        nib.load(
            str(
                truth_root
                / participant
                / session
                / "anat"
                / f"{participant}_{session}_desc-lesions_dseg.nii.gz"
            )
        ).dataobj
    )
    return np.isin(labels, chosen["label"].to_numpy())
