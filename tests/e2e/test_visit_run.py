"""Per-visit processing through ``mriproc run`` end to end (one run of five single-visit
participants)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriproc.cli import EXIT_OK
from mriproc.config import load_protocol
from mriproc.evaluation import dice
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture

# One run of five single-visit participants covers the end-to-end cases:
# sub-001 as simulated; sub-002 with a rater's lesion mask (the ground truth);
# sub-003 without its post-contrast T1w; sub-004 with another subject's T1w; sub-005
# with a noise-only post-contrast T1w.
PRISTINE, RATER, NO_GAD, WRONG_T1, NOISE_GAD = (f"sub-00{i}" for i in range(1, 6))


@dataclass(frozen=True)
class VisitRun:
    root: Path
    out: Path
    code: int
    refused: dict[str, Path]  # participant -> the file that does not register

    def truth(self, participant: str) -> pd.DataFrame:
        table = read_table(self.root / "derivatives" / "groundtruth" / "endpoints.tsv")
        return table[table.participant_id == participant].set_index("endpoint")

    def endpoints(self, participant: str) -> pd.DataFrame:
        table = read_table(self.out / "endpoints.tsv")
        return table[table.participant_id == participant].set_index("endpoint")

    def anat(self, participant: str) -> Path:
        return self.out / participant / "ses-M00" / "anat"


@pytest.fixture(scope="module")
def visit_run(tmp_path_factory: pytest.TempPathFactory, run_fast: RunFast) -> VisitRun:
    tmp = tmp_path_factory.mktemp("visit")
    root = tmp / "sim"
    simulate_trial(root, TrialSpec(n_subjects=5, months=(0,), seed=31), load_protocol("esims"))

    def anat(participant: str) -> Path:
        return root / participant / "ses-M00" / "anat"

    name = f"{RATER}_ses-M00_desc-t2lesion_mask.nii.gz"
    raters = tmp / "raters" / RATER / "ses-M00" / "anat"
    raters.mkdir(parents=True)
    truth_dir = root / "derivatives" / "groundtruth" / RATER / "ses-M00" / "anat"
    (raters / name).write_bytes((truth_dir / name).read_bytes())
    (anat(NO_GAD) / f"{NO_GAD}_ses-M00_ce-gadolinium_T1w.nii.gz").unlink()
    wrong = anat(WRONG_T1) / f"{WRONG_T1}_ses-M00_T1w.nii.gz"
    other = nib.load(anat(PRISTINE) / f"{PRISTINE}_ses-M00_T1w.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(other.dataobj), nib.load(wrong).affine), wrong)
    blank = anat(NOISE_GAD) / f"{NOISE_GAD}_ses-M00_ce-gadolinium_T1w.nii.gz"
    image = nib.load(blank)
    noise = np.random.default_rng(0).rayleigh(50.0, image.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, image.affine), blank)

    code, out = run_fast(root, tmp, "--rater-masks", str(tmp / "raters"))
    return VisitRun(root, out, code, {WRONG_T1: wrong, NOISE_GAD: blank})


def test_run_writes_derivatives_and_endpoints(visit_run: VisitRun) -> None:
    anat = visit_run.anat(PRISTINE)
    for name in (
        "desc-brain_mask",
        "desc-icv_mask",
        "desc-pcfslab_mask",
        "dseg",
        "label-CSF_probseg",
        "desc-coreg_T1w",
        "ce-gadolinium_desc-coreg_T1w",
        "desc-t2lesion_mask",
        "desc-lesions_dseg",
        "desc-blackhole_mask",
        "desc-cel_mask",
    ):
        image = anat / f"{PRISTINE}_ses-M00_{name}.nii.gz"
        assert image.is_file(), image
        assert image.with_name(image.name.replace(".nii.gz", ".json")).is_file()
    assert (anat / f"{PRISTINE}_ses-M00_from-T1w_to-T2w_mode-image_xfm.txt").is_file()
    endpoints, truth = visit_run.endpoints(PRISTINE), visit_run.truth(PRISTINE)
    # Loose bounds: the accuracy targets are checked by benchmarks/accuracy.py.
    for endpoint, tolerance in (("pcf", 0.1), ("bpf", 0.1), ("t2_lesion_volume", 5.0)):
        assert endpoints.loc[endpoint, "status"] == "ok"
        assert abs(endpoints.loc[endpoint, "value"] - truth.loc[endpoint, "value"]) < tolerance
    assert endpoints.loc["t2_lesion_count", "value"] > 0
    errors = read_table(visit_run.out / "errors.tsv")
    assert set(errors.participant_id) == set(visit_run.refused)  # only the refused contrasts
    lesions = read_table(visit_run.out / "lesions.tsv")
    lesions = lesions[lesions.participant_id == PRISTINE]
    assert len(lesions) == endpoints.loc["t2_lesion_count", "value"]
    assert (lesions.category == "baseline").all()
    label_map = nib.load(anat / f"{PRISTINE}_ses-M00_desc-lesions_dseg.nii.gz")
    assert int(np.asarray(label_map.dataobj).max()) == len(lesions)


def test_run_brain_mask_matches_ground_truth(visit_run: VisitRun) -> None:
    name = f"{PRISTINE}_ses-M00_desc-brain_mask.nii.gz"
    ours = np.asarray(nib.load(visit_run.anat(PRISTINE) / name).dataobj) > 0
    truth_dir = visit_run.root / "derivatives" / "groundtruth" / PRISTINE / "ses-M00" / "anat"
    truth = np.asarray(nib.load(truth_dir / name).dataobj) > 0
    assert dice(ours, truth) > 0.96


def test_missing_post_contrast_makes_only_cel_endpoints_na(visit_run: VisitRun) -> None:
    endpoints = visit_run.endpoints(NO_GAD)
    for endpoint in ("cel_count", "cel_volume"):
        assert np.isnan(endpoints.loc[endpoint, "value"])
        assert endpoints.loc[endpoint, "status"] == "needs T1w_gad (missing)"
    for endpoint in ("t2_lesion_volume", "black_hole_count", "pcf", "bpf"):
        assert endpoints.loc[endpoint, "status"] == "ok", endpoint
    lesions = read_table(visit_run.out / "lesions.tsv")
    assert lesions[lesions.participant_id == NO_GAD].enhancing.isna().all()


def test_rater_masks_are_used_and_compared(visit_run: VisitRun) -> None:
    """A rater's mask (here the ground truth) gives the lesion endpoints; agreement is listed."""
    endpoints, truth = visit_run.endpoints(RATER), visit_run.truth(RATER)
    for endpoint in ("t2_lesion_volume", "t2_lesion_count"):
        assert endpoints.loc[endpoint, "value"] == pytest.approx(truth.loc[endpoint, "value"])
        assert endpoints.loc[endpoint, "note"] == "rater mask"
    assert (visit_run.endpoints(PRISTINE).note != "rater mask").all()  # only where one exists
    (row,) = read_table(visit_run.out / "rater_agreement.tsv").itertuples()
    assert row.participant_id == RATER
    assert row.rater_count == truth.loc["t2_lesion_count", "value"]
    assert 0.5 < row.dice < 1.0 and 0.5 < row.lesion_f1 <= 1.0
    assert 0.5 < row.detection_f1 <= 1.0 and 0.0 <= row.detection_precision <= 1.0
    assert (visit_run.anat(RATER) / f"{RATER}_ses-M00_desc-t2lesionautomated_mask.nii.gz").is_file()


def test_run_refuses_contrasts_that_do_not_register(visit_run: VisitRun) -> None:
    """A wrong subject's T1w and a noise-only post-contrast T1w fail the quality check.

    Neither is a tissue-model channel, so only the endpoints that need them are NA (with
    the reason) and the visit's other endpoints complete; errors.tsv names the files.
    """
    assert visit_run.code != EXIT_OK
    errors = read_table(visit_run.out / "errors.tsv").set_index("participant_id")
    assert set(errors.stage) == {"coregistration"}, errors
    for participant, path in visit_run.refused.items():
        reason = errors.loc[participant, "reason"]
        assert str(path) in reason and "did not register" in reason, reason
        assert pd.isna(errors.loc[participant, "crash_file"])
    for participant, role in ((WRONG_T1, "T1w"), (NOISE_GAD, "T1w_gad")):
        endpoints = visit_run.endpoints(participant)
        for endpoint in ("pcf", "bpf", "t2_lesion_volume", "t2_lesion_count"):
            row = endpoints.loc[endpoint]
            assert row.status == "ok" and np.isfinite(row.value), (participant, endpoint)
        for endpoint in ("cel_count", "cel_volume"):  # CEL need both T1w images
            row = endpoints.loc[endpoint]
            assert np.isnan(row.value), (participant, endpoint)
            assert f"{role} (refused by the co-registration check)" in row.status, row.status
    # Black holes need the pre-contrast T1w only.
    assert "refused" in visit_run.endpoints(WRONG_T1).loc["black_hole_volume", "status"]
    assert visit_run.endpoints(NOISE_GAD).loc["black_hole_volume", "status"] == "ok"
    # The refused contrast is not written as a co-registered derivative.
    anat = visit_run.anat(WRONG_T1)
    assert not (anat / f"{WRONG_T1}_ses-M00_desc-coreg_T1w.nii.gz").exists()
    assert not (anat / f"{WRONG_T1}_ses-M00_from-T1w_to-T2w_mode-image_xfm.txt").exists()
    assert (anat / f"{WRONG_T1}_ses-M00_ce-gadolinium_desc-coreg_T1w.nii.gz").is_file()
