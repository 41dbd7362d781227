"""Finding DICOM series in any folder tree: headers, grouping, slice geometry.

:func:`scan_dicom_tree` walks a folder of any depth and any file names, mixed with
other files, reads the header of every DICOM Part-10 file (never its pixels), and
groups the images by SeriesInstanceUID into :class:`DicomSeries` (each knowing its
patient and study).  Files that are not DICOM are counted; DICOM files that are cut
short or damaged are kept with the reason; DICOM objects outside any series
(DICOMDIR) are counted with the other files.  :func:`slice_stack` then describes a
series' geometry (orientations, slices per echo, volumes, gaps), from which a
missing slice is found before anything is converted.

Nothing is logged here: headers hold identifying values, and only the caller, once
every identifier of the tree is known, can redact names and paths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

__all__ = [
    "DicomFile",
    "DicomScan",
    "DicomSeries",
    "SliceStack",
    "scan_dicom_tree",
    "slice_stack",
]

# Tags at which pydicom stops with stop_before_pixels: (Float/DoubleFloat)PixelData.
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class DicomFile:
    """The header of one DICOM file, or why it could not be used.

    ``slices`` holds, per image plane (one for a classic file, one per frame of an
    enhanced multi-frame file), its position, orientation and echo time.
    """

    path: Path
    sop_class: str
    is_image: bool
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    slices: tuple[Slice, ...] = ()
    identifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class Slice:
    """One image plane: position and orientation (patient LPS, mm) and its echo."""

    position: tuple[float, ...]
    orientation: tuple[float, ...]
    echo_time_ms: float | None


@dataclass(frozen=True)
class DicomSeries:
    """All image files of one SeriesInstanceUID, with what is wrong with any of them."""

    patient_id: str
    study_uid: str
    series_uid: str
    attributes: dict[str, Any]
    files: tuple[Path, ...]
    slices: tuple[Slice, ...]
    bad_files: tuple[tuple[Path, str], ...] = ()
    other_objects: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """SeriesDescription, else ProtocolName, else empty."""
        return str(
            self.attributes.get("SeriesDescription") or self.attributes.get("ProtocolName") or ""
        )

    @property
    def series_number(self) -> int | None:
        """SeriesNumber when it is a whole number."""
        value = self.attributes.get("SeriesNumber")
        return int(value) if isinstance(value, int | float) else None

    @property
    def study_date(self) -> str:
        """StudyDate (YYYYMMDD), else the first acquisition's date, else empty."""
        for key in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            value = str(self.attributes.get(key) or "")
            if len(value) == 8 and value.isdigit():
                return value
        return ""

    @property
    def echo_times_ms(self) -> tuple[float, ...]:
        """Distinct echo times of the series, shortest first (ms, rounded to 0.01)."""
        times = {round(s.echo_time_ms, 2) for s in self.slices if s.echo_time_ms is not None}
        return tuple(sorted(times))


@dataclass(frozen=True)
class DicomScan:
    """What :func:`scan_dicom_tree` found below ``root``."""

    root: Path
    series: tuple[DicomSeries, ...]
    damaged: tuple[tuple[Path, str], ...]
    other_files: int  # not DICOM, or DICOM objects outside any series (DICOMDIR)
    identifiers: dict[str, tuple[str, ...]]  # attribute keyword -> values found


# Attributes kept from every header (top level, else an enhanced file's functional
# groups): what classification, labelling and participants.tsv need.
_ATTRIBUTES = (
    "Modality",
    "ImageType",
    "SeriesDescription",
    "ProtocolName",
    "SequenceName",
    "ScanningSequence",
    "SeriesNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "RepetitionTime",
    "InversionTime",
    "ContrastBolusAgent",
    "MRAcquisitionType",
    "PatientSex",
    "PatientAge",
    "PatientBirthDate",
    "Manufacturer",
)


def scan_dicom_tree(
    root: str | os.PathLike[str], *, identifying_attributes: Sequence[str]
) -> DicomScan:
    """Read every DICOM header below ``root`` and group the images into series.

    Parameters
    ----------
    root
        Folder to walk (all depths; symbolic links to folders are not followed).
    identifying_attributes
        DICOM keywords whose values are collected as identifiers (for redaction).
    """
    top = Path(root)
    files: list[DicomFile] = []
    other_files = 0
    described: set[tuple[str, str, str]] = set()
    with _quiet_pydicom():
        for path in _walk(top):
            record = read_dicom_file(path, identifying_attributes, described=described)
            if record is None or (not record.series_uid and record.problem is None):
                other_files += 1
            else:
                files.append(record)
    identifiers: dict[str, set[str]] = {}
    for record in files:
        for key, values in record.identifiers.items():
            identifiers.setdefault(key, set()).update(values)
    series, damaged = _group(files)
    return DicomScan(
        root=top,
        series=series,
        damaged=damaged,
        other_files=other_files,
        identifiers={k: tuple(sorted(v)) for k, v in sorted(identifiers.items())},
    )


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records while headers are read.

    They quote header values (a malformed patient name, say) and would reach the
    terminal before any redaction could apply.
    """
    pydicom_logger = logging.getLogger("pydicom")
    disabled = pydicom_logger.disabled
    pydicom_logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom_logger.disabled = disabled


def _walk(top: Path) -> Iterator[Path]:
    for folder, subfolders, names in os.walk(top):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                yield path


def read_dicom_file(
    path: Path,
    identifying_attributes: Sequence[str],
    *,
    described: set[tuple[str, str, str]] | None = None,
) -> DicomFile | None:
    """The header of one file; None when it is not a DICOM Part-10 file.

    ``described`` holds the (patient, study, series) keys whose series attributes
    were already read from another file: they are not read again (a series takes
    them from its first good image), which halves the time per file.  The set is
    updated.
    """
    try:
        with path.open("rb") as handle:
            preamble = handle.read(132)
            if len(preamble) < 132 or preamble[128:132] != b"DICM":
                return None
            handle.seek(0)
            ds = pydicom.dcmread(handle, stop_before_pixels=True)
            pixel_problem = _pixel_data_problem(handle, ds, path.stat().st_size)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, struct.error) as err:
        return DicomFile(
            path=path,
            sop_class="",
            is_image=False,
            problem=f"unreadable DICOM header ({type(err).__name__})",
        )
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID") or "")
    sop_name = UID(sop_class).name if sop_class else ""
    # A SOP class pydicom does not know (private) is an image when it has rows.
    is_image = "Image Storage" in sop_name if sop_name != sop_class else "Rows" in ds
    identifiers = _identifiers(ds, identifying_attributes)
    base = DicomFile(
        path=path,
        sop_class=sop_class,
        is_image=is_image,
        patient_id=str(ds.get("PatientID") or ""),
        study_uid=str(ds.get("StudyInstanceUID") or ""),
        series_uid=str(ds.get("SeriesInstanceUID") or ""),
        identifiers=identifiers,
    )
    if not base.series_uid:
        if sop_class and sop_name != sop_class and not is_image:
            return base  # a known non-image object outside any series (DICOMDIR, ...)
        return replace(base, problem="no SeriesInstanceUID (damaged or truncated header)")
    if not is_image:
        return base
    if pixel_problem is not None:
        return replace(base, problem=pixel_problem)
    try:
        slices = _slices(ds)
    except (AttributeError, TypeError, ValueError, IndexError) as err:
        return replace(base, problem=f"no usable image geometry ({type(err).__name__})")
    series_key = (base.patient_id, base.study_uid, base.series_uid)
    if described is not None and series_key in described:
        return replace(base, slices=slices)
    attributes = {key: _plain(_lookup(ds, key)) for key in _ATTRIBUTES}
    attributes["InversionTime"] = _inversion_time(ds)
    attributes["ContrastBolusAgent"] = _contrast_agent(ds)
    attributes["SOPClassName"] = sop_name
    if described is not None:
        described.add(series_key)
    return replace(base, attributes=attributes, slices=slices)


def _pixel_data_problem(handle: BinaryIO, ds: Dataset, size: int) -> str | None:
    """Why the pixel data of a file is incomplete, or None when it is whole.

    ``handle`` stands where pydicom stopped (before the pixel data element).
    """
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID") or ""))
    if not syntax.is_transfer_syntax or syntax.is_deflated:
        return None  # unknown, or compressed as a whole: dcm2niix will judge it
    start = handle.tell()
    header = handle.read(12)
    missing = "no pixel data (the file ends before the image: truncated)"
    if len(header) < 12:
        return missing
    order = "<" if syntax.is_little_endian else ">"
    group, element = struct.unpack(order + "HH", header[:4])
    if (group << 16 | element) not in _PIXEL_TAGS:
        return missing
    if syntax.is_implicit_VR:
        (length,) = struct.unpack(order + "I", header[4:8])
        value_start = start + 8
    else:
        (length,) = struct.unpack(order + "I", header[8:12])
        value_start = start + 12
    if length == _UNDEFINED_LENGTH:  # encapsulated (compressed) frames
        handle.seek(max(value_start, size - 65536))
        if _SEQUENCE_DELIMITER not in handle.read():
            return "compressed pixel data cut short (no end-of-sequence marker: truncated file)"
        return None
    if value_start + length > size:
        return f"pixel data cut short ({size - value_start} of {length} bytes: truncated file)"
    return None


def _lookup(ds: Dataset, keyword: str) -> Any:
    """A top-level value, else the one in an enhanced file's shared or first-frame groups."""
    if keyword in ds:
        return ds[keyword].value
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        sequence = ds.get(groups)
        if not sequence:
            continue
        for macro in sequence[0]:
            if macro.VR == "SQ" and macro.value and keyword in macro.value[0]:
                return macro.value[0][keyword].value
    return None


def _inversion_time(ds: Dataset) -> float | None:
    value = _plain(_lookup(ds, "InversionTime"))
    if value is None:
        value = _plain(_lookup(ds, "InversionTimes"))
    if isinstance(value, list):
        value = value[0] if value else None
    if str(_lookup(ds, "InversionRecovery") or "").upper() == "NO":
        return None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _contrast_agent(ds: Dataset) -> str:
    agent = ds.get("ContrastBolusAgent")
    if agent:
        return str(agent)
    sequence = ds.get("ContrastBolusAgentSequence")
    if sequence:
        return str(sequence[0].get("CodeMeaning") or sequence[0].get("CodeValue") or "agent")
    return ""


def _plain(value: Any) -> Any:
    """pydicom values as plain Python: numbers, strings, lists of them."""
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float):
        return value.real
    if isinstance(value, bytes):
        return value.decode("latin-1", "replace").strip()
    return str(value).strip()


def _identifiers(ds: Dataset, keywords: Sequence[str]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for keyword in keywords:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        values = value if isinstance(value, MultiValue | list) else [value]
        texts = tuple(str(v).strip() for v in values if str(v).strip())
        if texts:
            found[keyword] = texts
    return found


def _slices(ds: Dataset) -> tuple[Slice, ...]:
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    if not frames:
        echo = ds.get("EchoTime")
        return (
            Slice(
                position=_vector(ds.ImagePositionPatient, 3),
                orientation=_vector(ds.ImageOrientationPatient, 6),
                echo_time_ms=float(echo) if echo not in (None, "") else None,
            ),
        )
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    out = []
    for frame in frames:
        position = _group_value(frame, shared, "PlanePositionSequence", "ImagePositionPatient")
        orientation = _group_value(
            frame, shared, "PlaneOrientationSequence", "ImageOrientationPatient"
        )
        echo = _group_value(frame, shared, "MREchoSequence", "EffectiveEchoTime")
        out.append(
            Slice(
                position=_vector(position, 3),
                orientation=_vector(orientation, 6),
                echo_time_ms=float(echo) if echo is not None else None,
            )
        )
    return tuple(out)


def _group_value(frame: Dataset, shared: Dataset, macro: str, keyword: str) -> Any:
    for item in (frame, shared):
        sequence = item.get(macro)
        if sequence and keyword in sequence[0]:
            return sequence[0][keyword].value
    return None


def _vector(value: Any, size: int) -> tuple[float, ...]:
    numbers = tuple(float(v) for v in value)
    if len(numbers) != size:
        raise ValueError(f"expected {size} numbers, got {len(numbers)}")
    return numbers


def _group(
    files: Iterable[DicomFile],
) -> tuple[tuple[DicomSeries, ...], tuple[tuple[Path, str], ...]]:
    # Keyed by patient and study too: a SeriesInstanceUID reused across patients
    # (a broken anonymiser) must not merge their images.
    by_series: dict[tuple[str, str, str], list[DicomFile]] = {}
    damaged: list[tuple[Path, str]] = []
    for record in files:
        if not record.series_uid:
            damaged.append((record.path, record.problem or "not an image"))
        else:
            key = (record.patient_id, record.study_uid, record.series_uid)
            by_series.setdefault(key, []).append(record)
    series = []
    for (_, _, uid), records in by_series.items():
        images = [r for r in records if r.is_image and r.problem is None]
        first = next((r for r in images if r.attributes), images[0] if images else records[0])
        series.append(
            DicomSeries(
                patient_id=first.patient_id,
                study_uid=first.study_uid,
                series_uid=uid,
                attributes=dict(first.attributes),
                files=tuple(r.path for r in images),
                slices=tuple(s for r in images for s in r.slices),
                bad_files=tuple((r.path, r.problem) for r in records if r.problem is not None),
                other_objects=tuple(
                    sorted(UID(r.sop_class).name or "unknown" for r in records if not r.is_image)
                ),
            )
        )
    series.sort(
        key=lambda s: (s.patient_id, s.study_date, s.study_uid, s.series_number or 0, s.series_uid)
    )
    return tuple(series), tuple(damaged)


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class SliceStack:
    """The geometry of a series' image planes.

    ``orientations``: distinct plane orientations; ``slices_per_echo``: planes per
    echo time; ``volumes``: how often each position repeats within one echo (more
    than 1 for diffusion, functional or dynamic series); ``gaps``: places where the
    distance between neighbouring planes exceeds 1.5 times the usual spacing, as
    (position before the gap mm, gap mm, usual spacing mm).
    """

    orientations: int
    slices_per_echo: dict[float | None, int]
    volumes: int
    spacing_mm: float | None
    gaps: tuple[tuple[float, float, float], ...]


def slice_stack(slices: Sequence[Slice]) -> SliceStack:
    """Describe the planes of one series (see :class:`SliceStack`).

    >>> planes = [Slice((0.0, 0.0, 5.0 * k), (1, 0, 0, 0, 1, 0), 20.0) for k in (0, 1, 2, 4, 5)]
    >>> stack = slice_stack(planes)
    >>> stack.spacing_mm, stack.gaps
    (5.0, ((10.0, 10.0, 5.0),))
    """
    orientations = {tuple(round(v, 3) for v in s.orientation) for s in slices}
    by_echo: dict[float | None, list[float]] = {}
    normal = np.zeros(3)
    if slices:
        row, column = np.array(slices[0].orientation[:3]), np.array(slices[0].orientation[3:])
        normal = np.cross(row, column)
    for s in slices:
        echo = None if s.echo_time_ms is None else round(s.echo_time_ms, 2)
        by_echo.setdefault(echo, []).append(float(np.dot(normal, s.position)))
    volumes = 1
    gaps: list[tuple[float, float, float]] = []
    spacing: float | None = None
    for distances in by_echo.values():
        positions = np.unique(np.round(distances, 2))
        volumes = max(volumes, round(len(distances) / max(len(positions), 1)))
        steps = np.diff(positions)
        if steps.size == 0:
            continue
        usual = float(np.median(steps))
        spacing = usual if spacing is None else spacing
        for k in np.flatnonzero(steps > 1.5 * usual):
            gaps.append((float(positions[k]), float(steps[k]), usual))
    return SliceStack(
        orientations=len(orientations),
        slices_per_echo={echo: len(d) for echo, d in by_echo.items()},
        volumes=volumes,
        spacing_mm=spacing,
        gaps=tuple(gaps),
    )
