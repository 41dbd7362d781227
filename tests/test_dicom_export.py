"""DICOM export: dcm2niix converts the written series back to the simulator's arrays.

Every round trip runs the real dcm2niix binary of the PyPI wheel with the command the
DICOM-to-BIDS converter uses; nothing is mocked.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless

from mriproc.io.dicom_export import (
    PatientInfo,
    StudyInfo,
    dcm2niix_executable,
    dcm2niix_layout,
    write_mr_series,
)

PATIENT = PatientInfo(name="Doe^Jane", patient_id="SIM-0042", birth_date="19790312", sex="F")
STUDY = StudyInfo(
    study_date="20240521",
    study_time="093000",
    accession_number="ACC123456",
    institution_name="Simulated Neuro Centre",
    study_description="MS trial brain MRI",
    uid_seed="trial-7/sub-042/ses-02",
)
Affine = npt.NDArray[np.float64]


def rotation_x(degrees: float) -> Affine:
    t = np.radians(degrees)
    rot = np.eye(4)
    rot[1:3, 1:3] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return rot


def axial(zooms: tuple[float, float, float], origin: tuple[float, float, float]) -> Affine:
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = origin
    return affine


# Right-handed (RAS+) axial 2-D grid, and the same with a left-right flipped x column.
RAS_2D = axial((0.9375, 0.9375, 5.0), (-29.53, -41.2, -18.75))
LAS_2D = axial((-0.9375, 0.9375, 5.0), (30.47, -41.2, -18.75))
RAS_3D = axial((1.0, 1.0, 1.0), (-11.5, -14.25, -9.0))
LAS_3D = axial((-1.0, 1.0, 1.0), (12.5, -14.25, -9.0))


def image(shape: tuple[int, int, int], seed: int = 0) -> npt.NDArray[np.float64]:
    """A float image with values up to a few thousand, like the simulator's."""
    return np.random.default_rng(seed).uniform(0.0, 3500.0, shape)


def write(
    out: Path, volumes: list[npt.NDArray[np.float64]], affine: Affine, **kw: Any
) -> list[Path]:
    options: dict[str, Any] = {
        "patient": PATIENT,
        "study": STUDY,
        "series_number": 3,
        "series_description": "T2_TSE_axial",
        "echo_times_ms": [80.0] * len(volumes),
        "repetition_time_ms": 3000.0,
        "uid_seed": "series-3",
    }
    options.update(kw)
    return write_mr_series(out, volumes, affine, **options)


def convert(dicom_dir: Path, out: Path) -> list[tuple[nib.Nifti1Image, dict[str, Any]]]:
    """Run dcm2niix as the converter does; the images and sidecars, by file name."""
    out.mkdir()
    command = [str(dcm2niix_executable()), "-z", "y", "-ba", "n", "-f", "%s_%e", "-o", str(out)]
    done = subprocess.run([*command, str(dicom_dir)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = []
    for path in sorted(out.glob("*.nii.gz")):
        img = nib.load(path)
        assert isinstance(img, nib.Nifti1Image)
        sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
        results.append((img, sidecar))
    return results


def assert_same(img: nib.Nifti1Image, volume: npt.NDArray[Any], affine: Affine) -> None:
    data = np.asanyarray(img.dataobj)
    assert data.shape == volume.shape
    np.testing.assert_allclose(img.affine, affine, rtol=0, atol=1e-3)
    assert np.array_equal(data, np.rint(volume))


@pytest.mark.parametrize(
    ("affine", "shape"),
    [
        pytest.param(LAS_2D, (64, 64, 10), id="axial-2d-left-right-flipped"),
        pytest.param(rotation_x(10) @ LAS_2D, (64, 64, 10), id="oblique-2d"),
        pytest.param(RAS_3D, (24, 28, 20), id="axial-3d-1mm"),
        pytest.param(rotation_x(10) @ RAS_3D, (24, 28, 20), id="oblique-3d-1mm"),
    ],
)
@pytest.mark.parametrize("transfer_syntax", ["explicit_little", "rle"])
def test_dcm2niix_returns_input_exactly(
    tmp_path: Path, affine: Affine, shape: tuple[int, int, int], transfer_syntax: str
) -> None:
    volume = image(shape)
    write(tmp_path / "dicom", [volume], affine, transfer_syntax=transfer_syntax)
    [(img, sidecar)] = convert(tmp_path / "dicom", tmp_path / "nifti")
    assert_same(img, volume, affine)
    assert dcm2niix_layout(volume, affine)[0] is volume
    assert sidecar["MRAcquisitionType"] == ("2D" if shape[2] == 10 else "3D")


@pytest.mark.parametrize(
    ("affine", "shape"),
    [
        # dcm2niix stores 2-D slices along the slice normal: always det < 0.
        pytest.param(RAS_2D, (64, 64, 10), id="axial-2d-ras"),
        pytest.param(rotation_x(10) @ RAS_2D, (32, 40, 6), id="oblique-2d-ras"),
        # dcm2niix turns 3-D acquisitions to the closest RAS+ axes.
        pytest.param(LAS_3D, (24, 28, 20), id="axial-3d-las"),
        pytest.param(RAS_3D[:, [2, 0, 1, 3]], (20, 24, 28), id="sagittal-3d"),
    ],
)
def test_dcm2niix_layout_predicts_reoriented_output(
    tmp_path: Path, affine: Affine, shape: tuple[int, int, int]
) -> None:
    volume = image(shape)
    write(tmp_path / "dicom", [volume], affine)
    [(img, _)] = convert(tmp_path / "dicom", tmp_path / "nifti")
    expected_volume, expected_affine = dcm2niix_layout(volume, affine)
    assert not np.allclose(expected_affine, affine)
    assert_same(img, expected_volume, expected_affine)


def test_dcm2niix_layout_keeps_every_voxel_in_place() -> None:
    shape = (4, 5, 6)
    volume = np.arange(np.prod(shape)).reshape(shape)
    for affine in (RAS_2D, LAS_3D, rotation_x(20) @ RAS_3D[:, [2, 0, 1, 3]]):
        moved, moved_affine = dcm2niix_layout(volume, affine)
        for index in np.ndindex(moved.shape):
            source = np.argwhere(volume == moved[index])[0]
            here = moved_affine @ [*index, 1.0]
            np.testing.assert_allclose(here, affine @ [*source, 1.0], atol=1e-9)


def test_dual_echo_is_one_series_with_two_echoes(tmp_path: Path) -> None:
    pd, t2 = image((48, 40, 8), seed=1), image((48, 40, 8), seed=2)
    files = write(tmp_path / "dicom", [pd, t2], LAS_2D, echo_times_ms=[20.0, 80.0])
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert len(files) == 16
    assert len({h.SeriesInstanceUID for h in headers}) == 1
    assert [int(h.EchoNumbers) for h in headers] == [1] * 8 + [2] * 8
    assert [int(h.InstanceNumber) for h in headers] == list(range(1, 17))
    converted = convert(tmp_path / "dicom", tmp_path / "nifti")
    assert len(converted) == 2
    by_echo = {sidecar["EchoNumber"]: (img, sidecar) for img, sidecar in converted}
    for echo, volume, echo_time_s in ((1, pd, 0.02), (2, t2, 0.08)):
        img, sidecar = by_echo[echo]
        assert sidecar["EchoTime"] == pytest.approx(echo_time_s)
        assert sidecar["RepetitionTime"] == pytest.approx(3.0)
        assert_same(img, volume, LAS_2D)


def test_flair_carries_inversion_time(tmp_path: Path) -> None:
    volume = image((32, 32, 6))
    write(
        tmp_path / "dicom",
        [volume],
        LAS_2D,
        series_description="FLAIR_axial",
        echo_times_ms=[120.0],
        repetition_time_ms=9000.0,
        inversion_time_ms=2500.0,
        scanning_sequence="IR",
    )
    [(img, sidecar)] = convert(tmp_path / "dicom", tmp_path / "nifti")
    assert sidecar["InversionTime"] == pytest.approx(2.5)
    assert sidecar["ScanningSequence"] == "IR"
    assert sidecar["SeriesDescription"] == "FLAIR_axial"
    assert_same(img, volume, LAS_2D)


def test_contrast_agent_is_in_the_dicom(tmp_path: Path) -> None:
    agent = "Gd-DTPA 0.1 mmol/kg"
    files = write(tmp_path / "dicom", [image((16, 16, 4))], LAS_2D, contrast_agent=agent)
    assert all(pydicom.dcmread(f).ContrastBolusAgent == agent for f in files)
    plain = write(tmp_path / "plain", [image((16, 16, 4))], LAS_2D)
    assert "ContrastBolusAgent" not in pydicom.dcmread(plain[0])


@pytest.mark.xfail(
    reason="dcm2niix (v1.0.20260724 wheel) never writes 0018,0010 to the sidecar: the "
    "converter must read ContrastBolusAgent from the DICOM itself",
    strict=True,
)
def test_contrast_agent_reaches_the_dcm2niix_sidecar(tmp_path: Path) -> None:
    agent = "Gd-DTPA 0.1 mmol/kg"
    write(tmp_path / "dicom", [image((16, 16, 4))], LAS_2D, contrast_agent=agent)
    [(_, sidecar)] = convert(tmp_path / "dicom", tmp_path / "nifti")
    assert sidecar.get("ContrastBolusAgent") == agent


@pytest.mark.parametrize("transfer_syntax", ["explicit_little", "rle"])
def test_writes_are_deterministic(tmp_path: Path, transfer_syntax: str) -> None:
    volumes = [image((20, 16, 5), seed=3), image((20, 16, 5), seed=4)]
    first = write(
        tmp_path / "a", volumes, LAS_2D, echo_times_ms=[20.0, 80.0], transfer_syntax=transfer_syntax
    )
    second = write(
        tmp_path / "b", volumes, LAS_2D, echo_times_ms=[20.0, 80.0], transfer_syntax=transfer_syntax
    )
    assert [p.name for p in first] == [f"IM_{n:04d}.dcm" for n in range(1, 11)]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    other = write(tmp_path / "c", volumes[:1], LAS_2D, uid_seed="series-4")
    a, c = pydicom.dcmread(first[0]), pydicom.dcmread(other[0])
    assert a.SeriesInstanceUID != c.SeriesInstanceUID
    assert a.SOPInstanceUID != c.SOPInstanceUID
    assert (a.StudyInstanceUID, a.FrameOfReferenceUID) == (
        c.StudyInstanceUID,
        c.FrameOfReferenceUID,
    )


@pytest.mark.parametrize(
    ("transfer_syntax", "uid"), [("explicit_little", ExplicitVRLittleEndian), ("rle", RLELossless)]
)
def test_files_are_part10_with_every_identifying_field(
    tmp_path: Path, transfer_syntax: str, uid: str
) -> None:
    files = write(tmp_path / "dicom", [image((16, 12, 3))], LAS_2D, transfer_syntax=transfer_syntax)
    raw = files[0].read_bytes()
    assert raw[:128] == bytes(128) and raw[128:132] == b"DICM"
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == uid
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == MRImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    expected = {
        "PatientName": "Doe^Jane",
        "PatientID": "SIM-0042",
        "PatientBirthDate": "19790312",
        "PatientSex": "F",
        "StudyDate": "20240521",
        "SeriesDate": "20240521",
        "AcquisitionDate": "20240521",
        "StudyTime": "093000",
        "AccessionNumber": "ACC123456",
        "InstitutionName": "Simulated Neuro Centre",
        "StudyDescription": "MS trial brain MRI",
        "Modality": "MR",
        "Manufacturer": "mriproc-simulator",
        "SeriesDescription": "T2_TSE_axial",
        "ProtocolName": "T2_TSE_axial",
        "PhotometricInterpretation": "MONOCHROME2",
        "MRAcquisitionType": "2D",
    }
    assert {key: str(ds[key].value) for key in expected} == expected
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert str(ds[key].value).startswith("1.2.")
    assert float(ds.MagneticFieldStrength) == 1.5
    assert (ds.InstanceNumber, ds.AcquisitionNumber, ds.SeriesNumber, ds.EchoNumbers) == (
        1,
        1,
        3,
        1,
    )
    assert [float(v) for v in ds.PixelSpacing] == [0.9375, 0.9375]
    assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 5.0
    assert ds.pixel_array.dtype == np.uint16


def test_values_are_rounded_and_negatives_clipped(tmp_path: Path) -> None:
    volume = np.array([-3.0, -0.4, 0.4, 1.5, 2.5, 2.6, 1000.49, 65535.0]).reshape(2, 4, 1)
    [file] = write(tmp_path / "dicom", [volume], LAS_2D)
    stored = pydicom.dcmread(file).pixel_array  # rows run along j reversed, columns along i
    assert np.array_equal(stored.T[:, ::-1], [[0, 0, 0, 2], [2, 3, 1000, 65535]])


@pytest.mark.parametrize(
    ("volumes", "affine", "kw", "message"),
    [
        ([np.ones((4, 4, 2))], LAS_2D, {"echo_times_ms": [20.0, 80.0]}, "echo time"),
        ([np.ones((4, 4, 2)), np.ones((4, 4, 3))], LAS_2D, {"echo_times_ms": [1, 2]}, "one shape"),
        ([np.ones((4, 4))], LAS_2D, {}, "3-D"),
        ([np.full((4, 4, 2), 70000.0)], LAS_2D, {}, "exceed uint16"),
        ([np.full((4, 4, 2), np.nan)], LAS_2D, {}, "NaN"),
        (
            [np.ones((4, 4, 2))],
            np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1.0]]),
            {},
            "orthogonal",
        ),
        ([np.ones((4, 4, 2))], LAS_2D, {"scanning_sequence": "IR"}, "inversion_time_ms"),
        ([np.ones((4, 4, 2))], LAS_2D, {"inversion_time_ms": 2500.0}, "inversion_time_ms"),
        ([np.ones((4, 4, 2))], LAS_2D, {"transfer_syntax": "jpeg"}, "transfer_syntax"),
    ],
)
def test_bad_input_is_refused_with_a_reason(
    tmp_path: Path, volumes: list[Any], affine: Affine, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        write(tmp_path / "dicom", volumes, affine, **kw)
    assert not list(tmp_path.rglob("*.dcm"))


def test_refuses_to_mix_with_another_series(tmp_path: Path) -> None:
    write(tmp_path / "dicom", [np.ones((4, 4, 3))], LAS_2D)
    write(tmp_path / "dicom", [np.ones((4, 4, 3))], LAS_2D)  # same files again: fine
    with pytest.raises(FileExistsError, match=r"IM_0003\.dcm"):
        write(tmp_path / "dicom", [np.ones((4, 4, 2))], LAS_2D)


def test_bad_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="birth_date"):
        PatientInfo(name="A^B", patient_id="1", birth_date="1979-03-12", sex="F")
    with pytest.raises(ValueError, match="study_time"):
        StudyInfo("20240521", "9:30", "A1", "Centre", "Brain", "seed")


def test_dcm2niix_executable_runs() -> None:
    done = subprocess.run(
        [str(dcm2niix_executable()), "--version"], capture_output=True, text=True, check=False
    )
    assert "dcm2niiX" in done.stdout
