"""``mriproc convert`` end to end: real dcm2niix on DICOM written by mriproc, the simulator
and real scanners (``../shared/data/dicom``, skipped when absent)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_validator import BIDSValidator
from dicom_trees import (
    NOWAK,
    ROSSI,
    find_identifiers,
    identifiers_of,
    scramble_into,
    set_attribute,
    study,
    truncate,
    write_series,
)

from mriproc.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from mriproc.convert import REPORT

ROOT = Path(__file__).resolve().parents[1]
SHARED_DICOM = ROOT.parent / "shared" / "data" / "dicom"
ROSSI_STUDY = study("20200115", "ACC-ROSSI-1", "rossi-1")
NOWAK_STUDY = study("20200301", "ACC-NOWAK-1", "nowak-1")
IDENTIFIERS = [
    *identifiers_of(ROSSI, ROSSI_STUDY.study_date),
    *identifiers_of(NOWAK, NOWAK_STUDY.study_date),
    ROSSI_STUDY.accession_number,
    NOWAK_STUDY.accession_number,
]


def report(bids: Path) -> pd.DataFrame:
    return pd.read_csv(bids / REPORT, sep="\t", dtype=str, keep_default_na=False)


def convert(
    capsys: pytest.CaptureFixture[str], dicom: Path, bids: Path, *extra: str
) -> tuple[int, str]:
    status = main(["-vv", "convert", str(dicom), str(bids), *extra])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


# --------------------------------------------------------------------------- a messy tree


@pytest.fixture(scope="module")
def messy_dicom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two patients: every kind of series, bad files, non-DICOM files, scrambled names."""
    work = tmp_path_factory.mktemp("messy")
    tree = work / "incoming"
    # Folders named after the patient, as exports often are: names must not leak.
    rossi = tree / "ROSSI_ANNA" / "export"
    series = {
        1: write_series(work / "1", ROSSI, ROSSI_STUDY, 1, "AAHead_Scout"),
        2: write_series(
            work / "2", ROSSI, ROSSI_STUDY, 2, "PD_T2_SE_AX", echo_times_ms=(20.0, 80.0),
            repetition_time_ms=2500.0,
        ),
        3: write_series(work / "3", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX"),
        4: write_series(
            work / "4", ROSSI, ROSSI_STUDY, 4, "T1_SE_AX_POST", contrast_agent="Gd-DTPA",
            transfer_syntax="rle",
        ),
        5: write_series(
            work / "5", ROSSI, ROSSI_STUDY, 5, "FLAIR_AX", echo_times_ms=(120.0,),
            repetition_time_ms=9000.0, inversion_time_ms=2500.0,
        ),
        6: write_series(work / "6", ROSSI, ROSSI_STUDY, 6, "ep2d_diff_trace"),
        7: write_series(work / "7", ROSSI, ROSSI_STUDY, 7, "HEAD_CT"),
        8: write_series(
            work / "8", ROSSI, ROSSI_STUDY, 8, "T2_TSE_AX", echo_times_ms=(100.0,),
            repetition_time_ms=4000.0,
        ),
        9: write_series(work / "9", ROSSI, ROSSI_STUDY, 9, "T1_SE_AX_REPEAT"),
    }  # fmt: skip
    set_attribute(series[7], "Modality", "CT")
    series[8][2].unlink()  # a missing slice
    truncate(series[9][1], series[9][1].stat().st_size - 500)  # an interrupted copy
    for number, files in series.items():
        # Mixed series in one folder (2 and 3), others one folder each.
        folder = rossi / ("mixed" if number in (2, 3) else f"s{number}")
        scramble_into([f for f in files if f.exists()], folder, f"{number}_")
    scramble_into(write_series(work / "n", NOWAK, NOWAK_STUDY, 3, "T1_SE_AX"), tree / "b", "i")
    (rossi / "mixed" / "README.txt").write_text("exported by the PACS\n")
    (tree / "DICOMDIR.bak").write_bytes(b"\0\1\2" * 50)
    return tree


@pytest.fixture(scope="module")
def messy_converted(
    messy_dicom: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, int, str]:
    work = tmp_path_factory.mktemp("messy-out")
    bids, mapping = work / "bids", work / "secure" / "mapping.tsv"
    with pytest.MonkeyPatch.context() as patch:
        import io
        import sys

        out, err = io.StringIO(), io.StringIO()
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        status = main(
            ["-vv", "convert", str(messy_dicom), str(bids), "--mapping-out", str(mapping)]
        )
    return bids, mapping, status, out.getvalue() + err.getvalue()


def test_every_series_is_reported_and_the_good_ones_convert(
    messy_converted: tuple[Path, Path, int, str],
) -> None:
    bids, _, status, output = messy_converted
    assert status == EXIT_FAILURE  # two series failed
    rows = report(bids)
    by_number = {
        (r.participant_id, r.series_number): (r.status, r.roles, r.reason)
        for r in rows.itertuples()
        if r.series_number != "n/a"
    }
    assert {k: v[0] for k, v in by_number.items()} == {
        ("n/a", "1"): "skipped",
        ("sub-001", "2"): "converted",
        ("sub-001", "3"): "converted",
        ("sub-001", "4"): "converted",
        ("sub-001", "5"): "converted",
        ("n/a", "6"): "skipped",
        ("n/a", "7"): "skipped",
        ("sub-001", "8"): "failed",
        ("sub-001", "9"): "failed",
        ("sub-002", "3"): "converted",
    }
    assert by_number[("sub-001", "2")][1] == "PDw,T2w"
    assert by_number[("sub-001", "4")][1] == "T1w_gad"
    assert by_number[("sub-001", "5")][1] == "FLAIR"
    assert by_number[("n/a", "1")][2] == "localiser"
    assert "diffusion" in by_number[("n/a", "6")][2]
    assert by_number[("n/a", "7")][2] == "modality CT is not converted"
    assert "1 slice(s) missing" in by_number[("sub-001", "8")][2]
    assert "pixel data cut short" in by_number[("sub-001", "9")][2]
    # The damaged file is named, with the identifying folder redacted.
    assert "[redacted]_[redacted]/export/s9/9_" in by_number[("sub-001", "9")][2]
    assert "2 file(s) that are not DICOM images of a series" in set(rows.reason)
    assert "series 8 (T2_TSE_AX): failed: 1 slice(s) missing" in output


def test_images_are_the_dicom_pixels_with_the_echoes_split(
    messy_converted: tuple[Path, Path, int, str],
) -> None:
    bids = messy_converted[0]
    anat = bids / "sub-001" / "ses-M00" / "anat"
    assert sorted(p.name for p in anat.glob("*.nii.gz")) == [
        "sub-001_ses-M00_FLAIR.nii.gz",
        "sub-001_ses-M00_PDw.nii.gz",
        "sub-001_ses-M00_T1w.nii.gz",
        "sub-001_ses-M00_T2w.nii.gz",
        "sub-001_ses-M00_ce-gadolinium_T1w.nii.gz",
    ]
    rng = np.random.default_rng(2)  # write_series draws each echo's volume in turn
    shape = (24, 20, 6)
    short, long = (rng.integers(1, 3000, shape).astype(np.float32) for _ in range(2))
    for name, expected in (("PDw", short), ("T2w", long)):
        img = nib.load(anat / f"sub-001_ses-M00_{name}.nii.gz")
        np.testing.assert_array_equal(np.asarray(img.dataobj), expected)
        assert json.loads((anat / f"sub-001_ses-M00_{name}.json").read_text())["EchoTime"] == (
            0.02 if name == "PDw" else 0.08
        )
    sidecar = json.loads((anat / "sub-001_ses-M00_ce-gadolinium_T1w.json").read_text())
    assert sidecar["ContrastBolusAgent"] == "Gd-DTPA"
    assert "InstitutionName" not in sidecar
    assert (bids / "sub-002" / "ses-M00" / "anat" / "sub-002_ses-M00_T1w.nii.gz").is_file()


def test_output_is_valid_bids_with_participants_and_sessions(
    messy_converted: tuple[Path, Path, int, str],
) -> None:
    bids = messy_converted[0]
    validator = BIDSValidator()
    files = [p for p in bids.rglob("*") if p.is_file()]
    invalid = [p for p in files if not validator.is_bids("/" + p.relative_to(bids).as_posix())]
    assert invalid == []
    participants = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    assert participants.to_dict(orient="list") == {
        "participant_id": ["sub-001", "sub-002"],
        "sex": ["F", "M"],
        "age": ["48", "54"],
    }
    sessions = (bids / "sub-001" / "sub-001_sessions.tsv").read_text()
    assert sessions == "session_id\tvisit_month\tdays_from_baseline\nses-M00\t0\t0\n"
    assert not list(bids.glob(".mriproc-convert-*"))  # staging removed


def test_no_identifier_reaches_the_dataset_or_the_logs(
    messy_converted: tuple[Path, Path, int, str],
) -> None:
    bids, mapping, _, output = messy_converted
    assert find_identifiers(bids, [output], IDENTIFIERS) == []
    # The PatientID -> participant mapping goes where the user asked, and only there.
    text = mapping.read_text()
    assert "PatientID\tPID-4711X\tparticipant\t001" in text
    assert "PatientID\tPID-9815Y\tparticipant\t002" in text


def test_a_second_run_adds_nothing_and_overwrites_nothing(
    messy_dicom: Path,
    messy_converted: tuple[Path, Path, int, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bids = tmp_path / "bids"
    shutil.copytree(messy_converted[0], bids)
    before = {p: p.read_bytes() for p in bids.rglob("*.nii.gz")}
    status, output = convert(capsys, messy_dicom, bids)
    assert status == EXIT_FAILURE  # the two bad series are still bad
    assert {p: p.read_bytes() for p in bids.rglob("*.nii.gz")} == before
    rows = report(bids)
    second = rows[rows.conversion == "2"]
    assert sorted(second.status) == sorted(
        ["skipped"] * 3 + ["exists"] * 5 + ["failed"] * 2 + ["ignored"]
    )
    assert "Converted 0 series (0 new session(s)); 5 already in the dataset" in output


def test_the_same_dicom_gives_the_same_bytes(
    messy_dicom: Path,
    messy_converted: tuple[Path, Path, int, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = messy_converted[0]
    convert(capsys, messy_dicom, tmp_path / "again", "--mapping-out", str(tmp_path / "m.tsv"))
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(
        p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file()
    )
    for name in names:
        assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


# --------------------------------------------------------------------------- mapping and errors


def test_mapping_sets_labels_and_roles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dicom = tmp_path / "dicom"
    write_series(dicom / "a", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    post = write_series(dicom / "b", ROSSI, ROSSI_STUDY, 4, "T1 weird name")
    write_series(dicom / "c", ROSSI, ROSSI_STUDY, 5, "T1_SE_AX_EXTRA")
    mapping = tmp_path / "map.tsv"
    import pydicom

    uid = pydicom.dcmread(post[0]).SeriesInstanceUID
    mapping.write_text(
        "field\tvalue\tset\tto\n"
        f"PatientID\t{ROSSI.patient_id}\tparticipant\tMS017\n"
        f"SeriesInstanceUID\t{uid}\trole\tT1w_gad\n"
        "SeriesDescription\tT1_SE_AX_EXTRA\trole\tskip\n"
    )
    participants = tmp_path / "participants.tsv"
    participants.write_text(f"PatientID\tarm\tedss\n{ROSSI.patient_id}\tivig\t3.5\n")
    status, output = convert(
        capsys, dicom, tmp_path / "bids", "--mapping", str(mapping), "--participants",
        str(participants),
    )  # fmt: skip
    assert status == EXIT_OK, output
    anat = tmp_path / "bids" / "sub-MS017" / "ses-M00" / "anat"
    assert sorted(p.name for p in anat.glob("*.nii.gz")) == [
        "sub-MS017_ses-M00_T1w.nii.gz",
        "sub-MS017_ses-M00_ce-gadolinium_T1w.nii.gz",
    ]
    table = (tmp_path / "bids" / "participants.tsv").read_text()
    assert table == "participant_id\tsex\tage\tarm\tedss\nsub-MS017\tF\t48\tivig\t3.5\n"
    assert ROSSI.patient_id not in output


@pytest.mark.parametrize("case", ["mapping-out-inside", "no-folder", "no-dicom", "bad-mapping"])
def test_unusable_arguments_are_usage_errors_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    dicom, bids = tmp_path / "dicom", tmp_path / "bids"
    write_series(dicom, ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    extra: list[str] = []
    if case == "mapping-out-inside":
        extra = ["--mapping-out", str(bids / "code" / "map.tsv")]
        expected = "must not lie inside BIDS_DIR"
    elif case == "no-folder":
        dicom = tmp_path / "nothing"
        expected = "no such folder"
    elif case == "no-dicom":
        dicom = tmp_path / "text"
        dicom.mkdir()
        (dicom / "a.txt").write_text("x")
        expected = "no DICOM files found (1 other file(s))"
    else:
        (tmp_path / "m.tsv").write_text(f"field\tvalue\tset\tto\nPatientID\t{ROSSI.patient_id}\n")
        extra = ["--mapping", str(tmp_path / "m.tsv")]
        expected = "line 2: cannot set"
    status, output = convert(capsys, dicom, bids, *extra)
    assert status == EXIT_USAGE
    assert expected in output
    assert ROSSI.patient_id not in output
    assert not bids.exists()


# --------------------------------------------------------------------------- simulated trial


@pytest.fixture(scope="module")
def simulated_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated subject x two visits, as BIDS and as DICOM (about 15 s)."""
    out = tmp_path_factory.mktemp("sim") / "trial"
    assert main(["simulate", str(out), "--subjects", "1", "--visits", "0,12", "--format", "both",
                 "--seed", "7"]) == EXIT_OK  # fmt: skip
    return out


@pytest.mark.slow
def test_simulated_dicom_converts_to_the_simulated_bids(
    simulated_trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bids = tmp_path / "bids"
    status, output = convert(
        capsys, simulated_trial / "sourcedata" / "dicom", bids, "--participants",
        str(simulated_trial / "participants.tsv"),
    )  # fmt: skip
    assert status == EXIT_OK, output
    assert main(["validate", str(bids), "--protocol", "esims"]) == EXIT_OK
    assert "2 of 2 session(s) complete; dataset is complete" in capsys.readouterr().out
    converted = sorted(p.relative_to(bids) for p in bids.glob("sub-*/ses-*/anat/*.nii.gz"))
    simulated = sorted(
        p.relative_to(simulated_trial) for p in simulated_trial.glob("sub-*/ses-*/anat/*.nii.gz")
    )
    assert converted == simulated  # dual echo split and post-contrast found in every session
    for name in converted:
        ours, truth = nib.load(bids / name), nib.load(simulated_trial / name)
        np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(truth.dataobj))
        # The same grid to the bit (sform and qform), not just within a tolerance:
        # mriproc run's endpoints move with a 1e-5 mm shift (benchmarks/RESULTS.md).
        np.testing.assert_array_equal(ours.affine, truth.affine)
        np.testing.assert_array_equal(ours.header.get_qform(), truth.header.get_qform())
    assert (bids / "participants.tsv").read_text().splitlines()[1].startswith("sub-001\t")
    dicom_identifiers = _identifiers_in(simulated_trial / "sourcedata" / "dicom")
    assert find_identifiers(bids, [output], dicom_identifiers) == []


@pytest.mark.slow
def test_a_later_run_adds_the_new_visit(
    simulated_trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (patient,) = (simulated_trial / "sourcedata" / "dicom").iterdir()
    baseline, follow_up = sorted(patient.iterdir())
    first = tmp_path / "first" / patient.name
    shutil.copytree(baseline, first / baseline.name)
    bids = tmp_path / "bids"
    assert convert(capsys, first.parent, bids)[0] == EXIT_OK
    assert sorted(p.name for p in (bids / "sub-001").iterdir()) == [
        "ses-M00",
        "sub-001_sessions.tsv",
    ]
    baseline_bytes = {p: p.read_bytes() for p in bids.rglob("ses-M00/anat/*")}
    # The whole folder again: the baseline is recognised by its images, the visit is added.
    status, output = convert(capsys, simulated_trial / "sourcedata" / "dicom", bids)
    assert status == EXIT_OK, output
    assert sorted(p.name for p in (bids / "sub-001").iterdir()) == [
        "ses-M00", "ses-M12", "sub-001_sessions.tsv"
    ]  # fmt: skip
    assert {p: p.read_bytes() for p in bids.rglob("ses-M00/anat/*")} == baseline_bytes
    assert (bids / "sub-001" / "sub-001_sessions.tsv").read_text().splitlines()[1:] == [
        "ses-M00\t0\t0",
        "ses-M12\t12\t365",
    ]
    assert "Converted 3 series (1 new session(s)); 3 already in the dataset" in output
    # Only the new visit's folder, with the first run's mapping: the same participant.
    only_new = tmp_path / "new" / patient.name
    shutil.copytree(follow_up, only_new / follow_up.name)
    bids2 = tmp_path / "bids2"
    mapping = tmp_path / "mapping.tsv"
    convert(capsys, first.parent, bids2, "--mapping-out", str(mapping))
    assert convert(capsys, only_new.parent, bids2)[0] == EXIT_FAILURE  # who is this?
    assert not (bids2 / "sub-002").exists()
    status, output = convert(capsys, only_new.parent, bids2, "--mapping", str(mapping))
    assert status == EXIT_OK, output
    assert sorted(p.name for p in bids2.glob("sub-*/ses-*")) == ["ses-M00", "ses-M12"]


def _identifiers_in(dicom: Path) -> list[str]:
    """The identifying values of the simulator's DICOM, read with pydicom directly."""
    import pydicom

    values: set[str] = set()
    for path in dicom.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        name = str(ds.PatientName)
        values.update([name, *name.split("^"), ds.PatientID, ds.PatientBirthDate])
        values.update([ds.AccessionNumber, ds.InstitutionName, ds.StudyDate])
    return sorted(v for v in values if len(v) >= 3)


# --------------------------------------------------------------------------- real scanners


@pytest.mark.skipif(not SHARED_DICOM.is_dir(), reason="../shared/data/dicom is not present")
def test_real_scanner_series_convert_as_dcm2niix_and_are_pre_contrast_t1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bids = tmp_path / "bids"
    status, output = convert(capsys, SHARED_DICOM, bids)
    assert status == EXIT_OK, output
    rows = report(bids)
    converted = rows[rows.status == "converted"]
    assert sorted(converted.roles) == ["T1w", "T1w", "T1w"]
    # PatientIDs sort Phantom01 (Philips), crlab (Siemens), dicom (GE).
    vendors = {"001": "philips_t1w_tse", "002": "siemens_t1_fl2d_sag_hfs", "003": "ge_3d_t1_mprage"}
    for label, folder in vendors.items():
        image = bids / f"sub-{label}" / "ses-M00" / "anat" / f"sub-{label}_ses-M00_T1w.nii.gz"
        ours = json.loads(image.with_name(image.name.replace(".nii.gz", ".json")).read_text())
        reference_json = SHARED_DICOM / folder / "reference_dcm2niix.json"
        if not reference_json.is_file():
            reference_json = reference_json.with_suffix(".json.gz")
        text = reference_json.read_bytes()
        reference = json.loads(gzip.decompress(text) if reference_json.suffix == ".gz" else text)
        for key in (
            "EchoTime",
            "RepetitionTime",
            "SliceThickness",
            "SeriesNumber",
            "ImageOrientationPatientDICOM",
            "MRAcquisitionType",
            "InversionTime",
        ):
            assert ours.get(key) == pytest.approx(reference.get(key)), (folder, key)  # fmt: skip
        for key in ("InstitutionName", "StationName", "DeviceSerialNumber"):
            assert key not in ours
        reference_image = SHARED_DICOM / folder / "reference_dcm2niix.nii.gz"
        if reference_image.is_file():
            ref, img = nib.load(reference_image), nib.load(image)
            np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(ref.dataobj))
            np.testing.assert_allclose(img.affine, ref.affine, atol=1e-5)
    philips = rows[rows.series_description == "T1W_TSE_Sno_CSno_CSAIno"].reason.iloc[0]
    assert "1 non-image object(s) left out (Raw Data Storage)" in philips


def test_repeated_roles_get_runs_and_taken_names_are_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first"
    write_series(first / "a", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    write_series(first / "b", ROSSI, ROSSI_STUDY, 5, "T1_SE_AX_REPEAT")
    bids = tmp_path / "bids"
    assert convert(capsys, first, bids)[0] == EXIT_OK
    anat = bids / "sub-001" / "ses-M00" / "anat"
    assert sorted(p.name for p in anat.glob("*.nii.gz")) == [
        "sub-001_ses-M00_run-1_T1w.nii.gz",
        "sub-001_ses-M00_run-2_T1w.nii.gz",
    ]
    # Another T1w of the same day with other pixels, said to be this participant's:
    # its name is taken, and the file there is not replaced.
    second = tmp_path / "second"
    write_series(second / "c", ROSSI, ROSSI_STUDY, 13, "T1_SE_AX")
    write_series(second / "d", ROSSI, ROSSI_STUDY, 14, "T1_SE_AX")
    mapping = tmp_path / "map.tsv"
    mapping.write_text(
        "field\tvalue\tset\tto\n"
        f"PatientID\t{ROSSI.patient_id}\tparticipant\t001\n"
        f"PatientID\t{ROSSI.patient_id}\tbaseline_date\t{ROSSI_STUDY.study_date}\n"
    )
    before = {p.name: p.read_bytes() for p in anat.iterdir()}
    status, output = convert(capsys, second, bids, "--mapping", str(mapping))
    assert status == EXIT_FAILURE
    assert "already exist(s) with other images: not overwritten" in output
    assert {p.name: p.read_bytes() for p in anat.iterdir()} == before
