"""The tidy output tables: schema, validation and atomic writers.

Four tables leave mriproc, each with a JSON data dictionary beside it:

* ``endpoints.tsv`` – long: one row per participant x session x endpoint;
* ``endpoints_wide.tsv`` – one row per scan, one column per endpoint;
* ``lesions.tsv`` – one row per lesion per session;
* ``errors.tsv`` – every scan or stage that failed or was skipped.

A value is either a finite number with ``status`` ``ok`` or missing (``n/a``) with
a ``status`` saying why: :class:`EndpointRow` refuses anything else, so a missing
contrast can never become a silent zero.  The simulator writes its ground truth
through the same functions, so a benchmark is a join of two tables.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mriproc.endpoints import ENDPOINTS
from mriproc.io.atomic import atomic_write_text
from mriproc.io.provenance import generated_by, software_versions

__all__ = [
    "ENDPOINT_COLUMNS",
    "ERROR_COLUMNS",
    "FLAGGED",
    "LESION_CATEGORIES",
    "LESION_COLUMNS",
    "NA",
    "EndpointRow",
    "ErrorRow",
    "LesionRow",
    "TableError",
    "read_table",
    "write_data_dictionary",
    "write_dataset_description",
    "write_endpoints",
    "write_errors",
    "write_lesions",
    "write_rater_agreement",
    "write_table",
]

NA = "n/a"  # BIDS spelling of a missing value


class TableError(ValueError):
    """A row or table that does not follow the schema."""


_ENDPOINT_BY_NAME = {e.name: e for e in ENDPOINTS}

# The identifier columns of ``endpoints_wide.tsv`` (one row per scan).
WIDE_ID_COLUMNS = ("participant_id", "session", "visit_month", "arm")

# The status of a value kept but outside the protocol's plausibility bounds.
FLAGGED = "flagged: "

ENDPOINT_COLUMNS: dict[str, str] = {
    "participant_id": "Participant label with its sub- prefix.",
    "session": "Session label with its ses- prefix.",
    "visit_month": "Months since the baseline visit.",
    "arm": "Treatment arm from participants.tsv.",
    "endpoint": "Endpoint name (see Levels).",
    "value": "The endpoint's value in `unit`; n/a when it could not be computed.",
    "unit": "Unit of `value`.",
    "status": "ok; why the value is missing; or 'flagged: <reason>' when the value lies "
    "outside the protocol's plausibility bounds (kept for review, left out of statistics).",
    "note": "Further information (e.g. which inputs were used); may be empty.",
}

LESION_CATEGORIES = ("baseline", "new", "enlarging", "stable", "shrinking", "untracked")
LESION_COLUMNS: dict[str, str] = {
    "participant_id": "Participant label with its sub- prefix.",
    "session": "Session label with its ses- prefix.",
    "visit_month": "Months since the baseline visit.",
    "lesion_id": "Lesion identity, stable across the participant's sessions.",
    "label": "Value of this lesion in the session's lesion label map.",
    "volume_ml": "Lesion volume in mL.",
    "centroid_x_mm": "Centroid, scanner RAS x in mm (reading space).",
    "centroid_y_mm": "Centroid, scanner RAS y in mm (reading space).",
    "centroid_z_mm": "Centroid, scanner RAS z in mm (reading space).",
    "category": "One of " + ", ".join(LESION_CATEGORIES) + " (relative to the previous visit).",
    "enhancing": "1 when the lesion enhances with gadolinium, 0 if not, n/a if unknown.",
    "black_hole": "1 when the lesion holds a T1 black hole, 0 if not, n/a if unknown.",
}

ERROR_COLUMNS: dict[str, str] = {
    "participant_id": "Participant label with its sub- prefix.",
    "session": "Session label with its ses- prefix (n/a for participant-level failures).",
    "stage": "Processing stage that failed or skipped the scan.",
    "reason": "What went wrong, naming the file.",
    "crash_file": "Path of the Nipype crash file, if any.",
}


# --------------------------------------------------------------------------- rows


def _check_label(value: str, prefix: str, column: str) -> None:
    if not value.startswith(prefix) or len(value) == len(prefix):
        raise TableError(f"{column} must look like {prefix}<label>, got {value!r}")


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One row of ``endpoints.tsv``.

    >>> EndpointRow("sub-01", "ses-M00", 0, "placebo", "cel_count", None, "ok")
    Traceback (most recent call last):
    ...
    mriproc.tables.TableError: sub-01 ses-M00 cel_count: a missing value needs a status saying why
    """

    participant_id: str
    session: str
    visit_month: float | None
    arm: str | None
    endpoint: str
    value: float | None
    status: str = "ok"
    note: str = ""

    def __post_init__(self) -> None:
        where = f"{self.participant_id} {self.session} {self.endpoint}"
        _check_label(self.participant_id, "sub-", "participant_id")
        _check_label(self.session, "ses-", "session")
        if self.endpoint not in _ENDPOINT_BY_NAME:
            raise TableError(f"{where}: unknown endpoint (known: {', '.join(_ENDPOINT_BY_NAME)})")
        if self.value is None:
            if self.status == "ok" or not self.status.strip():
                raise TableError(f"{where}: a missing value needs a status saying why")
        else:
            if not math.isfinite(self.value):
                raise TableError(f"{where}: value {self.value!r} is not finite")
            if self.status != "ok" and not self.status.startswith(FLAGGED):
                raise TableError(
                    f"{where}: a value is present, so status must be 'ok' or '{FLAGGED}<reason>'"
                )
        if "\t" in self.status or "\n" in self.status or "\t" in self.note or "\n" in self.note:
            raise TableError(f"{where}: status and note must not contain tabs or newlines")

    @property
    def unit(self) -> str:
        """The endpoint's unit from the catalogue."""
        return _ENDPOINT_BY_NAME[self.endpoint].unit


@dataclass(frozen=True, slots=True)
class LesionRow:
    """One row of ``lesions.tsv``."""

    participant_id: str
    session: str
    visit_month: float | None
    lesion_id: str
    label: int
    volume_ml: float
    centroid_x_mm: float
    centroid_y_mm: float
    centroid_z_mm: float
    category: str
    enhancing: bool | None
    black_hole: bool | None

    def __post_init__(self) -> None:
        _check_label(self.participant_id, "sub-", "participant_id")
        _check_label(self.session, "ses-", "session")
        if self.category not in LESION_CATEGORIES:
            raise TableError(
                f"{self.participant_id} {self.session} lesion {self.lesion_id}: category "
                f"{self.category!r} is not one of {', '.join(LESION_CATEGORIES)}"
            )
        if not (self.volume_ml > 0 and math.isfinite(self.volume_ml)):
            raise TableError(f"lesion {self.lesion_id}: volume must be positive and finite")


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One row of ``errors.tsv``."""

    participant_id: str
    session: str | None
    stage: str
    reason: str
    crash_file: str | None = None


# --------------------------------------------------------------------------- formatting


def _format_number(value: float | None, unit: str | None = None) -> str:
    """Deterministic text for a number: integers for counts, 8 significant digits else.

    >>> _format_number(3.0, "n"), _format_number(0.812345678912, "fraction"), _format_number(None)
    ('3', '0.81234568', 'n/a')
    """
    if value is None:
        return NA
    if unit in ("n", "0/1"):
        if value != int(value):
            raise TableError(f"a {unit} value must be a whole number, got {value!r}")
        return str(int(value))
    text = f"{value:.8g}"
    return "0" if text == "-0" else text


def _format_cell(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return _format_number(value)
    text = str(value)
    if "\t" in text or "\n" in text:
        raise TableError(f"table cells must not contain tabs or newlines: {text!r}")
    return text


def _tsv(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["\t".join(columns)]
    lines.extend("\t".join(row) for row in rows)
    return "\n".join(lines) + "\n"


def _write_sidecar(tsv_path: Path, columns: dict[str, Any], protocol_name: str | None) -> Path:
    sidecar: dict[str, Any] = {name: meta for name, meta in columns.items()}
    sidecar["GeneratedBy"] = generated_by(protocol_name=protocol_name)
    sidecar["SoftwareVersions"] = software_versions()
    json_path = tsv_path.with_suffix(".json")
    atomic_write_text(json_path, json.dumps(sidecar, indent=2, sort_keys=False) + "\n")
    return json_path


def write_data_dictionary(
    tsv_path: Path, columns: dict[str, Any], *, protocol_name: str | None = None
) -> Path:
    """Write the JSON data dictionary beside ``tsv_path`` (column meanings, provenance)."""
    return _write_sidecar(tsv_path, columns, protocol_name)


def _session_sort_key(visit_month: float | None, session: str) -> tuple[float, str]:
    return (math.inf if visit_month is None else visit_month, session)


# --------------------------------------------------------------------------- writers


def write_endpoints(
    rows: Iterable[EndpointRow], out_dir: str | os.PathLike[str], *, protocol_name: str
) -> tuple[Path, Path]:
    """Write ``endpoints.tsv`` and ``endpoints_wide.tsv`` (+ data dictionaries).

    Rows are sorted by participant, visit month, session and catalogue order of
    endpoints, so the same results always give byte-identical files.
    """
    out = Path(out_dir)
    order = {e.name: i for i, e in enumerate(ENDPOINTS)}
    sorted_rows = sorted(
        rows,
        key=lambda r: (
            r.participant_id,
            _session_sort_key(r.visit_month, r.session),
            order[r.endpoint],
        ),
    )
    seen: set[tuple[str, str, str]] = set()
    for row in sorted_rows:
        key = (row.participant_id, row.session, row.endpoint)
        if key in seen:
            raise TableError(f"{' '.join(key)}: endpoint given twice")
        seen.add(key)

    long_path = out / "endpoints.tsv"
    atomic_write_text(
        long_path,
        _tsv(
            list(ENDPOINT_COLUMNS),
            (
                [
                    r.participant_id,
                    r.session,
                    _format_number(r.visit_month),
                    r.arm or NA,
                    r.endpoint,
                    _format_number(r.value, r.unit),
                    r.unit,
                    r.status,
                    r.note,
                ]
                for r in sorted_rows
            ),
        ),
    )
    columns: dict[str, Any] = {k: {"Description": v} for k, v in ENDPOINT_COLUMNS.items()}
    columns["endpoint"]["Levels"] = {e.name: f"{e.description} [{e.unit}]" for e in ENDPOINTS}
    columns["visit_month"]["Units"] = "month"
    _write_sidecar(long_path, columns, protocol_name)

    wide_path = out / "endpoints_wide.tsv"
    scans: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted_rows:
        scan = scans.setdefault(
            (r.participant_id, r.session),
            {"visit_month": r.visit_month, "arm": r.arm, "values": {}, "flagged": []},
        )
        scan["values"][r.endpoint] = _format_number(r.value, r.unit)
        if r.status.startswith(FLAGGED):
            scan["flagged"].append(r.endpoint)
    id_columns = list(WIDE_ID_COLUMNS)
    atomic_write_text(
        wide_path,
        _tsv(
            [*id_columns, *(e.name for e in ENDPOINTS), "flagged"],
            (
                [
                    participant,
                    session,
                    _format_number(scan["visit_month"]),
                    scan["arm"] or NA,
                    *(scan["values"].get(e.name, NA) for e in ENDPOINTS),
                    ",".join(scan["flagged"]) or NA,
                ]
                for (participant, session), scan in scans.items()
            ),
        ),
    )
    wide_columns: dict[str, Any] = {k: {"Description": ENDPOINT_COLUMNS[k]} for k in id_columns}
    wide_columns["visit_month"]["Units"] = "month"
    for e in ENDPOINTS:
        wide_columns[e.name] = {
            "Description": e.description + " n/a when missing; endpoints.tsv says why.",
            "Units": e.unit,
        }
    wide_columns["flagged"] = {
        "Description": "Endpoints of the scan whose value lies outside the protocol's "
        "plausibility bounds (comma-separated; endpoints.tsv says why); n/a when none."
    }
    _write_sidecar(wide_path, wide_columns, protocol_name)
    return long_path, wide_path


def write_lesions(
    rows: Iterable[LesionRow], out_dir: str | os.PathLike[str], *, protocol_name: str
) -> Path:
    """Write ``lesions.tsv`` (+ data dictionary), sorted by participant, visit, lesion id."""
    sorted_rows = sorted(
        rows,
        key=lambda r: (r.participant_id, _session_sort_key(r.visit_month, r.session), r.label),
    )
    path = Path(out_dir) / "lesions.tsv"
    atomic_write_text(
        path,
        _tsv(
            list(LESION_COLUMNS),
            (
                [
                    r.participant_id,
                    r.session,
                    _format_number(r.visit_month),
                    r.lesion_id,
                    str(r.label),
                    _format_number(r.volume_ml),
                    _format_number(r.centroid_x_mm),
                    _format_number(r.centroid_y_mm),
                    _format_number(r.centroid_z_mm),
                    r.category,
                    _format_cell(r.enhancing),
                    _format_cell(r.black_hole),
                ]
                for r in sorted_rows
            ),
        ),
    )
    columns: dict[str, Any] = {k: {"Description": v} for k, v in LESION_COLUMNS.items()}
    columns["volume_ml"]["Units"] = "mL"
    for axis in "xyz":
        columns[f"centroid_{axis}_mm"]["Units"] = "mm"
    columns["category"]["Levels"] = {
        "baseline": "Present at the first visit.",
        "new": "No overlap with any lesion of an earlier visit.",
        "enlarging": "Grew above the protocol's size-dependent threshold.",
        "stable": "Neither enlarging nor shrinking.",
        "shrinking": "Shrank beyond the protocol's size-dependent threshold.",
        "untracked": "A follow-up lesion not yet compared with earlier visits.",
    }
    _write_sidecar(path, columns, protocol_name)
    return path


RATER_COLUMNS: dict[str, str] = {
    "participant_id": "Participant label with its sub- prefix.",
    "session": "Session label with its ses- prefix.",
    "rater_mask": "The rater's T2 lesion mask used for this session's lesion endpoints.",
    "rater_volume_ml": "T2 lesion volume of the rater's mask (mL).",
    "rater_count": "T2 lesions in the rater's mask (the protocol's labelling).",
    "automated_volume_ml": "T2 lesion volume of mriproc's automated mask (mL).",
    "automated_count": "T2 lesions in the automated mask.",
    "dice": "Voxel Dice of the automated mask with the rater's.",
    "lesion_f1": "Lesion-wise F1 of the automated mask, the rater's as reference (lesions "
    "as the protocol's labelling defines them).",
    "detection_f1": "Lesion-wise detection F1 by the MSSEG convention: components of at least "
    "3 voxels, a lesion detected (or correct) when any voxel overlaps the other mask.",
    "detection_recall": "Share of the rater's lesions (MSSEG convention) the automated mask "
    "overlaps.",
    "detection_precision": "Share of the automated lesions (MSSEG convention) the rater's mask "
    "overlaps.",
}


def write_rater_agreement(
    rows: Iterable[dict[str, Any]], out_dir: str | os.PathLike[str], *, protocol_name: str | None
) -> Path:
    """Write ``rater_agreement.tsv`` (+ data dictionary): rater versus automated T2 masks."""
    path = Path(out_dir) / "rater_agreement.tsv"
    ordered = sorted(rows, key=lambda r: (r["participant_id"], r["session"]))
    atomic_write_text(
        path,
        _tsv(
            list(RATER_COLUMNS),
            (
                [
                    _format_number(r[c]) if isinstance(r.get(c), float) else str(r.get(c, NA))
                    for c in RATER_COLUMNS
                ]
                for r in ordered
            ),
        ),
    )
    _write_sidecar(path, {k: {"Description": v} for k, v in RATER_COLUMNS.items()}, protocol_name)
    return path


def write_errors(
    rows: Iterable[ErrorRow], out_dir: str | os.PathLike[str], *, protocol_name: str | None
) -> Path:
    """Write ``errors.tsv`` (+ data dictionary); a header-only file means no errors."""
    sorted_rows = sorted(rows, key=lambda r: (r.participant_id, r.session or "", r.stage))
    path = Path(out_dir) / "errors.tsv"
    atomic_write_text(
        path,
        _tsv(
            list(ERROR_COLUMNS),
            (
                [
                    r.participant_id,
                    r.session or NA,
                    r.stage,
                    " ".join(r.reason.split()),
                    r.crash_file or NA,
                ]
                for r in sorted_rows
            ),
        ),
    )
    _write_sidecar(path, {k: {"Description": v} for k, v in ERROR_COLUMNS.items()}, protocol_name)
    return path


def write_dataset_description(
    out_dir: str | os.PathLike[str], *, source_datasets: Sequence[str], protocol_name: str | None
) -> Path:
    """Write the BIDS-Derivatives ``dataset_description.json`` of mriproc's outputs."""
    description = {
        "Name": "mriproc derivatives",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": generated_by(protocol_name=protocol_name),
        "SourceDatasets": [{"URL": src} for src in source_datasets],
    }
    return atomic_write_text(
        Path(out_dir) / "dataset_description.json", json.dumps(description, indent=2) + "\n"
    )


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one of mriproc's TSV tables back, with ``n/a`` as missing.

    Identifier and text columns stay strings; the columns are checked against the
    schema of the table named by the file.
    """
    path = Path(path)
    expected = {
        "endpoints.tsv": list(ENDPOINT_COLUMNS),
        "lesions.tsv": list(LESION_COLUMNS),
        "errors.tsv": list(ERROR_COLUMNS),
        "endpoints_wide.tsv": [
            *WIDE_ID_COLUMNS,
            *(e.name for e in ENDPOINTS),
            "flagged",
        ],
    }.get(path.name)
    text_columns = {
        "participant_id",
        "session",
        "arm",
        "endpoint",
        "unit",
        "status",
        "note",
        "lesion_id",
        "category",
        "stage",
        "reason",
        "crash_file",
        "flagged",
    }
    frame = pd.read_csv(
        path,
        sep="\t",
        na_values=[NA],
        keep_default_na=False,
        dtype={c: "string" for c in text_columns},
    )
    if expected is not None and list(frame.columns) != expected:
        raise TableError(
            f"{path}: columns {list(frame.columns)} do not match the schema {expected}"
        )
    return frame


def write_table(
    path: str | os.PathLike[str],
    columns: dict[str, str],
    rows: Iterable[Sequence[Any]],
    *,
    protocol_name: str | None = None,
) -> Path:
    """Write any other table of mriproc: TSV cells as in every table, data dictionary beside.

    ``columns`` maps each column name to its description; each row gives one value
    per column (None is ``n/a``; tabs and newlines are refused).
    """
    path = Path(path)
    atomic_write_text(path, _tsv(list(columns), ([_format_cell(v) for v in row] for row in rows)))
    _write_sidecar(path, {k: {"Description": v} for k, v in columns.items()}, protocol_name)
    return path
