"""Finding DICOM series in any folder tree: headers, grouping, slice geometry.

:func:`scan_dicom_tree` walks a folder of any depth and any file names, mixed with
other files, reads the header of every DICOM file (never its pixels), and groups
the images by SeriesInstanceUID into :class:`DicomSeries` (each knowing its patient
and study).  Every file below the folder ends up in exactly one place of the
:class:`DicomScan`: an image of a series (with usable geometry, without it, or
damaged), a non-image object of a series, a damaged file outside any series, a DICOM
object outside any series (DICOMDIR), a file that was not read (a 7z archive) or a
file that is not DICOM (counted).

DICOM Part-10 files (``DICM`` after a 128-byte preamble) and bare data sets without
the preamble are read.  Files compressed as a whole with gzip, bzip2 or xz (``.dcm.gz``
and the like, recognised by their content, whatever their names) are decompressed
into ``unpack_dir`` (never next to the input) and read like the others; errors still
name the compressed file.  Zip and tar archives (compressed or not) are unpacked there
too, member by member under neutral names, and their files read like the others
(errors name the archive and the member; a damaged archive is one damaged file, its
members before the damage still read); 7z and rar archives are listed as not read.
Series attributes (SeriesNumber, SeriesDescription, Modality,
...) are read from every header pydicom can parse, even when the pixel data is
damaged, so that a damaged series is still named.  :func:`slice_stack` then
describes a series' geometry (orientations, slices per echo, volumes, gaps), from
which a missing slice is found before anything is converted.

Nothing is logged here: headers hold identifying values, and only the caller, once
every identifier of the tree is known, can redact names and paths.
"""

from __future__ import annotations

import bz2
import contextlib
import functools
import gzip
import io
import logging
import lzma
import os
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = [
    "ATTRIBUTES",
    "DamagedFile",
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
_HEAD_BYTES = 512  # enough for the DICOM preamble and a tar header

# Whole-file compression that is decompressed and read (the opener of each).
_COMPRESSED: dict[str, Callable[[Path], io.BufferedIOBase]] = {
    "gzip": gzip.GzipFile,
    "bzip2": bz2.BZ2File,
    "xz": lzma.LZMAFile,
}
# Archives that are unpacked (into the caller's unpack folder) and read member by member.
_UNPACKED = {
    "zip": "zip archive",
    "tar": "tar archive",
    "gzip-compressed tar": "gzip-compressed tar archive",
    "bzip2-compressed tar": "bzip2-compressed tar archive",
    "xz-compressed tar": "xz-compressed tar archive",
}
# An archive inside an archive is unpacked too, this deep at most.
_MAX_ARCHIVE_DEPTH = 3
# What is recognised but not read: archives, and a compression Python cannot read.
_ARCHIVES = {
    "zip": "zip archive",
    "tar": "tar archive",
    "7z": "7z archive",
    "rar": "rar archive",
    "zstd": "zstd-compressed file",
}
# Errors of a damaged or cut-short compressed stream.
_DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def series_number_of(attributes: Mapping[str, Any]) -> int | None:
    """SeriesNumber when it is a whole number."""
    value = attributes.get("SeriesNumber")
    return int(value) if isinstance(value, int | float) else None


def description_of(attributes: Mapping[str, Any]) -> str:
    """SeriesDescription, else ProtocolName, else empty."""
    return str(attributes.get("SeriesDescription") or attributes.get("ProtocolName") or "")


@dataclass(frozen=True)
class DicomFile:
    """The header of one DICOM file, or why it could not be used.

    ``slices`` holds, per image plane (one for a classic file, one per frame of an
    enhanced multi-frame file), its position, orientation and echo time.  ``path``
    is the file that is read (and given to dcm2niix): a decompressed copy when the
    input file (``origin``) was compressed.  ``problem``: the file is damaged;
    ``geometry_problem``: an intact image without usable position or orientation
    (a secondary capture, say), which cannot be part of a volume.
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
    geometry_problem: str | None = None
    origin: Path | None = None

    @property
    def source(self) -> Path:
        """The file of the input tree (the compressed one for a decompressed copy)."""
        return self.origin or self.path


@dataclass(frozen=True)
class Slice:
    """One image plane: position and orientation (patient LPS, mm) and its echo."""

    position: tuple[float, ...]
    orientation: tuple[float, ...]
    echo_time_ms: float | None


class _Labelled:
    """The series number and description read from ``attributes``."""

    attributes: dict[str, Any]

    @property
    def description(self) -> str:
        """SeriesDescription, else ProtocolName, else empty."""
        return description_of(self.attributes)

    @property
    def series_number(self) -> int | None:
        """SeriesNumber when it is a whole number."""
        return series_number_of(self.attributes)


@dataclass(frozen=True)
class DicomSeries(_Labelled):
    """All files of one SeriesInstanceUID, with what is wrong with any of them.

    ``files`` are the intact images with geometry (the files to convert, decompressed
    copies for compressed input); ``unplaced`` the intact images without usable
    geometry; ``bad_files`` the damaged files; ``other_objects`` the SOP class names
    of non-image objects (raw data, reports).  ``attributes`` come from the first
    intact image, else from any file whose header could be read.
    """

    patient_id: str
    study_uid: str
    series_uid: str
    attributes: dict[str, Any]
    files: tuple[Path, ...]
    slices: tuple[Slice, ...]
    bad_files: tuple[tuple[Path, str], ...] = ()
    other_objects: tuple[str, ...] = ()
    unplaced: tuple[tuple[Path, str], ...] = ()

    @property
    def file_count(self) -> int:
        """Every file of the series below the scanned folder."""
        return len(self.files) + len(self.unplaced) + len(self.bad_files) + len(self.other_objects)

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
class DamagedFile(_Labelled):
    """A DICOM file that belongs to no series because it is damaged.

    ``attributes`` hold whatever series attributes its header still gave (often
    SeriesNumber and SeriesDescription of a file cut short inside its header).
    """

    path: Path
    problem: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DicomScan:
    """What :func:`scan_dicom_tree` found below ``root``.

    Every file below ``root`` is counted once: in a series, in ``damaged``, in
    ``not_read`` (archives, and compressed DICOM when no folder to decompress into
    was given), in ``outside_series`` (DICOM objects of no series, e.g. DICOMDIR) or
    in ``not_dicom``.
    """

    root: Path
    series: tuple[DicomSeries, ...]
    damaged: tuple[DamagedFile, ...]
    not_dicom: int
    identifiers: dict[str, tuple[str, ...]]  # attribute keyword -> values found
    outside_series: tuple[str, ...] = ()  # SOP class names of objects outside any series
    not_read: tuple[tuple[Path, str], ...] = ()
    decompressed: int = 0  # compressed files read through a decompressed copy
    archives: int = 0  # zip and tar archives unpacked (their files are counted instead)

    @property
    def other_files(self) -> int:
        """Files that are not DICOM, or DICOM objects outside any series (DICOMDIR)."""
        return self.not_dicom + len(self.outside_series)

    @property
    def file_count(self) -> int:
        """Every file below ``root``."""
        in_series = sum(s.file_count for s in self.series)
        return in_series + len(self.damaged) + len(self.not_read) + self.other_files


# Attributes kept from every header (top level, else an enhanced file's functional
# groups): what classification, labelling and participants.tsv need.  Heuristics
# rules may test any of them (``attributes`` of a skip rule).
ATTRIBUTES = (
    "Modality",
    "ImageType",
    "SeriesDescription",
    "ProtocolName",
    "SequenceName",
    "PulseSequenceName",
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "AcquisitionContrast",
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
    root: str | os.PathLike[str],
    *,
    identifying_attributes: Sequence[str],
    unpack_dir: str | os.PathLike[str] | None = None,
) -> DicomScan:
    """Read every DICOM header below ``root`` and group the images into series.

    Parameters
    ----------
    root
        Folder to walk (all depths; symbolic links to folders are not followed), or
        one file (an archive, say).
    identifying_attributes
        DICOM keywords whose values are collected as identifiers (for redaction).
    unpack_dir
        Existing folder (outside ``root``) into which compressed DICOM files are
        decompressed and zip and tar archives (also gzip-, bzip2- or xz-compressed:
        ``.tar.gz``, ``.tgz``) unpacked, under neutral names; the caller removes it
        once the series are converted.  Without it, they are listed as not read.
    """
    top = Path(root)
    unpack = Path(unpack_dir) if unpack_dir is not None else None
    files: list[DicomFile] = []
    not_dicom = 0
    outside: list[str] = []
    not_read: list[tuple[Path, str]] = []
    decompressed = 0
    archives = 0
    described: set[tuple[str, str, str]] = set()

    def read(path: Path, origin: Path | None, depth: int) -> None:
        """Place one file (``origin``: its name in the input, when ``path`` is a copy)."""
        nonlocal not_dicom, decompressed, archives
        named = origin or path
        record: DicomFile | None = None
        try:
            with path.open("rb") as handle:
                kind = _file_kind(handle.read(_HEAD_BYTES))
            if kind in _COMPRESSED and _compressed_kind(path, kind) == "tar":
                kind = f"{kind}-compressed tar"
        except OSError as err:
            problem = f"file cannot be read ({_error_name(err)})"
            files.append(DicomFile(path=path, sop_class="", is_image=False, problem=problem))
            return
        if kind in _UNPACKED:
            if unpack is None or depth >= _MAX_ARCHIVE_DEPTH:
                why = "no folder to unpack into" if unpack is None else "archive inside archives"
                not_read.append((named, f"{_UNPACKED[kind]}, not unpacked ({why})"))
                return
            archives += 1
            folder = unpack / f"archive-{archives:04d}"
            members, damage = _unpack(path, kind, folder)
            for copy, member in members:
                read(copy, named / member, depth + 1)
            if damage is not None:
                files.append(DicomFile(path=named, sop_class="", is_image=False, problem=damage))
            return
        if kind in _ARCHIVES:
            not_read.append((named, f"{_ARCHIVES[kind]}, not unpacked: unpack it and run again"))
            return
        if kind in _COMPRESSED:
            target = unpack / f"{decompressed + 1:06d}.dcm" if unpack is not None else None
            found = _read_compressed(path, kind, target, identifying_attributes, described, named)
            if isinstance(found, str):
                not_read.append((named, found))
                return
            record = found
            if record is not None and record.origin is not None:
                decompressed += 1
        elif kind in ("dicom", "dataset"):
            record = read_dicom_file(
                path, identifying_attributes, described=described, origin=origin
            )
        if record is None:
            not_dicom += 1
        elif not record.series_uid and record.problem is None:
            outside.append(UID(record.sop_class).name or "unknown")
        else:
            files.append(record)

    with _quiet_pydicom():
        for path in _walk(top):
            read(path, None, 0)
    identifiers: dict[str, set[str]] = {}
    for record in files:
        for key, values in record.identifiers.items():
            identifiers.setdefault(key, set()).update(values)
    series, damaged = _group(files)
    return DicomScan(
        root=top,
        series=series,
        damaged=damaged,
        not_dicom=not_dicom,
        identifiers={k: tuple(sorted(v)) for k, v in sorted(identifiers.items())},
        outside_series=tuple(sorted(outside)),
        not_read=tuple(not_read),
        decompressed=decompressed,
        archives=archives,
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
    """Every file below ``top`` in name order (``top`` itself when it is a file)."""
    if top.is_file():
        yield top
        return
    for folder, subfolders, names in os.walk(top):
        subfolders.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file():
                yield path


def _file_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: dicom, dataset, a compressor, an archive.

    ``dicom``: a Part-10 file (``DICM`` after the preamble); ``dataset``: possibly a
    bare data set without the preamble (it starts with a group 0002 or 0008 tag);
    ``gzip``, ``bzip2``, ``xz``: compressed as a whole; ``zip``, ``tar``, ``7z``,
    ``rar``, ``zstd``: archives (or a compression Python cannot read); empty: other.

    >>> _file_kind(bytes(128) + b"DICM"), _file_kind(b"\\x1f\\x8b\\x08"), _file_kind(b"text")
    ('dicom', 'gzip', '')
    """
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit():
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    if head[:6] == b"7z\xbc\xaf\x27\x1c":
        return "7z"
    if head[:4] == b"Rar!":
        return "rar"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00":
        return "dataset"
    return ""


def _compressed_kind(path: Path, kind: str) -> str:
    """What a compressed file holds, by the first bytes of its content (empty: unknown,
    also when it does not decompress: :func:`_read_compressed` says why)."""
    try:
        with _COMPRESSED[kind](path) as stream:
            return _file_kind(stream.read(_HEAD_BYTES))
    except _DECOMPRESSION_ERRORS:
        return ""


def _unpack(path: Path, kind: str, folder: Path) -> tuple[list[tuple[Path, str]], str | None]:
    """Extract an archive's regular files into ``folder`` under neutral names.

    Returns each copy with its member name (the name in the archive: member names can
    hold identifying words, so they never become file names here) and, for a damaged
    archive, why it could not be read to its end (the members before the damage are
    kept).  Links, devices and folders inside the archive are not extracted.
    """
    folder.mkdir(parents=True, exist_ok=True)
    members: list[tuple[Path, str]] = []
    label = _UNPACKED[kind]

    def copy(name: str, stream: IO[bytes]) -> None:
        target = folder / f"{len(members) + 1:06d}"
        with target.open("wb") as out:
            while chunk := stream.read(1 << 20):
                out.write(chunk)
        members.append((target, name))

    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zipped:
                for info in zipped.infolist():
                    if not info.is_dir():
                        with zipped.open(info) as stream:
                            copy(info.filename, stream)
        else:
            with tarfile.open(path, mode="r:*") as tarred:
                for member in tarred:
                    if member.isfile():
                        extracted = tarred.extractfile(member)
                        if extracted is not None:
                            copy(member.name, extracted)
    except (tarfile.TarError, zipfile.BadZipFile, *_DECOMPRESSION_ERRORS) as err:
        return members, f"{label} that cannot be unpacked ({_error_name(err)})"
    return members, None


def _read_compressed(
    path: Path,
    kind: str,
    target: Path | None,
    identifying_attributes: Sequence[str],
    described: set[tuple[str, str, str]],
    named: Path,
) -> DicomFile | str | None:
    """A compressed file: its DICOM header (read from ``target``), why it was not
    read (text), or None when it holds no DICOM.  ``named``: the file's name in the
    input (``path`` itself, or an archive member's)."""
    problem: str | None = None
    try:
        with _COMPRESSED[kind](path) as stream:
            head = stream.read(_HEAD_BYTES)
    except _DECOMPRESSION_ERRORS as err:
        return DicomFile(
            path=named,
            sop_class="",
            is_image=False,
            problem=f"{kind}-compressed file that cannot be decompressed ({_error_name(err)})",
        )
    inner = _file_kind(head)
    if inner in _ARCHIVES:
        return f"{kind}-compressed {_ARCHIVES[inner]}, not unpacked: unpack it and run again"
    if inner not in ("dicom", "dataset"):
        return None
    if target is None:
        return f"{kind}-compressed DICOM, not decompressed (no folder to decompress into)"
    with target.open("wb") as out:
        try:
            with _COMPRESSED[kind](path) as stream:
                # read1: what was decompressed before a cut-short end is kept.
                while chunk := stream.read1(1 << 20):
                    out.write(chunk)
        except _DECOMPRESSION_ERRORS as err:
            # Keep what came out: the header often names the series.
            problem = f"{kind}-compressed data damaged or cut short ({_error_name(err)})"
    record = read_dicom_file(target, identifying_attributes, described=described, origin=named)
    if record is None:
        target.unlink()
        return None
    if problem is not None:
        record = replace(
            record, problem=problem + (f"; {record.problem}" if record.problem else "")
        )
    return record


def _error_name(err: BaseException) -> str:
    """The exception's class name, with its module when the name alone says nothing.

    >>> import zlib
    >>> _error_name(zlib.error()), _error_name(EOFError())
    ('zlib.error', 'EOFError')
    """
    name = type(err).__name__
    return f"{type(err).__module__}.{name}" if name == "error" else name


def read_dicom_file(
    path: Path,
    identifying_attributes: Sequence[str],
    *,
    described: set[tuple[str, str, str]] | None = None,
    origin: Path | None = None,
) -> DicomFile | None:
    """The header of one file; None when it is not DICOM.

    A Part-10 file is read; a file that starts like a bare data set (no preamble) is
    read when pydicom finds a SOPClassUID or SeriesInstanceUID in it.  ``described``
    holds the (patient, study, series) keys whose series attributes were already
    read from an intact image: they are not read again from the other intact images
    (a series takes them from its first good image), which halves the time per file.
    The set is updated.  The attributes of a damaged file, an image without geometry
    or a non-image object are always read.  ``origin``: the compressed input file
    ``path`` was decompressed from.
    """
    try:
        with path.open("rb") as handle:
            kind = _file_kind(handle.read(_HEAD_BYTES))
            if kind not in ("dicom", "dataset"):
                return None
            handle.seek(0)
            size = path.stat().st_size
            if kind == "dataset":
                ds = _bare_dataset(handle)
                if ds is None:
                    return None
            else:
                ds = pydicom.dcmread(handle, stop_before_pixels=True)
            pixel_problem = _pixel_data_problem(handle, _transfer_syntax(ds), size)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, struct.error) as err:
        return DicomFile(
            path=path,
            sop_class="",
            is_image=False,
            problem=f"unreadable DICOM header ({type(err).__name__})",
            origin=origin,
        )
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID") or "")
    sop_name = UID(sop_class).name if sop_class else ""
    # A SOP class pydicom does not know (private) is an image when it has rows.
    is_image = "Image Storage" in sop_name if sop_name != sop_class else "Rows" in ds
    base = DicomFile(
        path=path,
        sop_class=sop_class,
        is_image=is_image,
        patient_id=_text(ds, "PatientID"),
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        identifiers=_identifiers(ds, identifying_attributes),
        origin=origin,
    )
    if not base.series_uid:
        if sop_class and sop_name != sop_class and not is_image:
            return base  # a known non-image object outside any series (DICOMDIR, ...)
        return replace(
            base,
            problem="no SeriesInstanceUID (damaged or truncated header)",
            attributes=_attributes(ds, sop_class, sop_name),
        )
    if not is_image:
        return replace(base, attributes=_attributes(ds, sop_class, sop_name))
    if pixel_problem is not None:
        return replace(base, problem=pixel_problem, attributes=_attributes(ds, sop_class, sop_name))
    try:
        slices = _slices(ds)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as err:
        return replace(
            base,
            geometry_problem=f"no usable image position or orientation ({type(err).__name__})",
            attributes=_attributes(ds, sop_class, sop_name),
        )
    series_key = (base.patient_id, base.study_uid, base.series_uid)
    if described is not None and series_key in described:
        return replace(base, slices=slices)
    if described is not None:
        described.add(series_key)
    return replace(base, attributes=_attributes(ds, sop_class, sop_name), slices=slices)


def _bare_dataset(handle: BinaryIO) -> Dataset | None:
    """A data set without the Part-10 preamble, or None when it does not look like DICOM."""
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, struct.error):
        return None
    uid = _text(ds, "SOPClassUID") or _text(ds, "SeriesInstanceUID")
    if not uid or not all(part.isdigit() for part in uid.split(".")):
        return None
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword) or "").strip()
    except (ValueError, TypeError, KeyError, struct.error):
        return ""


def _transfer_syntax(ds: Dataset) -> UID:
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID") or ""))
    if syntax.is_transfer_syntax:
        return syntax
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None:
        return syntax  # unknown: the pixel data is left to dcm2niix
    if implicit:
        return UID(ImplicitVRLittleEndian)
    return UID(ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _attributes(ds: Dataset, sop_class: str, sop_name: str) -> dict[str, Any]:
    """The series attributes of a header (a value that cannot be decoded is None)."""
    attributes = {key: _value(functools.partial(_lookup, ds, key)) for key in ATTRIBUTES}
    attributes["InversionTime"] = _value(lambda: _inversion_time(ds))
    attributes["ContrastBolusAgent"] = _value(lambda: _contrast_agent(ds)) or ""
    attributes["SOPClassUID"] = sop_class
    attributes["SOPClassName"] = sop_name
    return attributes


def _value(read: Callable[[], Any]) -> Any:
    """``read()`` as a plain value; None when pydicom cannot decode it (a malformed
    number, say), so that one bad element does not hide the others."""
    try:
        return _plain(read())
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, struct.error):
        return None


def _pixel_data_problem(handle: BinaryIO, syntax: UID, size: int) -> str | None:
    """Why the pixel data of a file is incomplete, or None when it is whole.

    ``handle`` stands where pydicom stopped (before the pixel data element).
    """
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
) -> tuple[tuple[DicomSeries, ...], tuple[DamagedFile, ...]]:
    # Keyed by patient and study too: a SeriesInstanceUID reused across patients
    # (a broken anonymiser) must not merge their images.
    by_series: dict[tuple[str, str, str], list[DicomFile]] = {}
    damaged: list[DamagedFile] = []
    for record in files:
        if not record.series_uid:
            damaged.append(
                DamagedFile(record.source, record.problem or "not an image", record.attributes)
            )
        else:
            key = (record.patient_id, record.study_uid, record.series_uid)
            by_series.setdefault(key, []).append(record)
    series = []
    for (_, _, uid), records in by_series.items():
        intact = [r for r in records if r.is_image and r.problem is None]
        images = [r for r in intact if r.geometry_problem is None]
        unplaced = [(r.source, r.geometry_problem) for r in intact if r.geometry_problem]
        bad = [(r.source, r.problem) for r in records if r.problem is not None]
        objects = [r for r in records if not r.is_image and r.problem is None]
        # Attributes from an intact image, else from any header that could be read.
        readable = (*images, *intact, *records)
        first = next((r for r in readable if r.attributes), records[0])
        series.append(
            DicomSeries(
                patient_id=first.patient_id,
                study_uid=first.study_uid,
                series_uid=uid,
                attributes=dict(first.attributes),
                files=tuple(r.path for r in images),
                slices=tuple(s for r in images for s in r.slices),
                bad_files=tuple(bad),
                other_objects=tuple(sorted(UID(r.sop_class).name or "unknown" for r in objects)),
                unplaced=tuple(unplaced),
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
