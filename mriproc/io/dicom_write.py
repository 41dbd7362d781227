"""Writing MR DICOM series (classic MR Image Storage), for the simulator's DICOM export.

Public data lacks dual-echo PD/T2 and post-gadolinium DICOM; the simulator writes its
scans through :func:`write_mr_series` so that ``mriproc convert`` can be tested on
them.  The layout is chosen so that dcm2niix converts a series back to exactly the
array and affine it was written from: pixel rows run along the NIfTI ``j`` axis in
reverse (dcm2niix flips rows back), columns along ``i``, one file per slice and echo.
dcm2niix returns 2-D (thick-slice) series left-handed and 3-D series right-handed,
so only affines of that handedness round-trip exactly; others are refused.
Writes are deterministic: every UID derives from ``uid_seed``; no clock is read.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

from mriproc.io.atomic import atomic_path

__all__ = ["PatientInfo", "StudyInfo", "dcm2niix_executable", "write_mr_series"]


@dataclass(frozen=True)
class PatientInfo:
    """Identifying patient fields (fake in the simulator, so de-identification can be tested)."""

    name: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    sex: Literal["F", "M", "O"]


@dataclass(frozen=True)
class StudyInfo:
    """One imaging session."""

    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS
    accession_number: str
    institution_name: str
    study_description: str
    uid_seed: str  # StudyInstanceUID and FrameOfReferenceUID derive from it


def dcm2niix_executable() -> Path:
    """The dcm2niix binary of the PyPI wheel, else one beside this Python or on PATH.

    The wheel's binary itself is preferred over its console script, which would start
    a Python interpreter on every call.
    """
    try:
        from dcm2niix import bin_path
    except ImportError:  # pragma: no cover - the wheel is a dependency
        bin_path = None
    for candidate in (bin_path, Path(sys.executable).parent / "dcm2niix", shutil.which("dcm2niix")):
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError(
        "dcm2niix not found: install mriproc's dependencies (the dcm2niix wheel ships it)"
    )


def _uid(*parts: str) -> str:
    return str(generate_uid(entropy_srcs=list(parts)))


def _lps(vector: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(vector * np.array([-1.0, -1.0, 1.0]), dtype=np.float64)


def _number(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if len(text) <= 16 else f"{value:.8g}"


def write_mr_series(
    out_dir: str | os.PathLike[str],
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
    transfer_syntax: Literal["explicit_little", "rle"] = "explicit_little",
    uid_seed: str,
) -> list[Path]:
    """Write one MR series (one or more echoes sharing a geometry) into ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder for the files ``IM_0001.dcm``, ... (created).
    volumes
        One 3-D array per echo, same shape; values are stored as ``round(value)`` in
        uint16 (negative values are clipped to 0).
    affine
        NIfTI voxel-to-RAS affine of the volumes (axis 2 is the slice axis).
    patient, study
        Identifying fields, written as given.
    series_number, series_description
        SeriesNumber, SeriesDescription and ProtocolName.
    echo_times_ms, repetition_time_ms, inversion_time_ms
        Sequence timing; one echo time per volume.
    contrast_agent
        ContrastBolusAgent for post-contrast series.
    transfer_syntax
        Explicit VR little endian, or RLE lossless (compressed).
    uid_seed
        Every series and instance UID derives from it (deterministic output).
    """
    if len(volumes) != len(echo_times_ms) or not volumes:
        raise ValueError("give one echo time per volume (and at least one volume)")
    shape = np.asarray(volumes[0]).shape
    if len(shape) != 3 or any(np.asarray(v).shape != shape for v in volumes):
        raise ValueError(
            f"volumes must be 3-D and of one shape, got {[np.shape(v) for v in volumes]}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ni, nj, nk = shape
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    two_d = bool(zooms[2] > 2.0)
    handed = "left" if np.linalg.det(affine[:3, :3]) < 0 else "right"
    if (handed == "left") != two_d:
        # dcm2niix returns 2-D series left-handed (e.g. LAS) and 3-D series
        # right-handed (e.g. RAS); any other voxel order would come back reversed
        # along one axis, breaking the exact round trip the simulator relies on.
        wanted = "left-handed (e.g. LAS)" if two_d else "right-handed (e.g. RAS)"
        raise ValueError(
            f"{series_description}: a {'2-D' if two_d else '3-D'} series must have a {wanted} "
            "voxel order for dcm2niix to return the same affine"
        )
    row_direction = _lps(affine[:3, 0] / zooms[0])  # along increasing column index (i)
    column_direction = _lps(-affine[:3, 1] / zooms[1])  # rows stored in reverse j order
    normal = np.cross(row_direction, column_direction)
    series_uid = _uid(uid_seed, "series")
    frame_uid = _uid(study.uid_seed, "frame")
    written: list[Path] = []
    number = 0
    for echo_index, (volume, echo_ms) in enumerate(zip(volumes, echo_times_ms, strict=True)):
        values = np.asarray(volume, dtype=np.float64)
        if not np.all(np.isfinite(values)) or values.max(initial=0) > 65535:
            raise ValueError(f"{series_description}: values must be finite and at most 65535")
        pixels = np.clip(np.round(values), 0, 65535).astype(np.uint16)
        for k in range(nk):
            number += 1
            corner = affine @ np.array([0.0, nj - 1.0, float(k), 1.0])
            position = _lps(corner[:3])
            ds = _slice_dataset(patient, study, series_number, series_description)
            ds.SOPInstanceUID = _uid(uid_seed, "instance", str(number))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesInstanceUID = series_uid
            ds.StudyInstanceUID = _uid(study.uid_seed, "study")
            ds.FrameOfReferenceUID = frame_uid
            ds.InstanceNumber = number
            ds.EchoNumbers = echo_index + 1
            ds.EchoTime = _number(echo_ms)
            ds.RepetitionTime = _number(repetition_time_ms)
            if inversion_time_ms is not None:
                ds.InversionTime = _number(inversion_time_ms)
            ds.ScanningSequence = "IR" if inversion_time_ms is not None else "SE"
            ds.SequenceVariant = "NONE"
            if contrast_agent:
                ds.ContrastBolusAgent = contrast_agent
            ds.MRAcquisitionType = "2D" if two_d else "3D"
            ds.SliceThickness = _number(float(zooms[2]))
            ds.SpacingBetweenSlices = _number(float(zooms[2]))
            ds.PixelSpacing = [_number(float(zooms[1])), _number(float(zooms[0]))]
            ds.ImageOrientationPatient = [
                _number(float(v)) for v in (*row_direction, *column_direction)
            ]
            ds.ImagePositionPatient = [_number(float(v)) for v in position]
            ds.SliceLocation = _number(float(np.dot(position, normal)))
            ds.Rows, ds.Columns = nj, ni
            ds.PixelData = np.ascontiguousarray(pixels[:, ::-1, k].T).tobytes()
            if transfer_syntax == "rle":
                # Keep the deterministic SOPInstanceUID (pydicom would draw a new one).
                ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
            path = out / f"IM_{number:04d}.dcm"
            with atomic_path(path) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            written.append(path)
    return written


def _slice_dataset(
    patient: PatientInfo, study: StudyInfo, series_number: int, description: str
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    # dcm2niix guesses the vendor from the first letters (MR: MR Solutions, SI: Siemens...).
    ds.Manufacturer = "Virtual scanner (mriproc simulator)"
    ds.ManufacturerModelName = "ESIMS-like 1.5 T"
    ds.MagneticFieldStrength = "1.5"
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession_number
    ds.InstitutionName = study.institution_name
    ds.StudyDescription = study.study_description
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.PatientPosition = "HFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    return ds
