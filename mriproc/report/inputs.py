"""What the QC report reads: the run's tables and each visit's derivative files.

``endpoints.tsv`` is required (without it there is nothing to report); ``errors.tsv``
and ``participants.tsv`` are optional and their absence is said on the cohort page.
Image files are only located here, never opened: a missing or unreadable file is a
note in the report, not a failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mriproc.io.bids import bids_path
from mriproc.tables import ErrorRow, TableError, read_table

__all__ = [
    "MASK_LAYERS",
    "NO_ARM",
    "ReportInputError",
    "TrialTables",
    "VisitFiles",
    "cell_text",
    "read_trial_tables",
    "visit_files",
]


NO_ARM = "no arm"  # the group of participants without an arm


class ReportInputError(ValueError):
    """The report cannot be made from this folder (message names the file)."""


# Mask layers drawn on the reading image: BIDS desc -> (what it shows, the endpoint
# whose status explains a missing mask).
MASK_LAYERS: dict[str, tuple[str, str]] = {
    "brain": ("brain mask", "bpf"),
    "pcfslab": ("PCF slab", "pcf"),
    "t2lesion": ("T2 lesions", "t2_lesion_volume"),
    "blackhole": ("black holes", "black_hole_volume"),
    "cel": ("enhancing lesions (CEL)", "cel_count"),
    "newlesion": ("new T2 lesions", "new_t2_count"),
    "enlarginglesion": ("enlarging T2 lesions", "enlarging_t2_count"),
}


@dataclass(frozen=True)
class TrialTables:
    """The run's tables, as the report uses them.

    ``endpoints`` has the columns of ``endpoints.tsv`` with ``arm`` completed from
    ``participants.tsv`` where the table has none; ``errors`` are the rows of
    ``errors.tsv`` (none when it is absent: ``notes`` then says so).
    """

    root: Path
    endpoints: pd.DataFrame
    errors: tuple[ErrorRow, ...]
    notes: tuple[str, ...]

    def participants(self) -> list[str]:
        """Every participant in the endpoint table or the error list, sorted."""
        ids = {str(p) for p in self.endpoints["participant_id"].dropna()}
        return sorted(ids | {e.participant_id for e in self.errors})

    def sessions_of(self, participant_id: str) -> list[tuple[str, float | None]]:
        """``(session, visit_month)`` of a participant, in visit order.

        Sessions only ``errors.tsv`` names (no endpoint rows) come last, month unknown.
        """
        rows = self.endpoints[self.endpoints["participant_id"] == participant_id]
        visits = rows.drop_duplicates("session")
        listed: list[tuple[str, float | None]] = [
            (str(s), None if cell_text(m) is None else float(m))
            for s, m in zip(visits["session"], visits["visit_month"], strict=True)
        ]
        known = {s for s, _ in listed}
        for error in self.errors:
            if error.participant_id == participant_id and error.session not in (None, *known):
                known.add(str(error.session))
                listed.append((str(error.session), None))
        return sorted(listed, key=lambda v: (v[1] is None, v[1] or 0.0, v[0]))

    def arm_of(self, participant_id: str) -> str | None:
        arms = self.endpoints.loc[self.endpoints["participant_id"] == participant_id, "arm"]
        arms = arms.dropna()
        return str(arms.iloc[0]) if len(arms) else None


def _participant_arms(out_dir: Path) -> tuple[dict[str, str], str | None]:
    """``participant_id -> arm`` from the participants.tsv ``mriproc stats`` would use."""
    from mriproc.stats.data import StatsInputError, find_participants, read_participants

    try:
        path = find_participants(out_dir)
        table = read_participants(path)
    except StatsInputError as err:
        return {}, f"arms from endpoints.tsv only: {err}"
    arms = {
        str(pid): str(arm)
        for pid, arm in zip(table["participant_id"], table["arm"], strict=True)
        if cell_text(arm) is not None
    }
    return arms, None


def read_trial_tables(out_dir: Path) -> TrialTables:
    """Read ``OUT_DIR/mriproc/{endpoints,errors}.tsv`` and the participants' arms."""
    root = out_dir / "mriproc"
    endpoints_path = root / "endpoints.tsv"
    if not endpoints_path.is_file():
        raise ReportInputError(
            f"{endpoints_path}: not found; OUT_DIR must be the output folder of "
            "'mriproc run BIDS_DIR OUT_DIR participant'"
        )
    notes: list[str] = []
    try:
        endpoints = read_table(endpoints_path)
    except (TableError, OSError, ValueError, pd.errors.ParserError) as err:
        raise ReportInputError(f"{endpoints_path}: cannot read it ({err})") from err
    errors_path = root / "errors.tsv"
    errors: list[ErrorRow] = []
    if errors_path.is_file():
        try:
            table = read_table(errors_path)
        except (TableError, OSError, ValueError, pd.errors.ParserError) as err:
            raise ReportInputError(f"{errors_path}: cannot read it ({err})") from err
        errors = [
            ErrorRow(
                str(row["participant_id"]),
                cell_text(row["session"]),
                str(row["stage"]),
                str(row["reason"]),
                cell_text(row["crash_file"]),
            )
            for row in table.to_dict(orient="records")
        ]
    else:
        notes.append(f"{errors_path} not found: the list of errors is not available")
    arms, problem = _participant_arms(out_dir)
    if problem:
        notes.append(problem)
    missing = endpoints["arm"].isna()
    endpoints.loc[missing, "arm"] = endpoints.loc[missing, "participant_id"].map(arms)
    return TrialTables(root, endpoints, tuple(errors), tuple(notes))


def cell_text(value: object) -> str | None:
    """A table cell as text, None when missing (``n/a``).

    >>> cell_text(float("nan")), cell_text(pd.NA), cell_text("ses-M00")
    (None, None, 'ses-M00')
    """
    missing = value is None or value is pd.NA or (isinstance(value, float) and value != value)
    return None if missing else str(value)


@dataclass(frozen=True)
class VisitFiles:
    """Where one visit's images are; None where the run wrote nothing.

    ``reading`` is the reading-space source image (from the visit record),
    ``masks`` maps a :data:`MASK_LAYERS` key to its mask, ``coregistered`` a contrast
    name (``T1w``, ``ce-gadolinium_T1w``) to its image resampled into reading space.
    """

    record: dict[str, Any] | None
    record_path: Path
    reading: Path | None
    reading_role: str | None
    masks: dict[str, Path]
    coregistered: dict[str, Path]


def _reading_source(anat: Path) -> str | None:
    """The reading image the visit's derivatives are on (``SpatialReference`` of a sidecar).

    The brain mask's sidecar is read first; any other sidecar naming it will do.
    """
    sidecars = sorted(anat.glob("*_desc-brain_mask.json")) + sorted(anat.glob("*.json"))
    for sidecar in sidecars:
        try:
            content = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        reference = content.get("SpatialReference") if isinstance(content, dict) else None
        if isinstance(reference, str):
            return reference
    return None


def visit_files(root: Path, participant_id: str, session: str) -> VisitFiles:
    """Locate the derivatives ``mriproc run`` wrote for one visit under ``root``."""
    participant = participant_id.removeprefix("sub-")
    label = session.removeprefix("ses-")
    record_path = bids_path(
        root, participant, label, suffix="measures", extension=".json", desc="visit"
    )
    record: dict[str, Any] | None = None
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            record = None
    reading = _reading_source(record_path.parent)
    role = None
    if record and reading:
        role = next((r for r, p in record.get("sources", {}).items() if p == reading), None)
    masks = {
        key: path
        for key in MASK_LAYERS
        if (path := bids_path(root, participant, label, suffix="mask", desc=key)).is_file()
    }
    anat = record_path.parent
    coregistered = {
        path.name.split(f"{session}_", 1)[1]
        .replace("desc-coreg_", "")
        .removesuffix(".nii.gz"): path
        for path in sorted(anat.glob(f"{participant_id}_{session}_*desc-coreg_*.nii.gz"))
    }
    return VisitFiles(
        record=record,
        record_path=record_path,
        reading=Path(reading) if reading else None,
        reading_role=role,
        masks=masks,
        coregistered=coregistered,
    )
