"""``mriproc convert`` on a simulated trial's DICOM (``mriproc simulate --format both``):
back to the simulated BIDS images, and a later visit added to the dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from convert_command import convert
from dicom_trees import find_identifiers

from mriproc.cli import EXIT_FAILURE, EXIT_OK, main


@pytest.fixture(scope="module")
def simulated_trial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One simulated subject x two visits, as BIDS and as DICOM (about 15 s)."""
    out = tmp_path_factory.mktemp("sim") / "trial"
    assert main(["simulate", str(out), "--subjects", "1", "--visits", "0,12", "--format", "both",
                 "--seed", "7"]) == EXIT_OK  # fmt: skip
    return out


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
        "sub-001_sessions.json",
        "sub-001_sessions.tsv",
    ]
    baseline_bytes = {p: p.read_bytes() for p in bids.rglob("ses-M00/anat/*")}
    # The whole folder again: the baseline is recognised by its images, the visit is added.
    status, output = convert(capsys, simulated_trial / "sourcedata" / "dicom", bids)
    assert status == EXIT_OK, output
    assert sorted(p.name for p in (bids / "sub-001").iterdir()) == [
        "ses-M00", "ses-M12", "sub-001_sessions.json", "sub-001_sessions.tsv"
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


def test_archives_and_compressed_files_convert_to_the_same_images(
    simulated_trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As sites send them: one zip of the export; or a mix of a .tar.gz, gzip-compressed
    files and a damaged archive, which is named while the rest converts."""
    import gzip
    import tarfile
    import zipfile

    dicom = simulated_trial / "sourcedata" / "dicom"
    (patient,) = dicom.iterdir()
    baseline, follow_up = sorted(patient.iterdir())
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(dicom.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(dicom).as_posix())
    status, output = convert(capsys, export, tmp_path / "from_zip")
    assert status == EXIT_OK, output
    _same_images(tmp_path / "from_zip", simulated_trial)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    with tarfile.open(mixed / "baseline.tar.gz", "w:gz") as tarred:
        tarred.add(baseline, f"{patient.name}/{baseline.name}")
    for path in sorted(follow_up.rglob("*")):
        if path.is_file():
            target = mixed / "followup" / path.relative_to(follow_up)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_name(target.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
    (mixed / "damaged.zip").write_bytes(export.read_bytes()[:4096])
    before = sorted(p.relative_to(mixed) for p in mixed.rglob("*"))
    status, output = convert(capsys, mixed, tmp_path / "from_mix")
    assert status == EXIT_FAILURE, output  # the damaged archive was left out
    _same_images(tmp_path / "from_mix", simulated_trial)
    assert sorted(p.relative_to(mixed) for p in mixed.rglob("*")) == before  # nothing added
    report = (tmp_path / "from_mix" / "code" / "mriproc" / "convert_series.tsv").read_text()
    (failed,) = [line for line in report.splitlines() if "\tfailed\t" in line]
    assert "damaged.zip: zip archive that cannot be unpacked" in failed


def _same_images(bids: Path, simulated_trial: Path) -> None:
    converted = sorted(p.relative_to(bids) for p in bids.glob("sub-*/ses-*/anat/*.nii.gz"))
    simulated = sorted(
        p.relative_to(simulated_trial) for p in simulated_trial.glob("sub-*/ses-*/anat/*.nii.gz")
    )
    assert converted == simulated
    for name in converted:
        ours, truth = nib.load(bids / name), nib.load(simulated_trial / name)
        np.testing.assert_array_equal(np.asarray(ours.dataobj), np.asarray(truth.dataobj))
        np.testing.assert_array_equal(ours.affine, truth.affine)


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
