"""DICOM export: dcm2niix (the real binary from its wheel) converts series back exactly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from mriproc.io.dicom_write import PatientInfo, StudyInfo, dcm2niix_executable, write_mr_series

PATIENT = PatientInfo(name="ROSSI^ANNA^TEST", patient_id="PID-4711", birth_date="19710203", sex="F")
STUDY = StudyInfo(
    study_date="20200115",
    study_time="093000",
    accession_number="ACC-0815",
    institution_name="Test Hospital",
    study_description="MRI BRAIN",
    uid_seed="study-1",
)


def axial_2d() -> np.ndarray:
    """LAS 0.94 x 0.94 x 5 mm, with an origin off zero."""
    affine = np.diag([-0.9375, 0.9375, 5.0, 1.0])
    affine[:3, 3] = [100.0, -110.0, -40.0]
    return affine


def iso_3d() -> np.ndarray:
    affine = np.eye(4)
    affine[:3, 3] = [-90.0, -100.0, -80.0]
    return affine


def volume(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, shape).astype(np.float32)


def convert(dicom_dir: Path, out: Path) -> list[Path]:
    out.mkdir()
    command = [
        str(dcm2niix_executable()),
        "-z",
        "y",
        "-ba",
        "n",
        "-f",
        "%s_%e",
        "-o",
        str(out),
        str(dicom_dir),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return sorted(out.glob("*.nii.gz"))


def write(
    tmp_path: Path, volumes: list[np.ndarray], affine: np.ndarray, **kwargs: object
) -> list[Path]:
    options: dict[str, object] = {
        "patient": PATIENT,
        "study": STUDY,
        "series_number": 3,
        "series_description": "TEST_SERIES",
        "echo_times_ms": [15.0] * len(volumes),
        "repetition_time_ms": 550.0,
        "uid_seed": "series-1",
    }
    options.update(kwargs)
    return write_mr_series(tmp_path / "dicom", volumes, affine, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("affine", "shape", "syntax"),
    [
        (axial_2d(), (64, 60, 10), "explicit_little"),
        (axial_2d(), (64, 60, 10), "rle"),
        (iso_3d(), (40, 44, 36), "explicit_little"),
    ],
    ids=["2d-las", "2d-las-rle", "3d-ras"],
)
def test_round_trip_keeps_array_and_affine(
    tmp_path: Path, affine: np.ndarray, shape: tuple[int, int, int], syntax: str
) -> None:
    data = volume(shape)
    files = write(tmp_path, [data], affine, transfer_syntax=syntax)
    assert len(files) == shape[2]
    (nifti,) = convert(tmp_path / "dicom", tmp_path / "nifti")
    img = nib.load(nifti)
    assert img.shape == shape
    np.testing.assert_allclose(img.affine, affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)


def test_dual_echo_is_one_series_that_converts_to_two_echoes(tmp_path: Path) -> None:
    pd_data, t2_data = volume((32, 30, 6), 1), volume((32, 30, 6), 2)
    write(
        tmp_path,
        [pd_data, t2_data],
        axial_2d(),
        echo_times_ms=[20.0, 80.0],
        repetition_time_ms=2500.0,
    )
    datasets = [pydicom.dcmread(p) for p in sorted((tmp_path / "dicom").iterdir())]
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert sorted({int(ds.EchoNumbers) for ds in datasets}) == [1, 2]
    first, second = convert(tmp_path / "dicom", tmp_path / "nifti")
    np.testing.assert_array_equal(np.asarray(nib.load(first).dataobj), pd_data)
    np.testing.assert_array_equal(np.asarray(nib.load(second).dataobj), t2_data)
    echo_times = [
        json.loads(p.with_name(p.name.replace(".nii.gz", ".json")).read_text())["EchoTime"]
        for p in (first, second)
    ]
    assert echo_times == pytest.approx([0.02, 0.08])


def test_contrast_agent_and_inversion_time_are_written(tmp_path: Path) -> None:
    files = write(
        tmp_path,
        [volume((32, 30, 6))],
        axial_2d(),
        contrast_agent="Gd-DTPA",
        inversion_time_ms=2500.0,
    )
    # dcm2niix does not copy ContrastBolusAgent into its sidecar: the converter reads
    # it from the DICOM itself.
    assert pydicom.dcmread(files[0]).ContrastBolusAgent == "Gd-DTPA"
    (nifti,) = convert(tmp_path / "dicom", tmp_path / "nifti")
    sidecar = json.loads(nifti.with_name(nifti.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["InversionTime"] == pytest.approx(2.5)
    assert sidecar["ScanningSequence"] == "IR"


def test_identifying_fields_are_written_as_given(tmp_path: Path) -> None:
    (first, *_) = write(tmp_path, [volume((16, 16, 3))], axial_2d())
    ds = pydicom.dcmread(first)
    assert str(ds.PatientName) == PATIENT.name
    assert (ds.PatientID, ds.PatientBirthDate, ds.AccessionNumber) == (
        "PID-4711",
        "19710203",
        "ACC-0815",
    )
    assert ds.InstitutionName == "Test Hospital"
    assert ds.StudyDate == "20200115"
    assert ds.Modality == "MR"


@pytest.mark.parametrize("syntax", ["explicit_little", "rle"])
def test_same_inputs_give_identical_bytes(tmp_path: Path, syntax: str) -> None:
    data = volume((16, 16, 3))
    a = write(tmp_path / "a", [data], axial_2d(), transfer_syntax=syntax)
    b = write(tmp_path / "b", [data], axial_2d(), transfer_syntax=syntax)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_non_finite_values_are_refused(tmp_path: Path) -> None:
    data = volume((16, 16, 3))
    data[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        write(tmp_path, [data], axial_2d())


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (np.diag([0.9375, 0.9375, 5.0, 1.0]), "2-D series must have a left-handed"),
        (np.diag([-1.0, 1, 1, 1]), "3-D series must have a right-handed"),
    ],
    ids=["2d-ras", "3d-las"],
)
def test_voxel_orders_that_would_not_round_trip_are_refused(
    tmp_path: Path, affine: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write(tmp_path, [volume((16, 16, 3))], affine)
