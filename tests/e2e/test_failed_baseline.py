"""A baseline that fails inside the workflow does not take its follow-up with it.

Under ``registration.template_fit: per_participant`` a follow-up carries its baseline's
template fit.  Two participants, each a failed baseline and a pristine follow-up; both
baselines pass the input checks:

* sub-001: the baseline is 2 of its 24 slices.  The template fit's check refuses it
  (intracranial volume in the field of view far below ``registration.min_icv_ml``), so
  no follow-up carries it.  Before the check: PCF 0.154 "ok" on a brain mask of 0 mL,
  and the follow-up measured on the carried fit (PCF 0.52 "ok", truth about 0.86).
* sub-002: the baseline is a 16x16x6-voxel thumbnail of the whole head: its volume is
  plausible, its tissue classification fails, and the follow-up, carrying its fit,
  crashes or is measured on it (PCF "ok", T2 lesions failed: no white matter).

``mriproc run`` processes each follow-up again on its own fit.  Before: lost with its
baseline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mriproc.cli import EXIT_FAILURE
from mriproc.config import load_protocol
from mriproc.outputs import visit_record_path
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table
from mriproc.visit import OWN_FIT

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture

CROPPED, THUMBNAIL = "sub-001", "sub-002"


@pytest.fixture(scope="module")
def failed_baselines(tmp_path_factory: pytest.TempPathFactory, run_fast: RunFast) -> Path:
    tmp = tmp_path_factory.mktemp("failed_baseline")
    root = tmp / "sim"
    spec = TrialSpec(n_subjects=2, months=(0, 12), seed=37)
    simulate_trial(root, spec, load_protocol("esims"))
    for participant in (CROPPED, THUMBNAIL):
        for path in sorted((root / participant / "ses-M00" / "anat").glob("*.nii.gz")):
            image = nib.load(path)
            data = np.asarray(image.dataobj)
            if participant == CROPPED:
                changed = nib.Nifti1Image(data[:, :, 11:13], image.affine)
            else:
                thumbnail = data[::16, ::16, ::4]
                changed = nib.Nifti1Image(thumbnail, image.affine @ np.diag([16, 16, 4, 1]))
            nib.save(changed, path)
    code, out = run_fast(root, tmp, "--nprocs", "2")
    assert code == EXIT_FAILURE  # the baselines failed
    return out


@pytest.mark.parametrize("participant", [CROPPED, THUMBNAIL])
def test_the_follow_up_is_processed_on_its_own_fit(
    failed_baselines: Path, participant: str
) -> None:
    endpoints = read_table(failed_baselines / "endpoints.tsv")
    rows = endpoints[(endpoints.participant_id == participant) & (endpoints.session == "ses-M12")]
    followup = rows.set_index("endpoint")
    for name in ("t2_lesion_volume", "t2_lesion_count", "pcf", "bpf"):
        assert followup.loc[name, "status"] == "ok", (name, followup.loc[name, "status"])
        assert np.isfinite(float(followup.loc[name, "value"]))
    assert 0.75 < float(followup.loc["pcf", "value"]) < 0.95  # a whole brain's
    assert followup.loc["pbvc", "status"].startswith("longitudinal stage did not run")
    record = visit_record_path(failed_baselines, participant.removeprefix("sub-"), "M12")
    assert json.loads(record.read_text())["template_fit"] == OWN_FIT


def test_only_the_baselines_are_errors(failed_baselines: Path) -> None:
    errors = read_table(failed_baselines / "errors.tsv")
    rows = list(zip(errors.participant_id, errors.session, errors.stage, strict=True))
    assert rows == [(CROPPED, "ses-M00", "visit"), (THUMBNAIL, "ses-M00", "visit")]
    cropped, thumbnail = errors.reason
    assert cropped.startswith("mriproc.visit.TemplateFitError: T2w (the reading space): the ")
    assert "intracranial volume of" in cropped and "outside the protocol's 600-2600 mL" in cropped
    assert "TissueError" in thumbnail
    endpoints = read_table(failed_baselines / "endpoints.tsv")
    baseline = endpoints[(endpoints.participant_id == CROPPED) & (endpoints.session == "ses-M00")]
    assert baseline.value.isna().all()  # no PCF measured on two slices
    # The first run's crash files stay in the log; the second run's folder has none.
    crash_dir = next((failed_baselines / "logs").glob("*/crash"))
    assert list(crash_dir.glob("crash-*"))
    assert (crash_dir / "own-fit").is_dir()
    assert not list((crash_dir / "own-fit").glob("crash-*"))
