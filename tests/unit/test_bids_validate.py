"""BIDS discovery and ``validate``: skeleton datasets damaged on purpose.

Every test builds a small esims skeleton dataset (2 participants x 3 visits, every
contrast present), breaks one thing, and checks that discovery reports it by file
name with the right reason and that the validation exit code is right
(0 complete, 1 usable with gaps, 2 unusable).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriproc.config import Protocol, load_protocol
from mriproc.io.bids import SessionInputs, anat_path, discover_dataset
from mriproc.skeleton import write_skeleton_dataset
from mriproc.validate import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_UNUSABLE,
    ValidationReport,
    validate_dataset,
)

SHAPE = (16, 16, 6)
ARMS = {"01": "placebo", "02": "ivig"}
SESSIONS = ("M00", "M12", "M24")
ROLES = ("PDw", "T2w", "T1w", "T1w_gad")

DatasetFactory = Callable[..., Path]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def esims() -> Protocol:
    return load_protocol("esims")


@pytest.fixture
def make_dataset(tmp_path: Path, esims: Protocol) -> DatasetFactory:
    """Write an esims skeleton dataset under tmp_path and return its root."""

    def make(*, protocol: Protocol | None = None, **kwargs: object) -> Path:
        options: dict[str, object] = {"arms": ARMS, "sessions": list(SESSIONS), "shape": SHAPE}
        options.update(kwargs)
        return write_skeleton_dataset(tmp_path / "bids", protocol or esims, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def dataset(make_dataset: DatasetFactory) -> Path:
    """A complete esims skeleton dataset."""
    return make_dataset()


# --------------------------------------------------------------------------- helpers


def image_path(root: Path, participant: str, session: str, role: str) -> Path:
    """BIDS path of an esims role."""
    if role == "T1w_gad":
        return anat_path(root, participant, session, suffix="T1w", ce="gadolinium")
    return anat_path(root, participant, session, suffix=role)


def skeleton_affine(root: Path) -> np.ndarray:
    """The affine every skeleton image shares."""
    return np.asarray(nib.load(image_path(root, "01", "M00", "T2w")).affine)


def write_image(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def smooth_data(shape: tuple[int, ...] = SHAPE, dtype: type = np.float32) -> np.ndarray:
    """Non-constant finite image content."""
    rng = np.random.default_rng(1)
    return (1000.0 + 100.0 * rng.standard_normal(shape)).astype(dtype)


def find_session(report: ValidationReport, participant: str, session: str) -> SessionInputs:
    assert report.dataset is not None, report.fatal
    matches = [
        s for s in report.dataset.sessions if (s.participant, s.session) == (participant, session)
    ]
    assert len(matches) == 1, [(s.participant, s.session) for s in report.dataset.sessions]
    return matches[0]


def summary(report: ValidationReport) -> str:
    return "\n".join(report.lines())


def session_block(report: ValidationReport, participant: str, session: str) -> str:
    """The lines of the human summary that belong to one session."""
    text = summary(report)
    header = f"sub-{participant} ses-{session}  ("
    assert header in text, text
    return text.split(header, 1)[1].split("\n\n", 1)[0]


def assert_only_damaged(report: ValidationReport, participant: str, session: str) -> None:
    """Every session other than the damaged one is still complete."""
    assert report.dataset is not None
    for s in report.dataset.sessions:
        if (s.participant, s.session) != (participant, session):
            assert s.problems == {}, (s.participant, s.session, s.problems)
            assert set(s.files) == set(ROLES)


# --------------------------------------------------------------------------- complete


def test_complete_dataset_has_every_role_and_exit_0(dataset: Path, esims: Protocol) -> None:
    report = validate_dataset(dataset, esims)

    assert report.fatal is None
    assert report.exit_code == EXIT_OK
    assert report.dataset is not None
    assert report.dataset.problems == ()
    assert [(s.participant, s.session) for s in report.dataset.sessions] == [
        (p, s) for p in ARMS for s in SESSIONS
    ]
    for s in report.dataset.sessions:
        assert s.problems == {}
        assert s.ignored == ()
        assert s.files == {
            role: image_path(dataset, s.participant, s.session, role) for role in ROLES
        }
        assert report.dataset.unavailable_endpoints(s, esims) == {}
    text = summary(report)
    assert "6 of 6 session(s) complete; dataset is complete" in text
    assert "sub-02 ses-M24  (month 24, arm ivig)" in text
    assert "present:  PDw, T2w, T1w, T1w_gad" in text


def test_visit_months_come_from_sessions_tsv(dataset: Path, esims: Protocol) -> None:
    found = discover_dataset(dataset, esims)
    months = {(s.participant, s.session): s.visit_month for s in found.sessions}
    assert months == {
        (p, s): m for p in ARMS for s, m in zip(SESSIONS, (0.0, 12.0, 24.0), strict=True)
    }
    assert {s.visit_month_source for s in found.sessions} == {"sessions.tsv"}

    # sessions.tsv wins over the protocol's schedule.
    tsv = dataset / "sub-01" / "sub-01_sessions.tsv"
    pd.DataFrame(
        {"session_id": ["ses-M00", "ses-M12", "ses-M24"], "visit_month": [0, 13, 25]}
    ).to_csv(tsv, sep="\t", index=False)
    found = discover_dataset(dataset, esims)
    months = {(s.participant, s.session): s.visit_month for s in found.sessions}
    assert months[("01", "M12")] == 13.0
    assert months[("01", "M24")] == 25.0
    assert months[("02", "M24")] == 24.0


def test_arm_comes_from_participants_tsv(dataset: Path, esims: Protocol) -> None:
    found = discover_dataset(dataset, esims)
    assert {label: p.arm for label, p in found.participants.items()} == ARMS
    assert found.name == "mriproc skeleton dataset (esims)"


# --------------------------------------------------------------------------- missing contrast


def test_missing_contrast_is_listed_with_endpoints_not_computable(
    make_dataset: DatasetFactory, esims: Protocol
) -> None:
    root = make_dataset(omit=[("01", "M12", "T1w_gad")])
    report = validate_dataset(root, esims)

    assert report.exit_code == EXIT_INCOMPLETE
    s = find_session(report, "01", "M12")
    assert s.problems == {"T1w_gad": "missing"}
    assert set(s.files) == {"PDw", "T2w", "T1w"}
    unavailable = report.dataset.unavailable_endpoints(s, esims)
    assert unavailable["cel_count"] == "needs T1w_gad"
    assert unavailable["cel_volume"] == "needs T1w_gad"
    assert "t2_lesion_volume" not in unavailable
    assert_only_damaged(report, "01", "M12")

    block = session_block(report, "01", "M12")
    assert "missing:  T1w_gad" in block
    assert "cannot compute (needs T1w_gad): cel_count, cel_volume" in block
    assert "5 of 6 session(s) complete; dataset is usable, with gaps" in summary(report)


# --------------------------------------------------------------------------- damaged images


def assert_unusable(
    report: ValidationReport, participant: str, session: str, role: str, reason: str
) -> str:
    """The role is unusable, its reason names the file and contains ``reason``."""
    s = find_session(report, participant, session)
    assert role not in s.files
    why = s.problems[role]
    name = image_path(Path("/"), participant, session, role).name
    assert why.startswith(f"{name}: "), why
    assert reason in why, why
    assert f"unusable:  {role}: {why}" in session_block(report, participant, session)
    assert_only_damaged(report, participant, session)
    assert report.exit_code == EXIT_INCOMPLETE
    return why


def test_zero_byte_file_is_unusable(dataset: Path, esims: Protocol) -> None:
    image_path(dataset, "01", "M00", "T1w").write_bytes(b"")
    report = validate_dataset(dataset, esims)
    assert_unusable(report, "01", "M00", "T1w", "empty file (0 bytes)")


def test_truncated_gzip_is_unusable(dataset: Path, esims: Protocol) -> None:
    path = image_path(dataset, "02", "M12", "T1w")
    write_image(path, smooth_data(), skeleton_affine(dataset))
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])

    report = validate_dataset(dataset, esims)
    assert_unusable(report, "02", "M12", "T1w", "corrupt or truncated")


def test_4d_image_with_three_volumes_is_unusable(dataset: Path, esims: Protocol) -> None:
    path = image_path(dataset, "01", "M24", "T1w_gad")
    write_image(path, smooth_data((*SHAPE, 3)), skeleton_affine(dataset))
    report = validate_dataset(dataset, esims)
    assert_unusable(report, "01", "M24", "T1w_gad", "4-D image with 3 volumes")
    s = find_session(report, "01", "M24")
    assert report.dataset.unavailable_endpoints(s, esims)["cel_count"] == "needs T1w_gad"


def test_4d_image_with_one_volume_is_accepted(dataset: Path, esims: Protocol) -> None:
    path = image_path(dataset, "01", "M24", "T1w_gad")
    write_image(path, smooth_data((*SHAPE, 1)), skeleton_affine(dataset))
    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_OK
    s = find_session(report, "01", "M24")
    assert s.files["T1w_gad"] == path
    assert s.problems == {}
    assert f"{path.name}: 4-D with a single volume: used as 3-D" in s.notes


def test_4d_single_volume_echo_pairs_with_3d_echo(dataset: Path, esims: Protocol) -> None:
    """The dual-echo geometry check compares the 3-D grid of a 1-volume 4-D image."""
    path = image_path(dataset, "01", "M00", "PDw")
    write_image(path, smooth_data((*SHAPE, 1)), skeleton_affine(dataset))
    report = validate_dataset(dataset, esims)
    assert report.exit_code == EXIT_OK
    assert find_session(report, "01", "M00").files["PDw"] == path


def test_nan_and_inf_voxels_are_unusable(dataset: Path, esims: Protocol) -> None:
    data = smooth_data()
    data[1, 2, 3] = np.nan
    data[4, 5, 0] = np.inf
    data[0, 0, 5] = -np.inf
    write_image(image_path(dataset, "02", "M00", "T1w"), data, skeleton_affine(dataset))
    report = validate_dataset(dataset, esims)
    assert_unusable(report, "02", "M00", "T1w", "3 voxel(s) are NaN or Inf")


def test_constant_image_is_unusable(dataset: Path, esims: Protocol) -> None:
    data = np.full(SHAPE, 7, dtype=np.int16)
    write_image(image_path(dataset, "02", "M24", "T1w"), data, skeleton_affine(dataset))
    report = validate_dataset(dataset, esims)
    assert_unusable(report, "02", "M24", "T1w", "constant image (every voxel is 7)")


# --------------------------------------------------------------------------- dual echo


@pytest.mark.parametrize(
    ("shape", "shift_mm", "expected"),
    [
        (SHAPE, 1.5, "voxel grids differ by up to 1.5 mm"),
        ((16, 16, 5), 0.0, "shapes differ ((16, 16, 5) vs (16, 16, 6))"),
    ],
    ids=["shifted-affine", "different-shape"],
)
def test_dual_echo_geometry_mismatch_makes_pdw_unusable(
    dataset: Path,
    esims: Protocol,
    shape: tuple[int, int, int],
    shift_mm: float,
    expected: str,
) -> None:
    affine = skeleton_affine(dataset)
    affine[0, 3] += shift_mm
    pdw = write_image(image_path(dataset, "01", "M12", "PDw"), smooth_data(shape), affine)
    t2w = image_path(dataset, "01", "M12", "T2w")

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_INCOMPLETE
    s = find_session(report, "01", "M12")
    assert set(s.problems) == {"PDw"}
    why = s.problems["PDw"]
    assert pdw.name in why
    assert t2w.name in why
    assert "dual-echo geometry" in why
    assert expected in why
    # The reading-space echo stays usable.
    assert s.files["T2w"] == t2w
    assert "PDw" not in s.files
    assert f"unusable:  PDw: {why}" in session_block(report, "01", "M12")
    assert_only_damaged(report, "01", "M12")


def test_dual_echo_within_tolerance_is_accepted(dataset: Path, esims: Protocol) -> None:
    affine = skeleton_affine(dataset)
    affine[0, 3] += 0.0001  # below geometry_tolerance_mm (0.001)
    write_image(image_path(dataset, "01", "M12", "PDw"), smooth_data(), affine)
    report = validate_dataset(dataset, esims)
    assert report.exit_code == EXIT_OK


# --------------------------------------------------------------------------- naming


def test_duplicate_runs_make_the_role_unusable(dataset: Path, esims: Protocol) -> None:
    original = image_path(dataset, "02", "M12", "T1w")
    anat = original.parent
    run1 = anat / "sub-02_ses-M12_run-1_T1w.nii.gz"
    run2 = anat / "sub-02_ses-M12_run-2_T1w.nii.gz"
    content = original.read_bytes()
    run1.write_bytes(content)
    run2.write_bytes(content)
    original.unlink()

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_INCOMPLETE
    s = find_session(report, "02", "M12")
    assert set(s.problems) == {"T1w"}
    why = s.problems["T1w"]
    assert why.startswith("2 files match")
    assert run1.name in why
    assert run2.name in why
    assert "T1w" not in s.files
    # The post-contrast T1w is a different role and is not caught up in it.
    assert "T1w_gad" in s.files
    assert f"unusable:  T1w: {why}" in session_block(report, "02", "M12")
    assert_only_damaged(report, "02", "M12")


def test_unknown_suffix_is_ignored_not_a_problem(dataset: Path, esims: Protocol) -> None:
    t2star = anat_path(dataset, "01", "M00", suffix="T2starw")
    write_image(t2star, smooth_data(), skeleton_affine(dataset))

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_OK
    s = find_session(report, "01", "M00")
    assert s.problems == {}
    assert set(s.files) == set(ROLES)
    assert s.ignored == ((t2star, "suffix 'T2starw' is not a contrast of protocol 'esims'"),)
    assert (
        f"ignored:  {t2star.name}: suffix 'T2starw' is not a contrast of protocol 'esims'"
        in session_block(report, "01", "M00")
    )


def test_non_bids_file_name_is_ignored(dataset: Path, esims: Protocol) -> None:
    stray = write_image(
        image_path(dataset, "02", "M00", "T2w").parent / "scan_0003.nii.gz",
        smooth_data(),
        skeleton_affine(dataset),
    )

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_OK
    s = find_session(report, "02", "M00")
    assert s.problems == {}
    assert set(s.files) == set(ROLES)
    assert len(s.ignored) == 1
    path, why = s.ignored[0]
    assert path == stray
    assert why.startswith("not a BIDS file name")
    assert "sub-02_ses-M00_" in why
    assert f"ignored:  scan_0003.nii.gz: {why}" in session_block(report, "02", "M00")


# --------------------------------------------------------------------------- orientation


def _oblique(affine: np.ndarray, degrees: float) -> np.ndarray:
    theta = np.radians(degrees)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    return rotation @ affine


def _flipped(affine: np.ndarray) -> np.ndarray:
    flipped = affine.copy()
    flipped[0, :] *= -1
    return flipped


def test_oblique_image_is_usable_with_a_note(dataset: Path, esims: Protocol) -> None:
    path = image_path(dataset, "01", "M24", "T1w")
    write_image(path, smooth_data(), _oblique(skeleton_affine(dataset), 10.0))

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_OK
    s = find_session(report, "01", "M24")
    assert s.files["T1w"] == path
    assert s.problems == {}
    note = "oblique acquisition (10.0 degrees off the scanner axes)"
    assert [n for n in s.notes if n.startswith(path.name)] == [f"{path.name}: {note}"]
    assert f"note:     {path.name}: {note}" in session_block(report, "01", "M24")


def test_left_right_flipped_storage_is_recorded_not_noted(dataset: Path, esims: Protocol) -> None:
    # Before: a note per image ("left-right flipped (radiological) voxel order"), four
    # per session of our own simulator: noise a real cohort would drown in.
    path = image_path(dataset, "01", "M24", "T1w")
    write_image(path, smooth_data(), _flipped(skeleton_affine(dataset)))

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_OK
    s = find_session(report, "01", "M24")
    assert s.files["T1w"] == path and s.problems == {}
    assert not [n for n in s.notes if n.startswith(path.name)]
    assert "note:" not in session_block(report, "01", "M24")
    (entry,) = [
        e
        for e in report.as_dict()["sessions"]
        if (e["participant_id"], e["session"]) == ("sub-01", "ses-M24")
    ]
    assert entry["orientation"]["T1w"][0] == "L"  # the x axis runs right to left
    assert entry["orientation"]["T2w"][0] == "R"


# --------------------------------------------------------------------------- layout


def test_session_folder_without_images_has_every_role_missing(
    dataset: Path, esims: Protocol
) -> None:
    (dataset / "sub-01" / "ses-M36" / "anat").mkdir(parents=True)

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_INCOMPLETE
    s = find_session(report, "01", "M36")
    assert s.files == {}
    assert s.problems == dict.fromkeys(ROLES, "missing")
    assert s.visit_month is None
    assert any("visit month unknown" in n for n in s.notes), s.notes
    block = session_block(report, "01", "M36")
    assert "present:  none" in block
    for role in ROLES:
        assert f"missing:  {role}" in block
    assert_only_damaged(report, "01", "M36")


def test_missing_dataset_description_is_fatal(dataset: Path, esims: Protocol) -> None:
    (dataset / "dataset_description.json").unlink()

    report = validate_dataset(dataset, esims)

    assert report.exit_code == EXIT_UNUSABLE
    assert report.dataset is None
    assert report.fatal is not None
    assert "dataset_description.json is missing" in report.fatal
    assert str(dataset) in report.fatal
    assert report.lines() == [f"ERROR: {report.fatal}"]
    assert report.as_dict() == {"protocol": "esims", "exit_code": 2, "fatal": report.fatal}


def test_folder_that_does_not_exist_is_fatal(tmp_path: Path, esims: Protocol) -> None:
    report = validate_dataset(tmp_path / "nowhere", esims)
    assert report.exit_code == EXIT_UNUSABLE
    assert report.fatal is not None
    assert "nowhere: no such folder" in report.fatal


@pytest.mark.parametrize("label", ["sub-01", "01"])
def test_participant_filter(dataset: Path, esims: Protocol, label: str) -> None:
    report = validate_dataset(dataset, esims, participant_labels=[label])

    assert report.exit_code == EXIT_OK
    assert report.dataset is not None
    assert list(report.dataset.participants) == ["01"]
    assert [(s.participant, s.session) for s in report.dataset.sessions] == [
        ("01", s) for s in SESSIONS
    ]
    assert "sub-02" not in summary(report)


def test_participant_filter_with_unknown_label_is_reported(dataset: Path, esims: Protocol) -> None:
    report = validate_dataset(dataset, esims, participant_labels=["01", "sub-99"])
    assert report.dataset is not None
    assert report.dataset.problems == ("participant(s) not found: sub-99",)
    assert report.exit_code == EXIT_INCOMPLETE
    assert "PROBLEM: participant(s) not found: sub-99" in summary(report)


def test_no_session_with_reading_space_is_unusable(
    make_dataset: DatasetFactory, esims: Protocol
) -> None:
    root = make_dataset(omit=[(p, s, "T2w") for p in ARMS for s in SESSIONS])

    report = validate_dataset(root, esims)

    assert report.exit_code == EXIT_UNUSABLE
    assert report.usable_sessions == []
    assert report.dataset is not None
    for s in report.dataset.sessions:
        assert s.problems == {"T2w": "missing"}
        # PDw has nothing to pair with, but is itself a usable image.
        assert "PDw" in s.files
    assert "dataset is UNUSABLE" in summary(report)


def test_one_session_with_reading_space_is_enough(
    make_dataset: DatasetFactory, esims: Protocol
) -> None:
    omit = [(p, s, "T2w") for p in ARMS for s in SESSIONS if (p, s) != ("02", "M24")]
    report = validate_dataset(make_dataset(omit=omit), esims)
    assert report.exit_code == EXIT_INCOMPLETE
    assert [(s.participant, s.session) for s in report.usable_sessions] == [("02", "M24")]


# --------------------------------------------------------------------------- JSON


def test_json_round_trips_and_lists_the_same_problems(
    make_dataset: DatasetFactory, esims: Protocol
) -> None:
    root = make_dataset(omit=[("01", "M12", "T1w_gad")])
    image_path(root, "02", "M00", "T1w").write_bytes(b"")
    stray = anat_path(root, "02", "M24", suffix="T2starw")
    write_image(stray, smooth_data(), skeleton_affine(root))
    report = validate_dataset(root, esims)

    loaded = json.loads(report.to_json())

    assert loaded == report.as_dict()
    assert loaded["protocol"] == "esims"
    assert loaded["exit_code"] == EXIT_INCOMPLETE == report.exit_code
    assert loaded["fatal"] is None
    assert loaded["dataset"] == {
        "root": str(root.resolve()),
        "name": "mriproc skeleton dataset (esims)",
    }
    assert loaded["problems"] == []
    by_key = {(s["participant_id"], s["session"]): s for s in loaded["sessions"]}
    assert len(by_key) == 6
    assert report.dataset is not None
    for s in report.dataset.sessions:
        entry = by_key[(s.participant_id, s.session_id)]
        assert entry["problems"] == s.problems
        assert entry["visit_month"] == s.visit_month
        assert entry["arm"] == ARMS[s.participant]
        assert entry["present"] == {role: str(p) for role, p in s.files.items()}

    m12 = by_key[("sub-01", "ses-M12")]
    assert m12["problems"] == {"T1w_gad": "missing"}
    assert m12["unavailable_endpoints"]["cel_count"] == "needs T1w_gad"
    assert m12["unavailable_endpoints"]["cel_volume"] == "needs T1w_gad"
    m00 = by_key[("sub-02", "ses-M00")]
    assert m00["problems"] == {"T1w": "sub-02_ses-M00_T1w.nii.gz: empty file (0 bytes)"}
    assert by_key[("sub-02", "ses-M24")]["ignored"] == {
        str(stray): "suffix 'T2starw' is not a contrast of protocol 'esims'"
    }


# --------------------------------------------------------------------------- other protocol


def test_flair_protocol_on_esims_skeleton_is_unusable(dataset: Path) -> None:
    flair = load_protocol("flair")

    report = validate_dataset(dataset, flair)

    assert report.exit_code == EXIT_UNUSABLE
    assert report.dataset is not None
    assert len(report.dataset.sessions) == 6
    for s in report.dataset.sessions:
        assert s.problems == {"FLAIR": "missing"}
        assert set(s.files) == {"T2w", "T1w", "T1w_gad"}
        pdw = image_path(dataset, s.participant, s.session, "PDw")
        assert s.ignored == ((pdw, "suffix 'PDw' is not a contrast of protocol 'flair'"),)
    text = summary(report)
    assert "missing:  FLAIR" in text
    assert "0 of 6 session(s) complete; dataset is UNUSABLE" in text


# --------------------------------------------------------------------------- bad tables


@pytest.mark.parametrize(
    "relative", ["participants.tsv", "sub-01/sub-01_sessions.tsv"], ids=["participants", "sessions"]
)
def test_empty_tsv_is_a_problem_not_a_crash(dataset: Path, esims: Protocol, relative: str) -> None:
    (dataset / relative).write_bytes(b"")

    report = validate_dataset(dataset, esims)

    assert report.dataset is not None
    assert any(Path(relative).name in p and "cannot be read" in p for p in report.dataset.problems)
    assert report.exit_code == EXIT_INCOMPLETE


def test_nan_visit_month_is_reported_not_used(dataset: Path, esims: Protocol) -> None:
    tsv = dataset / "sub-01" / "sub-01_sessions.tsv"
    tsv.write_text("session_id\tvisit_month\nses-M00\tnan\nses-M12\t12\nses-M24\t24\n")

    report = validate_dataset(dataset, esims)

    assert report.dataset is not None
    assert any("sub-01_sessions.tsv" in p and "nan" in p for p in report.dataset.problems)
    months = [s.visit_month for s in report.dataset.sessions]
    assert all(m is None or np.isfinite(m) for m in months), months

    def reject(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    json.loads(report.to_json(), parse_constant=reject)


def test_ragged_participants_row_is_reported(dataset: Path, esims: Protocol) -> None:
    (dataset / "participants.tsv").write_text(
        "participant_id\tarm\nsub-01\tplacebo\textra\nsub-02\tivig\n"
    )
    report = validate_dataset(dataset, esims)
    assert report.dataset is not None
    assert any(p.startswith("participants.tsv: cannot be read") for p in report.dataset.problems)
    assert report.exit_code == EXIT_INCOMPLETE


def test_session_listed_twice_in_sessions_tsv_is_reported(dataset: Path, esims: Protocol) -> None:
    tsv = dataset / "sub-01" / "sub-01_sessions.tsv"
    tsv.write_text("session_id\tvisit_month\nses-M00\t0\nses-M12\t11\nses-M12\t13\n")
    found = discover_dataset(dataset, esims)
    assert "sub-01_sessions.tsv: ses-M12 is listed twice; its months are not used" in found.problems
    m12 = next(s for s in found.sessions if s.participant == "01" and s.session == "M12")
    assert (m12.visit_month, m12.visit_month_source) == (12.0, "protocol esims")


def test_unknown_session_label_is_reported(dataset: Path, esims: Protocol) -> None:
    found = discover_dataset(dataset, esims, session_labels=["ses-M12", "M36"])
    assert {s.session for s in found.sessions} == {"M12"}
    assert "session(s) not found: ses-M36" in found.problems


def test_gzip_cut_in_its_trailer_is_unusable(dataset: Path, esims: Protocol) -> None:
    path = image_path(dataset, "01", "M00", "T1w")
    path.write_bytes(path.read_bytes()[:-4])  # only the length field of the trailer lost
    found = discover_dataset(dataset, esims)
    session = next(s for s in found.sessions if s.participant == "01" and s.session == "M00")
    assert session.problems["T1w"].startswith(f"{path.name}: corrupt or truncated gzip file")


def test_comparisons_need_the_earlier_visit(make_dataset: DatasetFactory, esims: Protocol) -> None:
    root = make_dataset(omit=[("01", "M00", "PDw"), ("01", "M12", "T1w_gad")])
    found = discover_dataset(root, esims)
    m00, m12, m24 = (s for s in found.sessions if s.participant == "01")
    baseline = found.unavailable_endpoints(m00, esims)
    assert baseline["t2_lesion_count"] == "needs PDw"
    assert "new_t2_count" not in baseline and "pbvc" not in baseline  # no comparison at baseline
    follow_up = found.unavailable_endpoints(m12, esims)
    assert follow_up["new_t2_count"] == "needs PDw at ses-M00"
    assert follow_up["new_t2_count_vs_baseline"] == "needs PDw at ses-M00"
    assert follow_up["active_scan"] == "needs T1w_gad, PDw at ses-M00"
    # PCF needs a tissue model from 2 of PDw, T2w: without baseline PDw there is no
    # baseline PCF, so no PCF change either.
    tissue = "needs PDw (missing): at least 2 of PDw, T2w for the tissue model"
    assert follow_up["pcf_change_pct"] == tissue + " at ses-M00"
    assert baseline["pcf"] == tissue
    last = found.unavailable_endpoints(m24, esims)
    assert "new_t2_count" not in last  # M12 has PDw and T2w; its missing T1w_gad is irrelevant
    assert "active_scan" not in last
    assert last["enlarging_t2_count_vs_baseline"] == "needs PDw at ses-M00"


def test_a_follow_up_lost_with_its_failed_baseline_says_so(dataset: Path, esims: Protocol) -> None:
    """per_participant: a follow-up without result names its failed baseline; per_visit not."""
    from dataclasses import replace

    from mriproc.run import _baseline_failure
    from mriproc.workflows.visit import visit_wf_name

    found = discover_dataset(dataset, esims)
    sessions = [s for s in found.sessions if s.participant == found.sessions[0].participant]
    baseline, followup = sessions[0], sessions[1]
    crashes = {visit_wf_name(baseline): ("boom", "crash.pklz")}
    assert _baseline_failure(followup, sessions, found, esims, crashes) == baseline.session_id
    assert _baseline_failure(followup, sessions, found, esims, {}) is None
    assert _baseline_failure(baseline, sessions, found, esims, crashes) is None
    per_visit = replace(esims, registration=replace(esims.registration, template_fit="per_visit"))
    assert _baseline_failure(followup, sessions, found, per_visit, crashes) is None
