"""The simulated trial: determinism, ground-truth consistency and MR contrast."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriproc.cli import main
from mriproc.config import Protocol, load_protocol
from mriproc.lesions import label_lesions
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.simulate.groundtruth import brain_truth
from mriproc.simulate.subject import draw_subject, visit_state
from mriproc.tables import read_table
from mriproc.template import load_template
from mriproc.validate import validate_dataset

SPEC = TrialSpec(n_subjects=2, months=(0, 12), seed=11)


@pytest.fixture(scope="module")
def esims() -> Protocol:
    return load_protocol("esims")


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory, esims: Protocol) -> Path:
    return simulate_trial(tmp_path_factory.mktemp("trial") / "sim", SPEC, esims)


def truth_dir(root: Path) -> Path:
    return root / "derivatives" / "groundtruth"


def load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


def image(root: Path, participant: str, session: str, suffix: str) -> Path:
    return (
        root
        / f"sub-{participant}"
        / f"ses-{session}"
        / "anat"
        / f"sub-{participant}_ses-{session}_{suffix}.nii.gz"
    )


def mask(root: Path, participant: str, session: str, desc: str) -> np.ndarray:
    return load(image(truth_dir(root), participant, session, f"desc-{desc}_mask")) > 0


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_is_a_valid_complete_bids_dataset(trial: Path, esims: Protocol) -> None:
    report = validate_dataset(trial, esims)
    assert report.exit_code == 0, "\n".join(report.lines())
    participants = pd.read_csv(trial / "participants.tsv", sep="\t")
    assert list(participants["participant_id"]) == ["sub-001", "sub-002"]
    assert list(participants["arm"]) == ["placebo", "ivig"]
    assert {"sex", "age", "edss"} <= set(participants.columns)
    assert [s.visit_month for s in report.dataset.sessions] == [0, 12, 0, 12]  # type: ignore[union-attr]


def test_same_seed_gives_byte_identical_files(trial: Path, esims: Protocol, tmp_path: Path) -> None:
    """Again, with the subjects simulated in two processes this time: the same files."""
    subjects: list[str] = []
    again = simulate_trial(
        tmp_path / "again", SPEC, esims, n_procs=2, on_subject=lambda s: subjects.append(s.label)
    )
    assert digest(again) == digest(trial)
    assert subjects == ["001", "002"]


def test_another_seed_gives_another_trial(trial: Path, esims: Protocol, tmp_path: Path) -> None:
    other = simulate_trial(tmp_path / "other", TrialSpec(n_subjects=1, months=(0,), seed=12), esims)
    assert (
        image(other, "001", "M00", "T2w").read_bytes()
        != image(trial, "001", "M00", "T2w").read_bytes()
    )


def test_dual_echo_shares_geometry_and_t1_has_its_own_pose(trial: Path) -> None:
    pd_img, t2_img = (nib.load(image(trial, "001", "M12", s)) for s in ("PDw", "T2w"))
    t1_img = nib.load(image(trial, "001", "M12", "T1w"))
    assert pd_img.shape == t2_img.shape == (256, 256, 24)
    np.testing.assert_array_equal(pd_img.affine, t2_img.affine)
    assert not np.allclose(t1_img.affine, t2_img.affine)
    assert pd_img.header.get_zooms() == pytest.approx((0.9375, 0.9375, 5.0))


def test_lesion_counts_match_the_labelling_function(trial: Path, esims: Protocol) -> None:
    endpoints = read_table(truth_dir(trial) / "endpoints.tsv")
    lesions = read_table(truth_dir(trial) / "lesions.tsv")
    labelling = esims.labelling
    checked = 0
    for (participant, session), rows in endpoints.groupby(["participant_id", "session"]):
        values = dict(zip(rows["endpoint"], rows["value"], strict=True))
        p, s = participant.removeprefix("sub-"), session.removeprefix("ses-")
        zooms = nib.load(image(truth_dir(trial), p, s, "desc-t2lesion_mask")).header.get_zooms()
        for desc, count_name in (
            ("t2lesion", "t2_lesion_count"),
            ("blackhole", "black_hole_count"),
        ):
            found = label_lesions(
                mask(trial, p, s, desc),
                zooms,
                connectivity=labelling.connectivity,
                min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
            )
            assert found.count == values[count_name], (participant, session, desc)
        t2 = label_lesions(
            mask(trial, p, s, "t2lesion"), zooms, connectivity=26, min_in_plane_diameter_mm=3.0
        )
        assert t2.total_volume_ml == pytest.approx(values["t2_lesion_volume"], rel=1e-6)
        here = lesions[(lesions.participant_id == participant) & (lesions.session == session)]
        assert len(here) == values["t2_lesion_count"]
        label_map = load(image(truth_dir(trial), p, s, "desc-lesions_dseg"))
        np.testing.assert_array_equal(label_map, t2.labels)
        if s != "M00":
            for desc, count_name, category in (
                ("newlesion", "new_t2_count", "new"),
                ("enlarginglesion", "enlarging_t2_count", "enlarging"),
            ):
                changed = label_lesions(
                    mask(trial, p, s, desc), zooms, connectivity=26, min_in_plane_diameter_mm=3.0
                )
                assert changed.count == values[count_name] == (here.category == category).sum()
        checked += 1
    assert checked == 4
    assert endpoints[endpoints.endpoint == "t2_lesion_count"]["value"].sum() > 0


def test_pbvc_equals_the_volume_change_of_the_deformed_brain(trial: Path, esims: Protocol) -> None:
    """Re-integrate the deformed parenchyma on a finer grid than the ground truth used."""
    endpoints = read_table(truth_dir(trial) / "endpoints.tsv")
    template = load_template()
    for index in range(SPEC.n_subjects):
        subject = draw_subject(
            template,
            label=f"{index + 1:03d}",
            arm=SPEC.arms[index],
            model=SPEC.arm_model(SPEC.arms[index]),
            months=tuple(float(m) for m in SPEC.months),
            rng=np.random.default_rng([SPEC.seed, index]),
        )
        volumes = [
            brain_truth(
                template, subject, visit_state(template, subject, v), v, esims, step=1.0
            ).parenchyma_ml
            for v in range(len(SPEC.months))
        ]
        fine_pbvc = 100.0 * (volumes[1] / volumes[0] - 1.0)
        row = endpoints[
            (endpoints.participant_id == f"sub-{subject.label}") & (endpoints.endpoint == "pbvc")
        ]
        assert float(row["value"].iloc[0]) == pytest.approx(fine_pbvc, abs=0.01)
        assert -3.0 < fine_pbvc < 2.0


def test_rescan_arm_has_no_biological_change(esims: Protocol) -> None:
    """Null pairs: a rescan subject's follow-up holds the baseline brain, lesion for lesion."""
    spec = TrialSpec(n_subjects=1, arms=("rescan",), months=(0, 12), seed=11)
    template = load_template()
    subject = draw_subject(
        template,
        label="001",
        arm="rescan",
        model=spec.arm_model("rescan"),
        months=(0.0, 12.0),
        rng=np.random.default_rng([spec.seed, 0]),
    )
    assert subject.atrophy(1) is None
    assert subject.lesions, "the rescan subject still has its baseline lesions"
    for lesion in subject.lesions:
        assert lesion.scale == (1.0, 1.0)
        assert lesion.category == ("baseline", "stable")
        assert lesion.enhancement[1] == "none"
    baseline, rescan = (visit_state(template, subject, v) for v in (0, 1))
    for name, fractions in baseline.fractions.items():
        np.testing.assert_array_equal(fractions, rescan.fractions[name], err_msg=name)


def test_contrast_follows_tissue_physics(trial: Path) -> None:
    p, s = "001", "M12"
    root = truth_dir(trial)
    lesion = mask(trial, p, s, "t2lesion")
    pd_w, t2_w = (load(image(trial, p, s, c)).astype(float) for c in ("PDw", "T2w"))
    wm_core = load(image(root, p, s, "label-WM_probseg")) > 0.95
    csf_core = load(image(root, p, s, "label-CSF_probseg")) > 0.95
    assert lesion.sum() > 20
    # Lesions are bright on both echoes; CSF is bright on T2w but not on PDw.
    assert pd_w[lesion].mean() > 1.1 * pd_w[wm_core].mean()
    assert t2_w[lesion].mean() > 1.3 * t2_w[wm_core].mean()
    assert t2_w[csf_core].mean() > 1.3 * t2_w[wm_core].mean()
    assert pd_w[csf_core].mean() < pd_w[wm_core].mean()


def test_simulate_cli_refuses_a_non_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["simulate", str(tmp_path), "--subjects", "1"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("visits", ["12,24", "0,24,12", "0,x"])
def test_simulate_cli_rejects_bad_visits(tmp_path: Path, visits: str) -> None:
    assert main(["simulate", str(tmp_path / "out"), "--visits", visits]) == 2


def test_flair_at_1mm(tmp_path: Path, esims: Protocol) -> None:
    root = simulate_trial(
        tmp_path / "flair",
        TrialSpec(n_subjects=1, months=(0,), resolution="1mm", flair=True, seed=3),
        esims,
    )
    flair_img = nib.load(image(root, "001", "M00", "FLAIR"))
    assert flair_img.shape == (192, 228, 180)
    assert flair_img.header.get_zooms() == pytest.approx((1.0, 1.0, 1.0))
    np.testing.assert_array_equal(
        flair_img.affine, nib.load(image(root, "001", "M00", "T2w")).affine
    )
    flair = np.asarray(flair_img.dataobj, dtype=float)
    truth = truth_dir(root)
    lesion = mask(root, "001", "M00", "t2lesion")
    wm_core = load(image(truth, "001", "M00", "label-WM_probseg")) > 0.95
    csf_core = load(image(truth, "001", "M00", "label-CSF_probseg")) > 0.95
    # FLAIR: lesions bright, CSF suppressed.
    assert flair[lesion].mean() > 1.5 * flair[wm_core].mean()
    assert flair[csf_core].mean() < 0.5 * flair[wm_core].mean()
    sidecar = (
        image(root, "001", "M00", "FLAIR").with_name("sub-001_ses-M00_FLAIR.json")
    ).read_text()
    assert '"InversionTime": 2.5' in sidecar


def in_reading_grid(
    moving: nib.Nifti1Image,
    reference: nib.Nifti1Image,
    pose: np.ndarray,
    reference_pose: np.ndarray,
) -> np.ndarray:
    """Resample ``moving`` into ``reference``'s grid through the true poses of both scans."""
    from scipy import ndimage

    matrix = np.linalg.inv(moving.affine) @ pose @ np.linalg.inv(reference_pose) @ reference.affine
    data = np.asarray(moving.dataobj, dtype=float)
    return ndimage.affine_transform(data, matrix, output_shape=reference.shape, order=1)


def test_enhancement_and_black_holes_show_on_t1(trial: Path) -> None:
    """Bring T1 pre/post into the reading grid with the true head poses (the head moves
    between acquisitions, so the affines alone do not align them): CEL brighten with
    gadolinium, black holes are darker than grey matter."""
    scans = json.loads((truth_dir(trial) / "simulation.json").read_text())["scans"]
    poses = {(r["participant_id"], r["session"]): r["poses"] for r in scans}
    seen_cel = seen_bh = 0
    for p, s in (("001", "M00"), ("001", "M12"), ("002", "M00"), ("002", "M12")):
        reference = nib.load(image(trial, p, s, "T2w"))
        pose = {k: np.asarray(v) for k, v in poses[(f"sub-{p}", f"ses-{s}")].items()}
        pre, post = (
            in_reading_grid(
                nib.load(image(trial, p, s, suffix)), reference, pose[role], pose["dual_echo"]
            )
            for suffix, role in (("T1w", "T1w"), ("ce-gadolinium_T1w", "T1w_gad"))
        )
        wm_core = load(image(truth_dir(trial), p, s, "label-WM_probseg")) > 0.95
        gm_core = load(image(truth_dir(trial), p, s, "label-GM_probseg")) > 0.9
        pre, post = pre / np.median(pre[wm_core]), post / np.median(post[wm_core])
        cel, black_hole = mask(trial, p, s, "cel"), mask(trial, p, s, "blackhole")
        if cel.sum() >= 5:
            assert post[cel].mean() > 1.3 * pre[cel].mean()
            seen_cel += 1
        if black_hole.sum() >= 5:
            assert pre[black_hole].mean() < pre[gm_core].mean()
            seen_bh += 1
    assert seen_cel >= 1 and seen_bh >= 1, (seen_cel, seen_bh)


def test_dicom_export_converts_back_to_the_bids_images(tmp_path: Path, esims: Protocol) -> None:
    import subprocess

    from mriproc.io.dicom_write import dcm2niix_executable

    spec = TrialSpec(n_subjects=1, months=(0,), seed=5, write_dicom=True)
    root = simulate_trial(tmp_path / "both", spec, esims)
    series = sorted((root / "sourcedata" / "dicom").glob("*/*/*"))
    assert [s.name for s in series] == ["02_PD_T2_SE_AX", "03_T1_SE_AX", "04_T1_SE_AX_POST_GD"]
    expected = {
        "02_PD_T2_SE_AX": ["PDw", "T2w"],
        "03_T1_SE_AX": ["T1w"],
        "04_T1_SE_AX_POST_GD": ["ce-gadolinium_T1w"],
    }
    for folder in series:
        out = tmp_path / "nifti" / folder.name
        out.mkdir(parents=True)
        command = [str(dcm2niix_executable()), "-z", "y", "-f", "%e", "-o", str(out), str(folder)]
        subprocess.run(command, check=True, capture_output=True)
        converted = sorted(out.glob("*.nii.gz"))
        assert len(converted) == len(expected[folder.name])
        for nifti, suffix in zip(converted, expected[folder.name], strict=True):
            original = nib.load(image(root, "001", "M00", suffix))
            back = nib.load(nifti)
            assert back.shape == original.shape
            np.testing.assert_allclose(back.affine, original.affine, atol=1e-3)
            np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(original.dataobj))
