"""Template-based brain and intracranial masks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from mriproc.brain import carry_template_maps, fit_template, template_maps
from mriproc.config import load_protocol, load_registration_preset
from mriproc.evaluation import dice
from mriproc.simulate import TrialSpec, simulate_trial


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


def test_a_skull_stripped_scan_is_recognised(tmp_path: Path) -> None:
    """The same simulated scan with everything outside the intracranial mask zeroed."""
    root = simulate_trial(
        tmp_path / "sim", TrialSpec(n_subjects=1, months=(0,), seed=22), load_protocol("esims")
    )
    t2 = nib.load(root / "sub-001" / "ses-M00" / "anat" / "sub-001_ses-M00_T2w.nii.gz")
    truth = root / "derivatives" / "groundtruth" / "sub-001" / "ses-M00" / "anat"
    icv = np.asarray(nib.load(truth / "sub-001_ses-M00_desc-icv_mask.nii.gz").dataobj) > 0
    stripped = nib.Nifti1Image(np.asarray(t2.dataobj, dtype=np.float32) * icv, t2.affine)
    fit = fit_template(
        stripped, "T2w", preset=load_registration_preset("fast"), work_dir=tmp_path / "work"
    )
    assert fit.skull_stripped
    masks = carry_template_maps(stripped, fit, template_maps(load_protocol("esims").pcf))
    # The bare-brain rendering has no extra-axial CSF: the fit is looser than with a
    # head (fast preset here; real stripped data is scored by benchmarks/real_visits.py).
    assert dice(masks["icv"] >= 0.5, icv) > 0.9


def test_a_follow_up_carries_the_baseline_fit(tmp_path: Path) -> None:
    """The baseline's fit, carried through the follow-up's halfway registration to it."""
    from mriproc.brain import fit_through
    from mriproc.followup import earlier_to_later, halfway_registration
    from mriproc.registration import map_points

    protocol = load_protocol("esims")
    root = simulate_trial(
        tmp_path / "sim", TrialSpec(n_subjects=1, months=(0, 12), seed=23), protocol
    )
    anat = {m: root / "sub-001" / f"ses-{m}" / "anat" for m in ("M00", "M12")}
    baseline, followup = (anat[m] / f"sub-001_ses-{m}_T2w.nii.gz" for m in ("M00", "M12"))
    preset = load_registration_preset("fast")
    fit = fit_template(nib.load(baseline), "T2w", preset=preset, work_dir=tmp_path / "fit")
    record = halfway_registration(baseline, followup, preset=preset, out_dir=tmp_path / "half")
    to_baseline = np.linalg.inv(earlier_to_later(record))
    carried = fit_through(fit, to_baseline, tmp_path / "carried")

    # Exactly: a follow-up point goes into the baseline first, then through its fit.
    points = np.random.default_rng(0).uniform(-60, 60, (3, 50)).astype(np.float32)
    in_baseline = (to_baseline[:3, :3] @ points + to_baseline[:3, 3:]).astype(np.float32)
    np.testing.assert_allclose(
        map_points(points, carried.transform_files),
        map_points(in_baseline, fit.transform_files),
        atol=1e-3,
    )
    # And the follow-up's own masks come out of it.
    image = nib.load(followup)
    masks = carry_template_maps(image, carried, template_maps(protocol.pcf))
    truth = root / "derivatives" / "groundtruth" / "sub-001" / "ses-M12" / "anat"
    icv = np.asarray(nib.load(truth / "sub-001_ses-M12_desc-icv_mask.nii.gz").dataobj) > 0
    assert carried.skull_stripped == fit.skull_stripped
    assert dice(masks["icv"] >= 0.5, icv) > 0.96
    # The registration's direction matters: carried the wrong way, the masks miss.
    wrong = fit_through(fit, np.linalg.inv(to_baseline), tmp_path / "wrong")
    wrong_icv = carry_template_maps(image, wrong, template_maps(protocol.pcf))["icv"] >= 0.5
    assert dice(wrong_icv, icv) < 0.95  # measured: 0.87 (the right way: 0.98)
