"""``mriproc report OUT_DIR``: the QC report pages from a run's tables and derivatives.

Writes ``OUT_DIR/mriproc/report/``: ``index.html`` (links to every subject page
and to the cohort page), ``cohort.html`` (endpoint distributions by arm, the error
list, the flagged scans) and ``sub-<id>.html`` per subject (trajectories, and per
visit the QC mosaic, registration figures, the endpoint values and the reasons for
anything missing).  A visit whose images are missing or unreadable gets a note with
the reason, never stops the report.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pandas as pd

from mriproc.endpoints import ENDPOINTS
from mriproc.io.atomic import atomic_write_text
from mriproc.progress import Progress
from mriproc.report.flags import Flag, flagged_scans
from mriproc.report.inputs import (
    MASK_LAYERS,
    NO_ARM,
    TrialTables,
    VisitFiles,
    cell_text,
    read_trial_tables,
    visit_files,
)
from mriproc.report.mosaic import ImageError, draw_visit_mosaic
from mriproc.report.pages import (
    COHORT_PAGE,
    INDEX_PAGE,
    SubjectSummary,
    VisitSection,
    cohort_page,
    index_page,
    subject_page,
)
from mriproc.report.plots import arm_distributions_png, trajectories_png
from mriproc.report.png import data_uri
from mriproc.tables import FLAGGED, ErrorRow

__all__ = ["ReportResult", "write_report"]

_CHANGE_LAYERS = ("newlesion", "enlarginglesion")


@dataclass(frozen=True)
class ReportResult:
    """Where the report is and how many scans it flags."""

    index: Path
    pages: tuple[Path, ...]
    flagged: int


def _value_text(value: float, unit: str) -> str:
    return f"{value:g}" if unit in ("n", "0/1") else f"{value:.4g}"


def _endpoint_rows(rows: pd.DataFrame) -> list[list[str]]:
    cells = []
    for row in rows.to_dict(orient="records"):
        status = str(row["status"])
        value = row["value"]
        text = "n/a" if cell_text(value) is None else _value_text(float(value), str(row["unit"]))
        cells.append(
            [
                html.escape(str(row["endpoint"])),
                text,
                html.escape(str(row["unit"])),
                f'<span class="{_status_class(status)}">{html.escape(status)}</span>',
            ]
        )
    return cells


def _status_class(status: str) -> str:
    """The CSS class of an endpoint's status: ok, flagged (kept for review) or n/a."""
    if status == "ok":
        return "ok"
    return "flagged" if status.startswith(FLAGGED) else "na"


def _why_no_images(flag: Flag | None, files: VisitFiles) -> str:
    where = f"no derivatives written for this visit ({files.record_path.parent} has no sidecar)"
    return where + ("; the reasons are flagged above" if flag is not None else "")


def _missing_layer_notes(files: VisitFiles, rows: pd.DataFrame, *, baseline: bool) -> list[str]:
    """Why each mask layer the run did not write is missing."""
    status = dict(zip(rows["endpoint"], rows["status"], strict=True))
    notes = []
    for key, (label, endpoint) in MASK_LAYERS.items():
        if key in files.masks:
            continue
        if key in _CHANGE_LAYERS and baseline:
            continue  # said once below: nothing to compare a baseline with
        reason = status.get(endpoint, "ok")
        if reason == "ok":
            reason = f"{files.record_path.name.split('_desc-')[0]}_desc-{key}_mask.nii.gz not found"
        notes.append(f"{label}: not available: {reason}")
    if baseline:
        notes.append("new and enlarging T2 lesions: not applicable at the baseline visit")
    return notes


def _visit_section(
    tables: TrialTables,
    participant_id: str,
    session: str,
    visit_month: float | None,
    *,
    baseline: bool,
    flag: Flag | None,
) -> VisitSection:
    rows = tables.endpoints[
        (tables.endpoints["participant_id"] == participant_id)
        & (tables.endpoints["session"] == session)
    ]
    files = visit_files(tables.root, participant_id, session)
    notes: list[str] = []
    uri = None
    if files.reading is None:
        notes.append("images not available: " + _why_no_images(flag, files))
    else:
        notes += _missing_layer_notes(files, rows, baseline=baseline)
        edge = next(iter(sorted(files.coregistered.items(), key=lambda i: i[0] != "T1w")), None)
        if edge is None:
            notes.append(
                "registration check not available: no contrast resampled into reading space "
                "(desc-coreg_* images not found)"
            )
        try:
            mosaic = draw_visit_mosaic(
                f"{participant_id} {session}",
                files.reading,
                files.masks,
                edge_image=edge,
                labels={k: v[0] for k, v in MASK_LAYERS.items()},
                reading_name=files.reading_role or files.reading.name,
            )
        except ImageError as err:
            notes.append(f"images not available: {err}")
        else:
            uri = data_uri(mosaic.png)
            labels = {**{k: v[0] for k, v in MASK_LAYERS.items()}, "registration": "T1w edges"}
            notes += [
                f"{labels[k]}: not drawn: {why}" for k, why in sorted(mosaic.left_out.items())
            ]
    qc = (files.record or {}).get("qc", {})
    return VisitSection(
        session=session,
        visit_month=visit_month,
        endpoint_rows=_endpoint_rows(rows),
        mosaic_uri=uri,
        notes=notes,
        qc=qc if isinstance(qc, dict) else {},
        flag=flag,
    )


def _arms(endpoints: pd.DataFrame) -> list[str]:
    """Arms in the order of ``mriproc stats``: placebo (the reference) first, then sorted."""
    present = sorted({str(a) for a in endpoints["arm"].dropna()}, key=lambda a: (a != "placebo", a))
    return present + ([NO_ARM] if endpoints["arm"].isna().any() else [])


def _error_rows(errors: Sequence[ErrorRow]) -> list[list[str]]:
    rows = []
    for error in errors:
        scan = Flag(error.participant_id, error.session, ())
        where = f"{error.participant_id} {error.session or '(participant)'}"
        rows.append(
            [
                f'<a href="{html.escape(scan.link)}">{html.escape(where)}</a>',
                html.escape(error.stage),
                html.escape(error.reason),
                html.escape(error.crash_file or ""),
            ]
        )
    return rows


def write_report(out_dir: Path, *, progress_stream: TextIO | None = None) -> ReportResult:
    """Write the QC report of the run in ``out_dir`` (the folder given to ``mriproc run``).

    Raises :class:`~mriproc.report.inputs.ReportInputError` when ``endpoints.tsv``
    is missing or unreadable.
    """
    tables = read_trial_tables(out_dir)
    report_dir = tables.root / "report"
    flags = flagged_scans(tables)
    by_scan = {(f.participant_id, f.session): f for f in flags}
    participants = tables.participants()
    visits_of = {p: tables.sessions_of(p) for p in participants}
    progress = Progress(
        sum(len(v) for v in visits_of.values()) + len(participants) + 1,
        "report",
        stream=progress_stream,
    )
    pages: list[Path] = []
    summaries: list[SubjectSummary] = []
    for participant in participants:
        sections: list[VisitSection] = []
        for number, (session, month) in enumerate(visits_of[participant]):
            sections.append(
                _visit_section(
                    tables,
                    participant,
                    session,
                    month,
                    baseline=number == 0,
                    flag=by_scan.get((participant, session)),
                )
            )
            progress.step(f"{participant} {session}")
        rows = tables.endpoints[tables.endpoints["participant_id"] == participant]
        trajectory = data_uri(trajectories_png(rows)) if not rows.empty else None
        html_text = subject_page(
            participant,
            tables.arm_of(participant),
            trajectory,
            sections,
            by_scan.get((participant, None)),
        )
        pages.append(atomic_write_text(report_dir / f"{participant}.html", html_text))
        summaries.append(
            SubjectSummary(
                participant,
                tables.arm_of(participant),
                [s for s, _ in visits_of[participant]],
                sum(1 for f in flags if f.participant_id == participant),
            )
        )
        progress.step(participant)
    names = [e.name for e in ENDPOINTS if e.name in set(tables.endpoints["endpoint"])]
    ok = tables.endpoints[tables.endpoints["status"] == "ok"]
    distributions = (
        data_uri(arm_distributions_png(tables.endpoints, names, _arms(tables.endpoints)))
        if not ok.empty
        else None
    )
    pages.append(
        atomic_write_text(
            report_dir / COHORT_PAGE,
            cohort_page(
                distributions,
                _arms(tables.endpoints),
                _error_rows(tables.errors),
                flags,
                list(tables.notes),
            ),
        )
    )
    stats = tables.root / "stats" / "summary.html"
    index = atomic_write_text(
        report_dir / INDEX_PAGE,
        index_page(summaries, flags, "../stats/summary.html" if stats.is_file() else None),
    )
    progress.step("cohort and index pages")
    return ReportResult(index, (index, *pages), len(flags))
