"""Template-based brain and intracranial masks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from mriproc.brain import carry_template_maps, fit_template, is_skull_stripped, template_maps
from mriproc.config import load_protocol, load_registration_preset
from mriproc.evaluation import dice
from mriproc.simulate import TrialSpec, simulate_trial


def ball(radius_mm: float) -> nib.Nifti1Image:
    grid = np.indices((100, 100, 100)).astype(np.float32) - 49.5
    data = (np.sqrt((grid**2).sum(axis=0)) * 2.0 < radius_mm).astype(np.float32) * 500.0
    return nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))


def test_skull_stripped_is_told_apart_by_size() -> None:
    assert is_skull_stripped(ball(70.0))  # 1.44 L: a brain
    assert not is_skull_stripped(ball(90.0))  # 3.05 L: a head


def test_template_masks_fit_a_simulated_scan(tmp_path: Path) -> None:
    root = simulate_trial(
        tmp_path / "sim", TrialSpec(n_subjects=1, months=(0,), seed=21), load_protocol("esims")
    )
    t2 = nib.load(root / "sub-001" / "ses-M00" / "anat" / "sub-001_ses-M00_T2w.nii.gz")
    fit = fit_template(
        t2, "T2w", preset=load_registration_preset("fast"), work_dir=tmp_path / "work"
    )
    assert not fit.skull_stripped
    protocol = load_protocol("esims")
    masks = carry_template_maps(t2, fit, template_maps(protocol.pcf))
    truth = root / "derivatives" / "groundtruth" / "sub-001" / "ses-M00" / "anat"
    icv = np.asarray(nib.load(truth / "sub-001_ses-M00_desc-icv_mask.nii.gz").dataobj) > 0
    brain = np.asarray(nib.load(truth / "sub-001_ses-M00_desc-brain_mask.nii.gz").dataobj) > 0
    assert dice(masks["icv"] >= 0.5, icv) > 0.96
    assert dice(masks["brain"] >= 0.5, brain) > 0.96
