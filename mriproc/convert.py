"""``mriproc convert``: scanner DICOM to a de-identified BIDS dataset.

Steps: scan the DICOM tree or archive (:mod:`mriproc.io.dicom`; files compressed as a
whole, ``*.dcm.gz`` and the like, are decompressed and zip and tar archives unpacked
into a private temporary folder, never next to the input, and read like the others);
classify every series (:mod:`mriproc.series_roles`); check that a series to convert
has all its files and slices; convert it with dcm2niix into a staging folder inside
``BIDS_DIR`` (:mod:`mriproc.io.dcm2niix`); label participants and sessions
(:mod:`mriproc.convert_labels`); move each image to its BIDS name with a scrubbed
sidecar (:mod:`mriproc.deidentify`); merge ``participants.tsv`` and the
``sessions.tsv`` files (:mod:`mriproc.io.bids_update`).

Every series ends up in the report ``BIDS_DIR/code/mriproc/convert_series.tsv``
(BIDS validators ignore ``code/``) as ``converted``, ``exists`` (already in the
dataset, identical), ``skipped`` (not anatomical MRI, with the reason) or
``failed`` (with the reason, naming the file), with its SeriesNumber and
SeriesDescription whenever any header of the series can be read; damaged files of
no series, damaged archives and files not read (7z, rar) get ``failed`` rows of their
own, files that are not DICOM one ``ignored`` row.  One conversion's rows are appended to the
earlier ones.  An existing image is never overwritten.  No identifying DICOM value
reaches the dataset, the report, a log line or an error message; the PatientID ->
participant mapping is written only to ``mapping_out``, which may not lie inside
``BIDS_DIR``.

Nothing is left out silently: :attr:`ConvertResult.left_out` counts every file of
the tree that gave no new BIDS image, grouped by reason (not DICOM, damaged, not
read, non-image objects, files of non-structural, undecided, failed or already
converted series, uncorrected copies), and each group is logged as a warning ("not
converted: ...").  Together with the converted files they add up to every file below
``dicom_dir``.

Incomplete (:attr:`ConvertResult.complete` false, ``mriproc convert`` exits 1) when
anything the user may have wanted was left out -- a series failed (incomplete, a missing slice,
dcm2niix failed, no session, a name taken by other images), a file was damaged or
unreadable (in any series, also one not converted anyway, or in none; a compressed
file that does not decompress, an archive that does not unpack), a file may hold
DICOM but was not read (a 7z or rar archive),
or an MR volume's weighting was not recognised (or the mapping file's role does not
fit it); complete otherwise.  Series left out on purpose -- non-structural ones
(localisers, field maps, ASL and other perfusion, diffusion, BOLD, phase, derived
and secondary-capture images, 4-D, multi-echo or too few slices), other
modalities, series the mapping file skips, a scanner's uncorrected copy (ImageType
ND) of a distortion-corrected series of the same session
(:func:`mriproc.series_roles.skip_uncorrected_copies`) -- non-image DICOM objects,
files that are not DICOM and series already in the dataset do not make the exit
status non-zero: they are counted in the summary and the report only.  A series
whose weighting is not recognised is settled by giving its role (or ``skip``) in a
mapping file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from mriproc.convert_labels import LabelPlan, Study, plan_labels
from mriproc.deidentify import Redactor, scrub_sidecar
from mriproc.io.atomic import atomic_write_text
from mriproc.io.bids import bids_path
from mriproc.io.bids_metadata import ensure_readme, write_column_dictionaries
from mriproc.io.bids_update import (
    ExistingDataset,
    add_participants,
    add_sessions,
    ensure_dataset_description,
    read_existing,
    same_image,
)
from mriproc.io.conversion_mapping import ConversionMapping, write_mapping
from mriproc.io.dcm2niix import Dcm2niixError, Dcm2niixImage, run_dcm2niix
from mriproc.io.dicom import DicomScan, DicomSeries, scan_dicom_tree, slice_stack
from mriproc.progress import Progress
from mriproc.series_roles import (
    Classification,
    DicomHeuristics,
    classify_series,
    skip_uncorrected_copies,
)
from mriproc.tables import NA, write_table

__all__ = [
    "REPORT",
    "REPORT_COLUMNS",
    "ConvertError",
    "ConvertResult",
    "LeftOut",
    "SeriesRow",
    "convert_dicom",
]

logger = logging.getLogger(__name__)

REPORT = Path("code") / "mriproc" / "convert_series.tsv"
REPORT_COLUMNS = {
    "conversion": "Which run of mriproc convert into this dataset wrote the row (1, 2, ...).",
    "participant_id": "Participant label with its sub- prefix (n/a before labelling).",
    "session": "Session label with its ses- prefix.",
    "series_number": "DICOM SeriesNumber.",
    "series_description": "DICOM SeriesDescription (identifying values redacted).",
    "roles": "Contrast roles given to the series (PDw,T2w for a split dual echo).",
    "status": "converted, exists (already in the dataset, identical), skipped or failed.",
    "outputs": "BIDS images of the series, relative to the dataset root.",
    "reason": "Why the series got its roles, was skipped or failed.",
}
Status = Literal["converted", "exists", "skipped", "failed", "ignored"]


class ConvertError(ValueError):
    """Nothing can be converted (no DICOM, unusable arguments); nothing was written."""


@dataclass(frozen=True)
class SeriesRow:
    """One row of the conversion report (all text already de-identified)."""

    participant: str | None
    session: str | None
    series_number: int | None
    description: str
    roles: tuple[str, ...]
    status: Status
    outputs: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class SeriesTiming:
    """Wall time of one converted series: dcm2niix alone and mriproc's whole handling."""

    files: int
    dcm2niix_s: float
    total_s: float


@dataclass(frozen=True)
class LeftOut:
    """Files of the DICOM tree that gave no new BIDS image, for one reason.

    ``wanted``: the user may have wanted them (damaged or unread files, failed or
    undecided series); any such group makes the conversion incomplete.
    ``detail`` breaks the files down (by kind of series, say).
    """

    what: str
    files: int
    wanted: bool
    detail: str = ""

    def line(self) -> str:
        """One line for the console summary, e.g. ``12 file(s) not DICOM``."""
        return f"{self.files} {self.what}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion did.

    ``files``: every file below the DICOM folder; ``left_out``: those that gave no new
    BIDS image, by reason (the rest were converted).
    """

    rows: tuple[SeriesRow, ...]
    report: Path
    timings: tuple[SeriesTiming, ...]
    new_sessions: tuple[str, ...]
    left_out: tuple[LeftOut, ...] = ()
    files: int = 0

    def count(self, status: Status) -> int:
        """Series with ``status``."""
        return sum(1 for row in self.rows if row.status == status)

    @property
    def complete(self) -> bool:
        """False when anything the user may have wanted was left out.

        That is: a series failed, a file was damaged, unreadable or not read (an
        archive), or an MR volume was not placed (weighting not recognised, or the
        mapping file's role does not fit).  Series left out on purpose
        (non-structural, other modalities, skipped by the mapping file, uncorrected
        copies of distortion-corrected series), non-image objects, files that are
        not DICOM and series already in the dataset leave it complete.  See the
        module docstring.
        """
        wanted = any(group.wanted for group in self.left_out)
        return not (wanted or self.count("failed"))

    def summary(self) -> list[str]:
        """The console lines of ``left_out``: ``not converted: 12 file(s) not DICOM``."""
        return [f"not converted: {group.line()}" for group in self.left_out]


@dataclass
class _Series:
    """A series on its way through the conversion."""

    series: DicomSeries
    classification: Classification
    images: dict[str, Dcm2niixImage] = field(default_factory=dict)
    problem: str | None = None
    dcm2niix_s: float = 0.0
    prepare_s: float = 0.0


def convert_dicom(
    dicom_dir: str | os.PathLike[str],
    bids_dir: str | os.PathLike[str],
    *,
    rules: DicomHeuristics,
    mapping: ConversionMapping | None = None,
    covariates: pd.DataFrame | None = None,
    mapping_out: str | os.PathLike[str] | None = None,
) -> ConvertResult:
    """Convert every series below ``dicom_dir`` into the BIDS dataset ``bids_dir``.

    Parameters
    ----------
    dicom_dir
        Folder tree of DICOM files (any names and depth, other files ignored; zip and
        tar archives in it are unpacked), or one archive.
    bids_dir
        BIDS dataset to create or add to.
    rules
        Classification and de-identification rules (``load_heuristics()``).
    mapping
        Labels and roles chosen by the user (``read_mapping()``).
    covariates
        Participant covariates for ``participants.tsv``: a ``participant_id`` or a
        ``PatientID`` column and any others (``arm``, ``age``, ...).
    mapping_out
        Where to write the PatientID -> participant mapping (outside ``bids_dir``).
    """
    source, root = Path(dicom_dir), Path(bids_dir)
    mapping_given = mapping is not None
    mapping = mapping or ConversionMapping()
    if mapping_out is not None and Path(mapping_out).resolve().is_relative_to(root.resolve()):
        raise ConvertError(
            "--mapping-out must not lie inside BIDS_DIR: it holds PatientIDs, which the "
            "BIDS dataset must never contain"
        )
    if not source.exists():
        raise ConvertError(f"{source}: no such folder or archive")
    # Compressed DICOM is decompressed and archives unpacked here (private to the
    # user, removed at the end), never next to the input; dcm2niix reads the copies.
    with tempfile.TemporaryDirectory(prefix="mriproc-convert-dicom-") as unpack_dir:
        scan = scan_dicom_tree(
            source, identifying_attributes=rules.identifying_attributes, unpack_dir=unpack_dir
        )
        if not scan.series and not scan.damaged:
            raise ConvertError(_nothing_found(scan, source))
        return _convert_scan(scan, root, rules, mapping, mapping_given, covariates, mapping_out)


def _nothing_found(scan: DicomScan, source: Path) -> str:
    """Why a tree gave nothing to convert (no path below ``source``: nothing was read
    that could tell identifying folder names apart)."""
    message = f"{source}: no DICOM files found ({scan.other_files} other file(s))"
    if scan.not_read:
        kinds = "; ".join(sorted({why for _, why in scan.not_read}))
        message += f"; {len(scan.not_read)} file(s) not read ({kinds})"
    return message


def _convert_scan(
    scan: DicomScan,
    root: Path,
    rules: DicomHeuristics,
    mapping: ConversionMapping,
    mapping_given: bool,
    covariates: pd.DataFrame | None,
    mapping_out: str | os.PathLike[str] | None,
) -> ConvertResult:
    source = scan.root
    extra = {
        "PatientID": (*mapping.participants, *mapping.baseline_dates),
        "StudyDate": tuple(mapping.baseline_dates.values()),
    }
    if covariates is not None and "PatientID" in covariates:
        extra["OtherPatientIDs"] = tuple(str(v) for v in covariates["PatientID"].dropna())
    redactor = Redactor.from_attributes({**scan.identifiers, **extra})
    root.mkdir(parents=True, exist_ok=True)
    existing = read_existing(root)
    staging = Path(tempfile.mkdtemp(prefix=".mriproc-convert-", dir=root))
    try:
        progress = Progress(len(scan.series), "convert")
        classifications = _classify(scan.series, rules, mapping)
        prepared = []
        for index, (series, classification) in enumerate(
            zip(scan.series, classifications, strict=True)
        ):
            work = staging / f"{index:04d}"
            prepared.append(_prepare(series, classification, work, redactor, source))
            progress.step(_label(series, redactor))
        reproduced, matches = _reproduced_studies(prepared, existing)
        studies = [
            Study(s.series.patient_id, s.series.study_uid, s.series.study_date)
            for s in prepared
            if s.classification.converted
        ]
        plan = plan_labels(
            list(dict.fromkeys(studies)),
            mapping=mapping,
            reproduced=reproduced,
            existing_sessions=existing.sessions,
            new_participants_allowed=mapping_given or not existing.sessions,
        )
        runs = _run_indices(prepared, plan, matches)
        rows: list[SeriesRow] = []
        timings: list[SeriesTiming] = []
        for item in prepared:
            start = time.perf_counter()
            item_runs = runs.get(_key(item.series), {})
            rows.append(
                _write_series(item, plan, root, rules, redactor, matches, item_runs, source)
            )
            if item.classification.converted and item.problem is None:
                total = item.prepare_s + time.perf_counter() - start
                timings.append(SeriesTiming(len(item.series.files), item.dcm2niix_s, total))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    in_series = zip(prepared, rows, strict=True)
    left_out = left_out_files(
        scan, [(item.series, item.classification, row) for item, row in in_series]
    )
    rows += _file_rows(scan, redactor)
    new_sessions = _update_tables(root, rows, prepared, plan, existing, covariates, redactor)
    report = _write_report(root, rows)
    if mapping_out is not None:
        write_mapping(mapping_out, _mapping_record(mapping, plan, prepared))
    for group in left_out:
        log = logger.info if group.what == _EXISTING else logger.warning
        log("not converted: %s", group.line())
    return ConvertResult(
        rows=tuple(rows),
        report=report,
        timings=tuple(timings),
        new_sessions=new_sessions,
        left_out=left_out,
        files=scan.file_count,
    )


# --------------------------------------------------------------------------- summary

_EXISTING = "file(s) of series already in the dataset"


def left_out_files(
    scan: DicomScan, series: Iterable[tuple[DicomSeries, Classification, SeriesRow]]
) -> tuple[LeftOut, ...]:
    """Every file of ``scan`` that gave no new BIDS image, grouped by reason.

    ``series``: each series of the scan with its classification and report row.  The
    files of converted series are the only ones not counted; the groups and the
    converted files add up to ``scan.file_count``.
    """
    damaged = len(scan.damaged)
    objects: Counter[str] = Counter()
    failed: list[int] = []
    undecided: list[int] = []
    excluded: Counter[str] = Counter()
    excluded_series = 0
    copies: list[int] = []
    existing = 0
    for one, classification, row in series:
        damaged += len(one.bad_files)
        objects.update(one.other_objects)
        images = len(one.files) + len(one.unplaced)
        if row.status == "converted":
            continue
        if row.status == "exists":
            existing += images
        elif row.status == "failed":
            failed.append(images)
        elif classification.decision == "undecided":
            undecided.append(images)
        elif classification.decision == "copy":
            copies.append(images)
        else:
            excluded[classification.label] += images
            excluded_series += 1
    objects.update(scan.outside_series)

    def breakdown(counts: Counter[str]) -> str:
        return "; ".join(f"{what}: {n}" for what, n in counts.most_common())

    groups = [
        LeftOut("file(s) not DICOM", scan.not_dicom, wanted=False),
        LeftOut("file(s) damaged or unreadable", damaged, wanted=True),
        LeftOut(
            "file(s) not read (archives or compressed files: unpack them and run again)",
            len(scan.not_read),
            wanted=True,
        ),
        LeftOut("non-image DICOM object(s)", sum(objects.values()), False, breakdown(objects)),
        LeftOut(
            "file(s) of failed series", sum(failed), wanted=True, detail=f"{len(failed)} series"
        ),
        LeftOut(
            "file(s) of series whose weighting was not recognised (give their roles in a "
            "mapping file)",
            sum(undecided),
            wanted=True,
            detail=f"{len(undecided)} series",
        ),
        LeftOut(
            f"file(s) of {excluded_series} non-structural series",
            sum(excluded.values()),
            wanted=False,
            detail=breakdown(excluded),
        ),
        LeftOut(
            f"file(s) of {len(copies)} uncorrected series (ND) whose "
            "distortion-corrected copy is converted",
            sum(copies),
            wanted=False,
        ),
        LeftOut(_EXISTING, existing, wanted=False),
    ]
    return tuple(group for group in groups if group.files)


# --------------------------------------------------------------------------- per series


def _label(series: DicomSeries, redactor: Redactor) -> str:
    number = series.series_number
    what = redactor.text(series.description) or "no description"
    return f"series {number if number is not None else '?'} ({what})"


def _classify(
    series: Sequence[DicomSeries], rules: DicomHeuristics, mapping: ConversionMapping
) -> list[Classification]:
    """Every series' classification; then, per session, the scanner's uncorrected copy
    (ImageType ND) of a distortion-corrected series is skipped, unless the mapping file
    gives it a role by SeriesInstanceUID."""
    classified = [
        (
            one,
            classify_series(one, rules, override=mapping.role_of(one.series_uid, one.description)),
        )
        for one in series
    ]
    return skip_uncorrected_copies(classified, rules, keep=set(mapping.series_roles))


def _prepare(
    series: DicomSeries,
    classification: Classification,
    work: Path,
    redactor: Redactor,
    source: Path,
) -> _Series:
    start = time.perf_counter()
    item = _Series(series, classification)
    if not item.classification.converted:
        return item
    item.problem = _completeness_problem(series, redactor, source)
    if item.problem is None:
        try:
            result = run_dcm2niix(series.files, work)
            item.dcm2niix_s = result.seconds
            for line in result.output:
                logger.debug("dcm2niix: %s", redactor.text(line))
            item.images, item.problem = _assign_images(result.images, item.classification.roles)
        except Dcm2niixError as err:
            for line in err.output:
                logger.debug("dcm2niix: %s", redactor.text(line))
            item.problem = redactor.text(str(err))
        except OSError as err:
            item.problem = redactor.text(f"{type(err).__name__}: {err}")
    item.prepare_s = time.perf_counter() - start
    return item


def _listed(files: Sequence[tuple[Path, str]], redactor: Redactor, source: Path) -> str:
    return "; ".join(f"{redactor.path(path, source)}: {why}" for path, why in files)


def _completeness_problem(series: DicomSeries, redactor: Redactor, source: Path) -> str | None:
    if series.bad_files:
        listed = _listed(series.bad_files, redactor, source)
        return f"{len(series.bad_files)} damaged file(s), series not converted: {listed}"
    if series.unplaced:
        listed = _listed(series.unplaced, redactor, source)
        return (
            f"{len(series.unplaced)} image file(s) without position or orientation, series "
            f"not converted: {listed}"
        )
    stack = slice_stack(series.slices)
    counts = sorted(set(stack.slices_per_echo.values()))
    if len(counts) > 1:
        per_echo = ", ".join(
            f"{n} at TE {echo:g} ms" if echo is not None else f"{n} without an echo time"
            for echo, n in stack.slices_per_echo.items()
        )
        return f"the echoes have different numbers of slices ({per_echo}): a slice is missing"
    if stack.gaps:
        where, gap, usual = stack.gaps[0]
        missing = sum(round(g / u) - 1 for _, g, u in stack.gaps)
        return (
            f"{missing} slice(s) missing: a gap of {gap:.3g} mm after slice position "
            f"{where:.2f} mm where the spacing is {usual:.3g} mm"
        )
    return None


def _assign_images(
    images: Sequence[Dcm2niixImage], roles: Sequence[str]
) -> tuple[dict[str, Dcm2niixImage], str | None]:
    if len(images) != len(roles):
        return {}, (
            f"dcm2niix wrote {len(images)} image(s) for the {len(roles)} expected "
            f"({', '.join(roles)}): not converted"
        )
    if len(roles) == 1:
        return {roles[0]: images[0]}, None
    by_echo = sorted(images, key=lambda i: (i.echo_time_ms is None, i.echo_time_ms or 0.0))
    times = [i.echo_time_ms for i in by_echo]
    if None in times or len(set(times)) != len(times):
        return {}, f"cannot tell the echoes apart (echo times {times})"
    return dict(zip(roles, by_echo, strict=True)), None  # roles are shortest echo first


def _reproduced_studies(
    prepared: Sequence[_Series], existing: ExistingDataset
) -> tuple[dict[str, tuple[str, str]], dict[Path, Path]]:
    """Studies whose images the dataset already holds: study -> (participant, session)."""
    matches: dict[Path, Path] = {}
    votes: dict[str, Counter[tuple[str, str]]] = {}
    for item in prepared:
        for image in item.images.values():
            found = existing.find_same_image(image.nifti)
            if found is None:
                continue
            matches[image.nifti] = found
            relative = found.relative_to(existing.root).parts
            place = (relative[0].removeprefix("sub-"), relative[1].removeprefix("ses-"))
            votes.setdefault(item.series.study_uid, Counter())[place] += 1
    return {study: count.most_common(1)[0][0] for study, count in votes.items()}, matches


def _targets(
    item: _Series, plan: LabelPlan, root: Path, rules: DicomHeuristics, runs: Mapping[str, int]
) -> dict[str, Path]:
    participant = plan.participants[item.series.patient_id]
    session = plan.studies[item.series.study_uid].session
    assert session is not None
    out = {}
    for role in item.images:
        spec = rules.roles[role]
        run = runs.get(role)
        out[role] = bids_path(
            root,
            participant,
            session,
            suffix=spec.suffix,
            ce=spec.ce,
            run=str(run) if run else None,
        )
    return out


def _write_series(
    item: _Series,
    plan: LabelPlan,
    root: Path,
    rules: DicomHeuristics,
    redactor: Redactor,
    matches: Mapping[Path, Path],
    runs: Mapping[str, int],
    source: Path,
) -> SeriesRow:
    series = item.series
    participant = plan.participants.get(series.patient_id)
    study = plan.studies.get(series.study_uid)
    session = study.session if study is not None else None

    def row(status: Status, reason: str, outputs: Sequence[str] = ()) -> SeriesRow:
        text = redactor.text(reason)
        log = logger.error if status == "failed" else logger.info
        log("%s: %s: %s", _where(participant, session, series, redactor), status, text)
        return SeriesRow(
            participant=participant if item.classification.converted else None,
            session=session if item.classification.converted else None,
            series_number=series.series_number,
            description=" ".join(redactor.text(series.description).split()),
            roles=item.classification.roles,
            status=status,
            outputs=tuple(outputs),
            reason=text,
        )

    if not item.classification.converted:
        damaged = ""
        if series.bad_files:
            listed = _listed(series.bad_files, redactor, source)
            damaged = f"{len(series.bad_files)} damaged file(s): {listed}"
        if item.classification.decision == "unreadable":
            return row("failed", f"{item.classification.reason}; {damaged}")
        return row("skipped", item.classification.reason + (f"; {damaged}" if damaged else ""))
    if item.problem is not None:
        return row("failed", item.problem)
    if study is None or study.problem is not None or session is None:
        return row("failed", study.problem if study is not None and study.problem else "no session")
    written, present, conflicts = [], [], []
    for role, target in _targets(item, plan, root, rules, runs).items():
        image = item.images[role]
        relative = target.relative_to(root).as_posix()
        if image.nifti in matches:
            present.append(matches[image.nifti].relative_to(root).as_posix())
            continue
        if target.exists():
            if same_image(target, image.nifti):
                present.append(relative)
            else:
                conflicts.append(relative)
            continue
        _place_image(image, target, item.series, rules, redactor)
        written.append(relative)
    outputs = written + present
    if conflicts:
        return row(
            "failed",
            f"{', '.join(conflicts)} already exist(s) with other images: not overwritten",
            outputs,
        )
    if not written:
        return row("exists", "already in the dataset with the same images", outputs)
    reason = item.classification.reason
    if series.other_objects:
        kinds = ", ".join(sorted(set(series.other_objects)))
        reason += f"; {len(series.other_objects)} non-image object(s) left out ({kinds})"
    if present:
        reason += f"; {', '.join(present)} was already there"
    return row("converted", reason, outputs)


def _key(series: DicomSeries) -> tuple[str, str, str]:
    return (series.patient_id, series.study_uid, series.series_uid)


def _run_indices(
    prepared: Sequence[_Series], plan: LabelPlan, matches: Mapping[Path, Path]
) -> dict[tuple[str, str, str], dict[str, int]]:
    """BIDS run index per series and role, for roles a session receives more than once."""
    by_session: dict[tuple[str, str], list[tuple[int, tuple[str, str, str], str]]] = {}
    for item in prepared:
        study = plan.studies.get(item.series.study_uid)
        if not item.images or study is None or study.session is None:
            continue
        place = (plan.participants[item.series.patient_id], study.session)
        for role, image in item.images.items():
            if image.nifti in matches:
                continue  # already in the dataset under its own name
            by_session.setdefault(place, []).append(
                (item.series.series_number or 0, _key(item.series), role)
            )
    runs: dict[tuple[str, str, str], dict[str, int]] = {}
    for entries in by_session.values():
        counts = Counter(role for _, _, role in entries)
        seen: Counter[str] = Counter()
        for _, key, role in sorted(entries):
            if counts[role] > 1:
                seen[role] += 1
                runs.setdefault(key, {})[role] = seen[role]
    return runs


def _where(
    participant: str | None, session: str | None, series: DicomSeries, redactor: Redactor
) -> str:
    place = f"sub-{participant} ses-{session} " if participant and session else ""
    return place + _label(series, redactor)


def _place_image(
    image: Dcm2niixImage,
    target: Path,
    series: DicomSeries,
    rules: DicomHeuristics,
    redactor: Redactor,
) -> None:
    sidecar, dropped = scrub_sidecar(image.sidecar, redactor, rules.sidecar_remove)
    agent = str(series.attributes.get("ContrastBolusAgent") or "")
    absent = re.search(rules.contrast_agent_absent, agent, re.IGNORECASE)
    if not absent and not redactor.found(agent):
        sidecar["ContrastBolusAgent"] = agent  # dcm2niix does not copy it
    if dropped:
        logger.info(
            "%s: sidecar keys left out (identifying values): %s", target.name, ", ".join(dropped)
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        target.with_name(target.name.removesuffix(".nii.gz") + ".json"),
        json.dumps(sidecar, indent=2) + "\n",
    )
    # dcm2niix wrote the image completely before returning; the rename is atomic
    # (the staging folder is inside the dataset, on the same file system).
    image.nifti.chmod(0o644)
    image.nifti.replace(target)


def _file_rows(scan: DicomScan, redactor: Redactor) -> list[SeriesRow]:
    """Rows for the files of no series: damaged, not read, not DICOM, outside any series."""
    rows = []
    for damaged in scan.damaged:
        reason = f"{redactor.path(damaged.path, scan.root)}: {damaged.problem}"
        logger.error("DICOM file without a usable series: %s", reason)
        description = " ".join(redactor.text(damaged.description).split())
        rows.append(
            SeriesRow(None, None, damaged.series_number, description, (), "failed", (), reason)
        )
    for path, why in scan.not_read:
        reason = f"{redactor.path(path, scan.root)}: {why}"
        logger.error("file not read: %s", reason)
        rows.append(SeriesRow(None, None, None, "", (), "failed", (), reason))
    if scan.not_dicom:
        reason = f"{scan.not_dicom} file(s) not DICOM"
        rows.append(SeriesRow(None, None, None, "", (), "ignored", (), reason))
    if scan.outside_series:
        kinds = ", ".join(sorted(set(scan.outside_series)))
        reason = f"{len(scan.outside_series)} DICOM object(s) outside any series ({kinds})"
        rows.append(SeriesRow(None, None, None, "", (), "ignored", (), reason))
    return rows


# --------------------------------------------------------------------------- tables


def _text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _age_years(attributes: Mapping[str, Any], study_date: str) -> int | None:
    """Age at the first study from PatientAge (nnnY/M/W/D) or the birth date; 90+ is 90."""
    text = str(attributes.get("PatientAge") or "")
    age: float | None = None
    if len(text) == 4 and text[:3].isdigit() and text[3] in "YMWD":
        age = int(text[:3]) / {"Y": 1, "M": 12, "W": 52.1775, "D": 365.25}[text[3]]
    birth = str(attributes.get("PatientBirthDate") or "")
    if not age and len(birth) == 8 and birth.isdigit() and len(study_date) == 8:
        born, seen = int(birth), int(study_date)
        age = (seen - born) // 10000  # whole years: YYYYMMDD arithmetic
    if not age or age < 0:
        return None
    return min(int(age), 90)  # HIPAA: ages over 89 are one category


def _covariates_by_label(
    covariates: pd.DataFrame | None, plan: LabelPlan, redactor: Redactor
) -> dict[str, dict[str, Any]]:
    if covariates is None:
        return {}
    table = covariates.copy()
    if "PatientID" in table:
        table["participant_id"] = [plan.participants.get(str(p)) for p in table["PatientID"]]
        table = table.drop(columns=["PatientID"]).dropna(subset=["participant_id"])
    identifying = [
        c
        for c in table.columns
        if c != "participant_id" and any(redactor.found(str(v)) for v in table[c])
    ]
    for column in identifying:
        logger.warning("participants file: column %r holds identifying values; left out", column)
    table = table.drop(columns=identifying)
    by_label: dict[str, dict[str, Any]] = {}
    for record in table.to_dict(orient="records"):
        values = {str(k): v for k, v in record.items()}
        by_label[str(values.pop("participant_id")).removeprefix("sub-")] = values
    return by_label


def _update_tables(
    root: Path,
    rows: Sequence[SeriesRow],
    prepared: Sequence[_Series],
    plan: LabelPlan,
    existing: ExistingDataset,
    covariates: pd.DataFrame | None,
    redactor: Redactor,
) -> tuple[str, ...]:
    """participants.tsv, sessions.tsv and dataset_description.json; returns the new sessions."""
    written = {(r.participant, r.session) for r in rows if r.status == "converted"}
    if not written:
        return ()
    ensure_dataset_description(root, "mriproc convert: BIDS dataset from DICOM")
    listed = set()
    if existing.participants is not None and "participant_id" in existing.participants:
        listed = {str(p).removeprefix("sub-") for p in existing.participants["participant_id"]}
    patient_of = {label: patient for patient, label in plan.participants.items()}
    extra = _covariates_by_label(covariates, plan, redactor)
    first_series: dict[str, _Series] = {}
    for item in sorted(prepared, key=lambda i: i.series.study_date):
        first_series.setdefault(item.series.patient_id, item)
    new_participants = []
    for participant in sorted({p for p, _ in written if p is not None} - listed):
        item = first_series[patient_of[participant]]
        sex = str(item.series.attributes.get("PatientSex") or "")
        new_participants.append(
            {
                "participant_id": f"sub-{participant}",
                "sex": sex if sex in ("M", "F", "O") else None,
                "age": _text(_age_years(item.series.attributes, item.series.study_date)),
                **extra.get(participant, {}),
            }
        )
    if new_participants:
        add_participants(root, new_participants)
    ensure_readme(root, _README)
    new_sessions = []
    for participant in sorted({p for p, _ in written if p is not None}):
        known = existing.sessions.get(participant, {})
        sessions = sorted(
            {s for p, s in written if p == participant and s is not None} - set(known)
        )
        labels = {label.session: label for label in plan.studies.values()}
        add_sessions(
            root,
            participant,
            [
                {
                    "session_id": f"ses-{s}",
                    "visit_month": labels[s].visit_month,
                    "days_from_baseline": labels[s].days,
                }
                for s in sessions
            ],
        )
        new_sessions += [f"sub-{participant}/ses-{s}" for s in sessions]
    write_column_dictionaries(root)
    return tuple(new_sessions)


# The README of a dataset mriproc convert starts (an existing one is kept).
_README = """\
# MRI converted from DICOM by mriproc convert

Anatomical MRI series converted to BIDS by `mriproc convert` (dcm2niix), with
de-identified sidecars: no DICOM identifier (name, ID, birth date, institution, ...)
is kept. `code/mriproc/convert_series.tsv` lists every series found in the DICOM
and what became of it (converted, skipped or failed, with the reason).

Describe the study here: who acquired the data, on which scanners, under which
ethics approval and data-sharing terms.
"""


def _write_report(root: Path, rows: Sequence[SeriesRow]) -> Path:
    path = root / REPORT
    earlier: list[list[str]] = []
    conversion = 1
    if path.is_file():
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if list(table.columns) == list(REPORT_COLUMNS):
            earlier = table.values.tolist()
            conversion = 1 + max((int(c) for c in table["conversion"] if c.isdigit()), default=0)
    order = {"failed": 0, "converted": 1, "exists": 2, "skipped": 3, "ignored": 4}

    def key(r: SeriesRow) -> tuple[Any, ...]:
        return (
            r.participant or "~",
            r.session or "",
            r.series_number or 0,
            r.description,
            order[r.status],
        )

    new = [
        [
            conversion,
            f"sub-{r.participant}" if r.participant else None,
            f"ses-{r.session}" if r.session else None,
            r.series_number,
            r.description or None,
            ",".join(r.roles) or None,
            r.status,
            ",".join(r.outputs) or None,
            " ".join(r.reason.split()),
        ]
        for r in sorted(rows, key=key)
    ]
    return write_table(path, REPORT_COLUMNS, [*earlier, *new])


def _mapping_record(
    mapping: ConversionMapping, plan: LabelPlan, prepared: Sequence[_Series]
) -> ConversionMapping:
    """The input mapping plus every label this run gave (for ``--mapping-out``)."""
    record = ConversionMapping(
        participants={**mapping.participants, **plan.participants},
        baseline_dates={**mapping.baseline_dates, **plan.baselines},
        sessions=dict(mapping.sessions),
        series_roles=dict(mapping.series_roles),
        description_roles=dict(mapping.description_roles),
        notes=dict(mapping.notes),
    )
    for item in prepared:
        study = plan.studies.get(item.series.study_uid)
        if study is not None and study.session is not None:
            record.sessions.setdefault(item.series.study_uid, study.session)
            note = f"StudyDate {item.series.study_date or NA}"
            record.notes.setdefault(("StudyInstanceUID", item.series.study_uid, "session"), note)
    return record
