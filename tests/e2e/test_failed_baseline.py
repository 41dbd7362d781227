"""A baseline that fails inside the workflow does not take its follow-up with it.

Under ``registration.template_fit: per_participant`` a follow-up carries its baseline's
template fit.  Here the baseline's images are a 16x16x6-voxel thumbnail of a real-size
visit (they pass the input checks, then its tissue classification fails), and the
follow-up, pristine, first crashes on the fit it carried; ``mriproc run`` then
processes it again on its own fit.  Before: the follow-up failed with its baseline.
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


@pytest.fixture(scope="module")
def failed_baseline(tmp_path_factory: pytest.TempPathFactory, run_fast: RunFast) -> Path:
    tmp = tmp_path_factory.mktemp("failed_baseline")
    root = tmp / "sim"
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0, 12), seed=37), load_protocol("esims"))
    for path in sorted((root / "sub-001" / "ses-M00" / "anat").glob("*.nii.gz")):
        image = nib.load(path)
        thumbnail = np.asarray(image.dataobj)[::16, ::16, ::4]
        nib.save(nib.Nifti1Image(thumbnail, image.affine @ np.diag([16, 16, 4, 1])), path)
    code, out = run_fast(root, tmp, "--nprocs", "2")
    assert code == EXIT_FAILURE  # the baseline failed
    return out


def test_the_follow_up_is_processed_on_its_own_fit(failed_baseline: Path) -> None:
    endpoints = read_table(failed_baseline / "endpoints.tsv")
    followup = endpoints[endpoints.session == "ses-M12"].set_index("endpoint")
    for name in ("t2_lesion_volume", "t2_lesion_count", "pcf", "bpf"):
        assert followup.loc[name, "status"] == "ok", (name, followup.loc[name, "status"])
        assert np.isfinite(float(followup.loc[name, "value"]))
    assert followup.loc["pbvc", "status"].startswith("longitudinal stage did not run")
    record = visit_record_path(failed_baseline, "001", "M12")
    assert json.loads(record.read_text())["template_fit"] == OWN_FIT


def test_only_the_baseline_is_an_error(failed_baseline: Path) -> None:
    errors = read_table(failed_baseline / "errors.tsv")
    assert list(zip(errors.session, errors.stage, strict=True)) == [("ses-M00", "visit")]
    assert "TissueError" in errors.reason.iloc[0]
    # The first run's crash files stay in the log; the second run's folder has none.
    crash_dir = next((failed_baseline / "logs").glob("*/crash"))
    assert list(crash_dir.glob("crash-*"))
    assert (crash_dir / "own-fit").is_dir()
    assert not list((crash_dir / "own-fit").glob("crash-*"))
