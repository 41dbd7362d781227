"""Export simulated MR scans as classic DICOM series, laid out for an exact dcm2niix round trip.

Public data has no dual-echo PD/T2 or post-gadolinium DICOM, so the simulator writes
its scans through :func:`write_mr_series` to test the DICOM-to-BIDS conversion on them.

Layout: one MR Image Storage file per slice and echo; pixel columns run along the NIfTI
``i`` axis, pixel rows along ``j`` in reverse (dcm2niix flips rows back), the files of
one echo along ``k``.  ``dcm2niix -x n`` (its default) then returns exactly the array
and affine written when the affine has ``det < 0`` (LAS-like) for a 2-D series, or is
closest to RAS+ for a 3-D one; otherwise it returns the same image with its axes
reordered, exactly as :func:`dcm2niix_layout` predicts.  Writes are deterministic:
every UID derives from the seeds, and no clock is read.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, RLELossless, generate_uid
from pydicom.valuerep import format_number_as_ds

from mriproc.io.atomic import atomic_path

__all__ = ["PatientInfo", "StudyInfo", "dcm2niix_executable", "dcm2niix_layout", "write_mr_series"]

_LPS = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS: negate x and y
_UINT16_MAX = 65535
_MAX_3D_SPACING_MM = 2.0  # MRAcquisitionType "3D" up to this slice spacing


def _check_format(value: str, pattern: str, what: str) -> None:
    if not re.fullmatch(pattern, value):
        raise ValueError(f"{what} must look like {pattern!r}, got {value!r}")


@dataclass(frozen=True)
class PatientInfo:
    """Identifying patient fields (fake for the simulator, so that de-identification is tested)."""

    name: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    sex: Literal["F", "M", "O"]

    def __post_init__(self) -> None:
        _check_format(self.birth_date, r"\d{8}", "birth_date (YYYYMMDD)")
        _check_format(self.sex, r"[FMO]", "sex")


@dataclass(frozen=True)
class StudyInfo:
    """One imaging session; StudyInstanceUID and FrameOfReferenceUID derive from ``uid_seed``."""

    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    accession_number: str
    institution_name: str
    study_description: str
    uid_seed: str

    def __post_init__(self) -> None:
        _check_format(self.study_date, r"\d{8}", "study_date (YYYYMMDD)")
        _check_format(self.study_time, r"\d{6}(\.\d{1,6})?", "study_time (HHMMSS)")


def dcm2niix_executable() -> Path:
    """The dcm2niix binary of the PyPI wheel, else the one beside this Python or on PATH.

    Raises
    ------
    FileNotFoundError
        When none is found.
    """
    try:  # the wheel's own binary: no Python start-up per call, unlike its console script
        from dcm2niix import bin_path
    except ImportError:
        bin_path = None
    candidates = [bin_path, Path(sys.executable).parent / "dcm2niix", shutil.which("dcm2niix")]
    for candidate in candidates:
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError(
        f"dcm2niix not found (dcm2niix package, beside {sys.executable}, PATH): "
        "install mriproc's dependencies, whose dcm2niix wheel ships the binary"
    )


def dcm2niix_layout(
    volume: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.float64]]:
    """The array and affine dcm2niix makes of a series written by :func:`write_mr_series`.

    dcm2niix stacks 2-D slices along the DICOM normal (row x column direction), so its
    output always has ``det < 0``: a 2-D series (slices > 2 mm apart) written from a
    ``det > 0`` affine comes back with the slice axis reversed.  It turns a 3-D series
    (MRAcquisitionType "3D") to the closest RAS+ axes.  The inputs themselves are
    returned when dcm2niix gives them back unchanged.
    """
    affine = np.asarray(affine, dtype=np.float64)
    ornt = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]])  # axis taken, direction
    if np.linalg.norm(affine[:3, 2]) <= _MAX_3D_SPACING_MM:
        ornt = nib.orientations.io_orientation(affine)
    elif np.linalg.det(affine[:3, :3]) > 0:
        ornt[2, 1] = -1.0
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return volume, affine
    moved = nib.orientations.apply_orientation(volume, ornt)
    return moved, affine @ nib.orientations.inv_ornt_aff(ornt, volume.shape)


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters, no ``-0``)."""
    return str(format_number_as_ds(round(float(value), 10) + 0.0))


def _uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=list(parts)))


def _pixels(volumes: Sequence[npt.NDArray[np.generic]]) -> list[npt.NDArray[np.uint16]]:
    """Check the volumes and round them to uint16 (negative values become 0)."""
    if not volumes:
        raise ValueError("no volumes given: one 3-D array per echo is needed")
    shape = np.shape(volumes[0])
    if len(shape) != 3 or any(np.shape(v) != shape for v in volumes):
        raise ValueError(
            f"volumes must be 3-D and of one shape, got {[np.shape(v) for v in volumes]}"
        )
    out = []
    for echo, volume in enumerate(volumes, start=1):
        values = np.rint(np.asarray(volume, dtype=np.float64))
        if not np.all(np.isfinite(values)):
            raise ValueError(f"echo {echo}: NaN or infinite voxels cannot be stored")
        if values.max(initial=0.0) > _UINT16_MAX:
            raise ValueError(f"echo {echo}: values up to {values.max():g} exceed uint16")
        out.append(np.clip(values, 0, None).astype(np.uint16))
    return out


def _plane(affine: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], ...]:
    """Voxel sizes, DICOM row and column directions (LPS) from a NIfTI affine."""
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got {affine!r}")
    zooms = np.linalg.norm(affine[:3, :3], axis=0)
    if np.any(zooms <= 0):
        raise ValueError(f"affine has a zero-length voxel axis: {affine!r}")
    unit = affine[:3, :3] / zooms
    if not np.allclose(unit.T @ unit, np.eye(3), atol=1e-6):
        raise ValueError("affine axes are not orthogonal (sheared): DICOM cannot store them")
    return zooms, _LPS * unit[:, 0], -_LPS * unit[:, 1]


def _common(
    patient: PatientInfo, study: StudyInfo, series_number: int, series_description: str
) -> Dataset:
    """The attributes every file of the series shares."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Manufacturer = "mriproc-simulator"
    ds.MagneticFieldStrength = "1.5"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientPosition = "HFS"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession_number
    ds.InstitutionName = study.institution_name
    ds.StudyDescription = study.study_description
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.StudyInstanceUID = _uid(study.uid_seed, "study")
    ds.SeriesNumber = series_number
    ds.SeriesDescription = ds.ProtocolName = series_description
    ds.AcquisitionNumber = 1
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds


def write_mr_series(
    out_dir: Path,
    volumes: Sequence[npt.NDArray[np.generic]],
    affine: npt.NDArray[np.float64],
    *,
    patient: PatientInfo,
    study: StudyInfo,
    series_number: int,
    series_description: str,
    echo_times_ms: Sequence[float],
    repetition_time_ms: float,
    inversion_time_ms: float | None = None,
    contrast_agent: str | None = None,
    scanning_sequence: Literal["SE", "IR"] = "SE",
    transfer_syntax: Literal["explicit_little", "rle"] = "explicit_little",
    uid_seed: str,
    frame_of_reference_key: str = "",
) -> list[Path]:
    """Write one MR series (one or two echoes on one grid) as ``IM_0001.dcm``, ... in ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder for the series (created); it must not hold other ``IM_*.dcm`` files.
    volumes
        One 3-D array per echo, all of one shape, indexed ``[i, j, k]`` (``k``: slice).
        Stored unscaled as ``numpy.rint(value)`` (half to even) in uint16: negative
        values are clipped to 0; values above 65535 or not finite raise ValueError.
    affine
        NIfTI voxel-to-RAS+ affine (mm) shared by the echoes; axes must be orthogonal.
    patient, study, series_number, series_description
        Written as given; the description is also the ProtocolName.
    echo_times_ms, repetition_time_ms
        EchoTime per volume (the echoes differ in EchoNumbers only); RepetitionTime.
    inversion_time_ms, scanning_sequence
        InversionTime, given exactly when ScanningSequence is ``"IR"`` (FLAIR), not ``"SE"``.
    contrast_agent
        ContrastBolusAgent (0018,0010) of a post-contrast series, e.g. ``"Gd-DTPA"``.
    transfer_syntax
        Explicit VR little endian, or RLE lossless (compressed) pixel data.
    uid_seed
        SeriesInstanceUID and SOPInstanceUIDs derive from it and ``study.uid_seed``.
    frame_of_reference_key
        Series of a study with one key share FrameOfReferenceUID (the patient stayed put).

    Returns
    -------
    list of Path
        The files written, in InstanceNumber order (echo 1 slices, then echo 2).
    """
    if transfer_syntax not in ("explicit_little", "rle") or scanning_sequence not in ("SE", "IR"):
        raise ValueError(f"unknown transfer_syntax or scanning_sequence: {transfer_syntax!r}, ...")
    pixels = _pixels(volumes)
    if len(echo_times_ms) != len(pixels):
        raise ValueError(f"{len(pixels)} volume(s) but {len(echo_times_ms)} echo time(s)")
    if (scanning_sequence == "IR") != (inversion_time_ms is not None):
        raise ValueError("give inversion_time_ms exactly when scanning_sequence is 'IR'")
    affine = np.asarray(affine, dtype=np.float64)
    zooms, row_dir, col_dir = _plane(affine)
    out = Path(out_dir)
    ni, nj, nk = pixels[0].shape
    names = [f"IM_{n:04d}.dcm" for n in range(1, len(pixels) * nk + 1)]
    stale = sorted(p.name for p in out.glob("IM_*.dcm") if p.name not in names)
    if stale:
        raise FileExistsError(f"{out}: holds other DICOM files ({', '.join(stale[:3])}, ...)")
    ds = _common(patient, study, series_number, series_description)
    ds.SeriesInstanceUID = _uid(study.uid_seed, uid_seed, "series")
    ds.FrameOfReferenceUID = _uid(study.uid_seed, frame_of_reference_key, "frame")
    ds.ScanningSequence = scanning_sequence
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D" if zooms[2] > _MAX_3D_SPACING_MM else "3D"
    ds.RepetitionTime = _ds(repetition_time_ms)
    if inversion_time_ms is not None:
        ds.InversionTime = _ds(inversion_time_ms)
    if contrast_agent is not None:
        ds.ContrastBolusAgent = contrast_agent
    ds.SliceThickness = ds.SpacingBetweenSlices = _ds(zooms[2])
    ds.PixelSpacing = [_ds(zooms[1]), _ds(zooms[0])]  # between rows (j), between columns (i)
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
    ds.Rows, ds.Columns = nj, ni
    normal = np.cross(row_dir, col_dir)
    written: list[Path] = []
    for echo, (volume, echo_ms) in enumerate(zip(pixels, echo_times_ms, strict=True), start=1):
        ds.EchoTime = _ds(echo_ms)
        ds.EchoNumbers = echo
        for k in range(nk):
            number = len(written) + 1
            # First pixel (top left) is voxel (0, nj - 1, k): rows run along -j.
            position = _LPS * (affine @ [0.0, nj - 1.0, k, 1.0])[:3]
            ds.InstanceNumber = number
            ds.SOPInstanceUID = _uid(study.uid_seed, uid_seed, "instance", str(number))
            ds.ImagePositionPatient = [_ds(v) for v in position]
            ds.SliceLocation = _ds(float(position @ normal))
            image = volume[:, ::-1, k].T  # Rows x Columns
            written.append(_save(ds, image, out / names[number - 1], transfer_syntax == "rle"))
    return written


def _save(ds: Dataset, image: npt.NDArray[np.uint16], path: Path, rle: bool) -> Path:
    """Write one slice (``image`` is Rows x Columns) as a DICOM Part 10 file."""
    ds = ds.copy()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    image = np.ascontiguousarray(image, dtype="<u2")
    if rle:
        ds.compress(RLELossless, image, encoding_plugin="pydicom", generate_instance_uid=False)
    else:
        ds.PixelData = image.tobytes()
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path
