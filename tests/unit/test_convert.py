"""``mriproc convert``: real dcm2niix on small DICOM series written by mriproc and on real
scanners' series (``../shared/data/dicom``, skipped when absent)."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids_validator import BIDSValidator
from convert_command import convert
from dicom_trees import (
    CORRECTED_2D,
    CORRECTED_3D,
    NOT_CORRECTED,
    NOWAK,
    ROSSI,
    compress_tree,
    delete_attribute,
    find_identifiers,
    identifiers_of,
    scramble_into,
    set_attribute,
    study,
    tree_state,
    truncate,
    write_mprage,
    write_series,
)

from mriproc.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from mriproc.convert import REPORT, ConvertResult, convert_dicom
from mriproc.io.conversion_mapping import read_mapping
from mriproc.series_roles import DUAL_ECHO, SKIP, load_heuristics

ROOT = Path(__file__).resolve().parents[2]
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
    assert by_number[("n/a", "1")][2] == "localiser (from SeriesDescription/ProtocolName)"
    assert "diffusion" in by_number[("n/a", "6")][2]
    assert by_number[("n/a", "7")][2] == "modality CT is not converted"
    assert "1 slice(s) missing" in by_number[("sub-001", "8")][2]
    assert "pixel data cut short" in by_number[("sub-001", "9")][2]
    # The damaged file is named, with the identifying folder redacted.
    assert "[redacted]_[redacted]/export/s9/9_" in by_number[("sub-001", "9")][2]
    assert "2 file(s) not DICOM" in set(rows.reason)
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


# --------------------------------------------------------------------------- nothing left out


def test_a_gzip_tree_converts_as_the_plain_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    write_series(plain / "a", ROSSI, ROSSI_STUDY, 1, "AAHead_Scout")
    write_series(
        plain / "b", ROSSI, ROSSI_STUDY, 2, "PD_T2_SE_AX", echo_times_ms=(20.0, 80.0),
        repetition_time_ms=2500.0,
    )  # fmt: skip
    write_series(plain / "c" / "deep", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    (plain / "README.txt").write_text("exported by the PACS\n")
    # *.dcm.gz, and every fourth file gzip-compressed under its plain name.
    compress_tree(plain, packed, keep_names=4)
    before = tree_state(packed)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    for tree in (plain, packed):
        status, output = convert(capsys, tree, tmp_path / f"bids-{tree.name}")
        assert status == EXIT_OK, output

    converted = tree_state(tmp_path / "bids-plain")
    assert converted == tree_state(tmp_path / "bids-packed")  # every byte, the report too
    assert sum(name.endswith(".nii.gz") for name in converted) == 3
    assert tree_state(packed) == before  # nothing decompressed next to the input
    assert list(temporary.iterdir()) == []  # the decompressed copies are gone


def _left_out_tree(root: Path, work: Path) -> None:
    """A T1 to convert and one of each kind of file that convert does not convert."""
    write_series(root / "t1", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    write_series(root / "scout", ROSSI, ROSSI_STUDY, 1, "AAHead_Scout")
    # T1-like timing (short TE and TR): T1w by timing alone.
    write_series(
        root / "fmap", ROSSI, ROSSI_STUDY, 4, "gre_field_mapping", echo_times_ms=(7.38,),
        repetition_time_ms=488.0,
    )  # fmt: skip
    asl = write_series(
        root / "asl", ROSSI, ROSSI_STUDY, 5, "ep2d_pasl", echo_times_ms=(13.0,),
        repetition_time_ms=2500.0,
    )  # fmt: skip
    set_attribute(asl, "SequenceName", "*epfid2d1_64")  # the BOLD sequence name
    write_series(
        root / "odd", ROSSI, ROSSI_STUDY, 6, "mystery", echo_times_ms=(50.0,),
        repetition_time_ms=1200.0,
    )  # fmt: skip
    (root / "README.txt").write_text("exported by the PACS\n")
    cut = write_series(work / "cut", ROSSI, ROSSI_STUDY, 7, "T1_SE_SAG")[0]
    truncate(cut, 300)  # inside the header: no series
    shutil.move(cut, root / "cut.dcm")
    # A 7z archive (zip and tar ones are unpacked): not read.
    (root / "more.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(64))


def _convert(dicom: Path, bids: Path, mapping: str = "") -> ConvertResult:
    """``convert_dicom`` itself (its result), with an optional mapping file's rows."""
    rules = load_heuristics()
    table = None
    if mapping:
        path = bids.with_name(bids.name + "-mapping.tsv")
        path.write_text("field\tvalue\tset\tto\n" + mapping)
        table = read_mapping(path, roles=[*rules.roles, DUAL_ECHO, SKIP])
    # An earlier main() left its handler on a stream pytest has closed since.
    logger = logging.getLogger("mriproc")
    handlers, propagate = logger.handlers[:], logger.propagate
    logger.handlers[:], logger.propagate = [], True
    try:
        return convert_dicom(dicom, bids, rules=rules, mapping=table)
    finally:
        logger.handlers[:], logger.propagate = handlers, propagate


def test_the_summary_counts_every_file_not_converted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "dicom"
    _left_out_tree(tree, tmp_path)

    result = _convert(tree, tmp_path / "bids")

    assert result.summary() == [
        "not converted: 1 file(s) not DICOM",
        "not converted: 1 file(s) damaged or unreadable",
        "not converted: 1 file(s) not read (archives or compressed files: unpack them and run "
        "again)",
        "not converted: 6 file(s) of series whose weighting was not recognised (give their "
        "roles in a mapping file) (1 series)",
        "not converted: 18 file(s) of 3 non-structural series (localiser: 6; field map: 6; "
        "arterial spin labelling (ASL) or perfusion: 6)",
    ]
    converted = 6  # the T1
    assert result.files == 33 == converted + sum(group.files for group in result.left_out)
    assert not result.complete
    rows = report(tmp_path / "bids")
    by_number = {r.series_number: r for r in rows.itertuples() if r.series_number != "n/a"}
    assert by_number["3"].roles == "T1w"
    assert by_number["4"].reason == "field map (from SeriesDescription/ProtocolName)"
    assert by_number["5"].reason == (
        "arterial spin labelling (ASL) or perfusion (from SeriesDescription/ProtocolName)"
    )
    assert by_number["6"].status == "skipped"
    assert "weighting not recognised" in by_number["6"].reason
    failed = set(rows[rows.status == "failed"].reason)
    assert failed == {
        "cut.dcm: no SeriesInstanceUID (damaged or truncated header)",
        "more.7z: 7z archive, not unpacked: unpack it and run again",
    }
    # On the console at the default verbosity, with the exit status.
    status, output = convert_quietly(capsys, tree, tmp_path / "bids2")
    assert status == EXIT_FAILURE
    for line in result.summary():
        assert f"mriproc: WARNING: {line}" in output


def convert_quietly(capsys: pytest.CaptureFixture[str], dicom: Path, bids: Path) -> tuple[int, str]:
    status = main(["convert", str(dicom), str(bids)])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_the_exit_status_says_when_something_wanted_was_left_out(tmp_path: Path) -> None:
    tree = tmp_path / "dicom"
    _left_out_tree(tree, tmp_path)
    (tree / "cut.dcm").unlink()
    (tree / "more.7z").unlink()
    # Left out on purpose only (non-structural series, a file that is not DICOM, a
    # series the mapping file skips): success.
    skip_odd = "SeriesDescription\tmystery\trole\tskip\n"
    result = _convert(tree, tmp_path / "ok", skip_odd)
    assert result.complete
    assert [g.wanted for g in result.left_out] == [False, False]
    # An MR volume whose weighting is not recognised may be wanted.
    assert not _convert(tree, tmp_path / "odd").complete
    # A damaged file counts even in a series that is not converted anyway.
    fmap = sorted((tree / "fmap").iterdir())
    truncate(fmap[2], fmap[2].stat().st_size - 100)
    result = _convert(tree, tmp_path / "damaged", skip_odd)
    assert not result.complete
    assert "not converted: 1 file(s) damaged or unreadable" in result.summary()
    row = report(tmp_path / "damaged").query("series_number == '4'").iloc[0]
    assert row.status == "skipped"
    assert row.reason.startswith(
        "field map (from SeriesDescription/ProtocolName); 1 damaged file(s): "
        f"fmap/{fmap[2].name}: pixel data cut short"
    )


def test_damaged_series_and_secondary_captures_are_named_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "dicom"
    write_series(tree / "ok", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    bad = write_series(tree / "bad", ROSSI, ROSSI_STUDY, 7, "t1_mprage_sag")
    for path in bad:
        truncate(path, path.stat().st_size - 100)
    capture = write_series(tree / "sc", ROSSI, ROSSI_STUDY, 99, "T1 summary screen")
    delete_attribute(capture, "ImagePositionPatient")
    set_attribute(capture, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")

    status, _ = convert(capsys, tree, tmp_path / "bids")

    assert status == EXIT_FAILURE
    rows = report(tmp_path / "bids").set_index("series_number")
    assert "modality unknown" not in " ".join(rows.reason)
    assert rows.loc["7"].series_description == "t1_mprage_sag"
    assert rows.loc["7"].status == "failed"
    assert rows.loc["7"].reason.startswith(
        "no readable image (every image file is damaged); 6 damaged file(s): "
        "bad/IM_0001.dcm: pixel data cut short"
    )
    assert rows.loc["99"].series_description == "T1 summary screen"
    assert rows.loc["99"].status == "skipped"
    assert rows.loc["99"].reason == (
        "screen capture or secondary capture (from SOP class Secondary Capture Image Storage)"
    )
    assert rows.loc["3"].status == "converted"


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


@pytest.mark.parametrize(
    "case", ["mapping-out-inside", "no-folder", "no-dicom", "only-archives", "bad-mapping"]
)
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
        expected = "no such folder or archive"
    elif case == "no-dicom":
        dicom = tmp_path / "text"
        dicom.mkdir()
        (dicom / "a.txt").write_text("x")
        expected = "no DICOM files found (1 other file(s))"
    elif case == "only-archives":
        packed = tmp_path / "packed"
        packed.mkdir()
        (packed / "export.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(64))
        dicom = packed
        expected = (
            "no DICOM files found (0 other file(s)); 1 file(s) not read (7z archive, not "
            "unpacked: unpack it and run again)"
        )
    else:
        (tmp_path / "m.tsv").write_text(f"field\tvalue\tset\tto\nPatientID\t{ROSSI.patient_id}\n")
        extra = ["--mapping", str(tmp_path / "m.tsv")]
        expected = "line 2: cannot set"
    status, output = convert(capsys, dicom, bids, *extra)
    assert status == EXIT_USAGE
    assert expected in output
    assert ROSSI.patient_id not in output
    assert not bids.exists()


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


@pytest.mark.skipif(not SHARED_DICOM.is_dir(), reason="../shared/data/dicom is not present")
def test_a_real_series_converts_the_same_compressed_or_zipped_and_is_named_when_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = SHARED_DICOM / "siemens_t1_fl2d_sag_hfs" / "dicom"
    packed = tmp_path / "packed"
    compress_tree(plain, packed, keep_names=5)
    # And as a zip archive given as the input, as sites send exports.
    zipped = tmp_path / "export.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(plain.iterdir()):
            archive.write(path, f"export/{path.name}")
    for name, tree in (("plain", plain), ("packed", packed), ("zipped", zipped)):
        status, output = convert(capsys, tree, tmp_path / name)
        assert status == EXIT_OK, output
    anat = Path("sub-001", "ses-M00", "anat")
    for image in ("sub-001_ses-M00_T1w.nii.gz", "sub-001_ses-M00_T1w.json"):
        for other in ("packed", "zipped"):
            assert (tmp_path / "plain" / anat / image).read_bytes() == (
                tmp_path / other / anat / image
            ).read_bytes()
    # Every file's pixel data cut short: the series is still named.
    damaged = tmp_path / "damaged"
    shutil.copytree(plain, damaged)
    for path in damaged.iterdir():
        truncate(path, path.stat().st_size - 1000)
    status, _ = convert(capsys, damaged, tmp_path / "bids-damaged")
    assert status == EXIT_FAILURE
    (row,) = report(tmp_path / "bids-damaged").itertuples()
    assert (row.series_number, row.series_description, row.status) == ("3", "t1_fl2d_sag", "failed")


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


# --------------------------------------------------------------------------- uncorrected copies


def _anat(bids: Path) -> dict[str, dict[str, object]]:
    """The images of sub-001 ses-M00 -> their sidecars."""
    anat = bids / "sub-001" / "ses-M00" / "anat"
    return {
        p.name: json.loads(p.with_name(p.name.removesuffix(".nii.gz") + ".json").read_text())
        for p in sorted(anat.glob("*.nii.gz"))
    }


def test_an_uncorrected_copy_is_skipped_for_its_distortion_corrected_series(
    tmp_path: Path,
) -> None:
    # Siemens XA30: one MPRAGE saved twice (ImageType ND, and DIS2D); one T2 saved
    # twice with the "_ND" description of the uncorrected copy.
    tree = tmp_path / "dicom"
    write_mprage(tree / "nd", ROSSI, ROSSI_STUDY, 4, "MPRAGE", NOT_CORRECTED)
    write_mprage(tree / "dis", ROSSI, ROSSI_STUDY, 5, "MPRAGE", CORRECTED_2D)
    for number, description in ((6, "t2_tse_tra_ND"), (7, "t2_tse_tra")):
        write_series(
            tree / f"t2-{number}", ROSSI, ROSSI_STUDY, number, description,
            echo_times_ms=(100.0,), repetition_time_ms=4000.0,
        )  # fmt: skip

    result = _convert(tree, tmp_path / "bids")

    images = _anat(tmp_path / "bids")
    assert sorted(images) == ["sub-001_ses-M00_T1w.nii.gz", "sub-001_ses-M00_T2w.nii.gz"]
    assert images["sub-001_ses-M00_T1w.nii.gz"]["SeriesNumber"] == 5
    assert "DIS2D" in images["sub-001_ses-M00_T1w.nii.gz"]["ImageType"]  # type: ignore[operator]
    assert images["sub-001_ses-M00_T2w.nii.gz"]["SeriesNumber"] == 7
    rows = report(tmp_path / "bids").set_index("series_number")
    assert (rows.loc["4"].status, rows.loc["4"].reason) == (
        "skipped",
        "uncorrected copy (ImageType ND) of series 5 'MPRAGE'; "
        "the distortion-corrected series is converted",
    )
    assert (rows.loc["6"].status, rows.loc["6"].reason) == (
        "skipped",
        "uncorrected copy (SeriesDescription suffix _ND) of series 7 't2_tse_tra'; "
        "the distortion-corrected series is converted",
    )
    assert (rows.loc["5"].status, rows.loc["5"].outputs) == (
        "converted",
        "sub-001/ses-M00/anat/sub-001_ses-M00_T1w.nii.gz",
    )
    assert rows.loc["7"].status == "converted"
    # Left out on purpose: counted in the summary, not a failure.
    assert result.complete
    assert result.count("failed") == 0
    assert result.summary() == [
        "not converted: 12 file(s) of 2 uncorrected series (ND) whose distortion-corrected "
        "copy is converted"
    ]
    assert result.files == 24 == 12 + sum(group.files for group in result.left_out)


def test_an_uncorrected_series_without_a_corrected_partner_converts(tmp_path: Path) -> None:
    tree = tmp_path / "dicom"
    write_mprage(tree / "nd", ROSSI, ROSSI_STUDY, 3, "t1_mprage_sag", NOT_CORRECTED)
    write_mprage(tree / "dis", ROSSI, ROSSI_STUDY, 4, "t1_mprage_sag", CORRECTED_2D)
    # Saved only without distortion correction: no copy of it is converted instead.
    flair = write_series(
        tree / "flair", ROSSI, ROSSI_STUDY, 6, "t2_flair_tra_ND", echo_times_ms=(120.0,),
        repetition_time_ms=9000.0, inversion_time_ms=2500.0,
    )  # fmt: skip
    set_attribute(flair, "ImageType", NOT_CORRECTED)

    result = _convert(tree, tmp_path / "bids")

    images = _anat(tmp_path / "bids")
    assert sorted(images) == ["sub-001_ses-M00_FLAIR.nii.gz", "sub-001_ses-M00_T1w.nii.gz"]
    assert images["sub-001_ses-M00_FLAIR.nii.gz"]["SeriesNumber"] == 6
    assert images["sub-001_ses-M00_T1w.nii.gz"]["SeriesNumber"] == 4
    rows = report(tmp_path / "bids").set_index("series_number")
    assert rows.loc["6"].status == "converted"
    assert rows.loc["6"].roles == "FLAIR"
    assert rows.loc["3"].status == "skipped"
    assert result.complete


def test_different_series_of_one_role_still_convert_as_runs(tmp_path: Path) -> None:
    # Two T1w series that are not copies of each other (another sequence, timing and
    # description), even though one is uncorrected and the other corrected: both are
    # converted, as runs.  The FLAIR saved twice gives one image.
    tree = tmp_path / "dicom"
    t1_se = write_series(tree / "se", ROSSI, ROSSI_STUDY, 3, "T1_SE_AX")
    set_attribute(t1_se, "ImageType", NOT_CORRECTED)
    write_mprage(tree / "mprage", ROSSI, ROSSI_STUDY, 5, "t1_mprage_sag", CORRECTED_2D)
    for number, image_type in ((8, NOT_CORRECTED), (9, CORRECTED_3D)):
        flair = write_series(
            tree / f"flair-{number}", ROSSI, ROSSI_STUDY, number, "t2_flair_tra",
            echo_times_ms=(120.0,), repetition_time_ms=9000.0, inversion_time_ms=2500.0,
        )  # fmt: skip
        set_attribute(flair, "ImageType", image_type)

    result = _convert(tree, tmp_path / "bids")

    images = _anat(tmp_path / "bids")
    assert {name: sidecar["SeriesNumber"] for name, sidecar in images.items()} == {
        "sub-001_ses-M00_FLAIR.nii.gz": 9,
        "sub-001_ses-M00_run-1_T1w.nii.gz": 3,
        "sub-001_ses-M00_run-2_T1w.nii.gz": 5,
    }
    rows = report(tmp_path / "bids").set_index("series_number")
    assert rows.loc["8"].reason == (
        "uncorrected copy (ImageType ND) of series 9 't2_flair_tra'; "
        "the distortion-corrected series is converted"
    )
    assert result.complete
