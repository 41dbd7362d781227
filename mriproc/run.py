"""``mriproc run BIDS_DIR OUT_DIR participant``: every session's visit workflow, then the tables.

All selected sessions go into one Nipype workflow, run with the chosen plugin; a
session that fails does not stop the others.  Afterwards the endpoint tables are
rebuilt from the measures records of every processed session (so participants can be
run in separate jobs), with a row saying why for every endpoint that could not be
computed, and ``errors.tsv`` lists the failed sessions with the reason and the crash
file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mriproc.config import Protocol
from mriproc.followup import LONGITUDINAL_ENDPOINTS
from mriproc.io.bids import BidsDataset, SessionInputs, bids_path, discover_dataset
from mriproc.longitudinal_outputs import longitudinal_record_path
from mriproc.tables import (
    EndpointRow,
    ErrorRow,
    LesionRow,
    write_dataset_description,
    write_endpoints,
    write_errors,
    write_lesions,
    write_rater_agreement,
)
from mriproc.visit_lesions import LESION_ENDPOINTS

__all__ = ["VISIT_ENDPOINTS", "RunResult", "run_participants"]

logger = logging.getLogger(__name__)

# Endpoints the per-visit workflow measures; the longitudinal workflow adds
# LONGITUDINAL_ENDPOINTS at every follow-up.
VISIT_ENDPOINTS = (*LESION_ENDPOINTS, "pcf", "bpf")


@dataclass(frozen=True)
class RunResult:
    """What a participant-level run did."""

    processed: int
    failed: int
    skipped: int
    endpoints: Path
    lesions: Path
    errors: Path


def _record_path(root: Path, session: SessionInputs) -> Path:
    return bids_path(
        root,
        session.participant,
        session.session,
        suffix="measures",
        extension=".json",
        desc="visit",
    )


def _processable(session: SessionInputs, protocol: Protocol) -> str | None:
    """Why the visit workflow cannot run on ``session`` (None when it can)."""
    needs = [protocol.reading_space, *protocol.pcf.channels]
    lacking = [role for role in dict.fromkeys(needs) if role not in session.files]
    if lacking:
        return "needs " + ", ".join(
            f"{role} ({session.problems.get(role, 'missing')})" for role in lacking
        )
    return None


def _crash_reasons(crash_dir: Path) -> dict[str, tuple[str, str]]:
    """Visit workflow name -> (last line of the error, crash file) from Nipype crash files."""
    from nipype.utils.filemanip import loadcrash

    reasons: dict[str, tuple[str, str]] = {}
    for crash in sorted(crash_dir.glob("crash-*")):
        try:
            content = loadcrash(str(crash))
        except Exception:
            continue
        node = content.get("node")
        fullname = getattr(node, "fullname", "") or ""
        lines = [line.strip() for line in "".join(content.get("traceback", [])).splitlines()]
        message = next((line for line in reversed(lines) if line), "unknown error")
        for part in fullname.split("."):
            if part.startswith(("visit_", "longitudinal_")):
                reasons.setdefault(part, (message, str(crash)))
    return reasons


def run_participants(
    bids_dir: Path,
    output_dir: Path,
    protocol: Protocol,
    *,
    protocol_ref: str,
    work_dir: Path,
    participant_labels: Sequence[str] | None = None,
    session_labels: Sequence[str] | None = None,
    plugin: str = "MultiProc",
    plugin_args: dict[str, Any] | None = None,
    rater_masks: Path | None = None,
) -> RunResult:
    """Run the visit workflow on every selected session and rebuild the tables.

    ``rater_masks`` is a BIDS-Derivatives folder: a session's
    ``sub-*/ses-*/anat/sub-*_ses-*_desc-t2lesion_mask.nii.gz`` there, when present, is
    used for its lesion endpoints (``rater_agreement.tsv`` compares it with the
    automated mask).
    """
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging
    from nipype.pipeline import engine as pe

    from mriproc.workflows.longitudinal import init_longitudinal_wf, longitudinal_wf_name
    from mriproc.workflows.visit import init_visit_wf, visit_wf_name

    root = output_dir / "mriproc"
    root.mkdir(parents=True, exist_ok=True)
    dataset = discover_dataset(
        bids_dir, protocol, participant_labels=participant_labels, session_labels=session_labels
    )
    write_dataset_description(
        root, source_datasets=[str(bids_dir.resolve())], protocol_name=protocol.name
    )
    crash_dir = work_dir / "crash"
    crash_dir.mkdir(parents=True, exist_ok=True)
    for old in crash_dir.glob("crash-*"):
        old.unlink()
    nipype_config.update_config(
        {
            "execution": {
                "crashdump_dir": str(crash_dir),
                "crashfile_format": "pklz",
                "stop_on_first_crash": "false",
                "hash_method": "content",
                # Nipype asks a web service for its latest version otherwise: no network
                # at run time (containers run with --network none).
                "check_version": "false",
            },
            "logging": {"workflow_level": "WARNING", "interface_level": "WARNING"},
        }
    )
    # The levels above take effect only through update_logging (else Nipype's INFO
    # lines about every node fill the terminal).
    nipype_logging.update_logging(nipype_config)
    os.environ.setdefault("LOGNAME", os.environ.get("USER", "mriproc"))
    top = pe.Workflow(name="mriproc_wf", base_dir=str(work_dir))
    to_run: list[SessionInputs] = []
    visit_wfs: dict[tuple[str, str], pe.Workflow] = {}
    longitudinal_participants: list[str] = []
    skipped: dict[tuple[str, str], str] = {}
    for session in dataset.sessions:
        reason = _processable(session, protocol)
        if reason is not None:
            skipped[(session.participant_id, session.session_id)] = reason
            continue
        rater = None
        if rater_masks is not None:
            candidate = bids_path(
                rater_masks, session.participant, session.session, suffix="mask", desc="t2lesion"
            )
            rater = candidate.resolve() if candidate.is_file() else None
        visit_wfs[(session.participant, session.session)] = init_visit_wf(
            session, protocol, root, protocol_ref=protocol_ref, rater_mask=rater
        )
        top.add_nodes([visit_wfs[(session.participant, session.session)]])
        to_run.append(session)
    # Longitudinal: every participant whose baseline and at least one later visit run.
    for participant in sorted({s.participant for s in to_run}):
        visits = [
            s.session
            for s in dataset.visits_of(participant)
            if (participant, s.session) in visit_wfs
        ]
        if len(visits) < 2 or visits[0] != dataset.baseline_session(participant):
            continue
        longitudinal = init_longitudinal_wf(participant, visits, root, protocol_ref=protocol_ref)
        longitudinal_participants.append(participant)
        for index, label in enumerate(visits):
            top.connect(
                visit_wfs[(participant, label)],
                "bundle.bundle",
                longitudinal,
                f"inputnode.bundle_{index}",
            )
    if to_run:
        logger.info("processing %d session(s) with the %s plugin", len(to_run), plugin)
        try:
            top.run(plugin=plugin, plugin_args=plugin_args or {})
        except RuntimeError as err:  # some nodes failed; the others ran
            logger.warning("%s", err)
    crashes = _crash_reasons(crash_dir)
    errors = [
        ErrorRow(pid, ses, "inputs", reason) for (pid, ses), reason in sorted(skipped.items())
    ]
    failed = 0
    for session in to_run:
        if _record_path(root, session).is_file() and visit_wf_name(session) not in crashes:
            continue
        failed += 1
        message, crash = crashes.get(visit_wf_name(session), ("no result written", ""))
        errors.append(
            ErrorRow(session.participant_id, session.session_id, "visit", message, crash or None)
        )
        logger.error("%s %s failed: %s", session.participant_id, session.session_id, message)
    longitudinal_failed: dict[str, str] = {}
    for participant in longitudinal_participants:
        if longitudinal_wf_name(participant) in crashes:
            message, crash = crashes[longitudinal_wf_name(participant)]
            errors.append(ErrorRow(f"sub-{participant}", None, "longitudinal", message, crash))
            longitudinal_failed[f"sub-{participant}"] = "longitudinal stage failed: " + message
            logger.error("sub-%s longitudinal stage failed: %s", participant, message)
    problems = dict(skipped)
    problems.update(
        {
            (e.participant_id, e.session or ""): "processing failed: " + e.reason
            for e in errors
            if e.stage == "visit"
        }
    )
    endpoints, lesions = _assemble_tables(root, dataset, protocol, problems, longitudinal_failed)
    errors_path = write_errors(errors, root, protocol_name=protocol.name)
    return RunResult(len(to_run) - failed, failed, len(skipped), endpoints, lesions, errors_path)


def _assemble_tables(
    root: Path,
    dataset: BidsDataset,
    protocol: Protocol,
    problems: dict[tuple[str, str], str],
    longitudinal_failed: dict[str, str],
) -> tuple[Path, Path]:
    """``endpoints.tsv`` and ``lesions.tsv`` from every session's measures record.

    All participants on disk are gathered, so participants run in separate jobs end
    up in one table.
    """
    full = discover_dataset(dataset.root, protocol, check_images=False)
    rows: list[EndpointRow] = []
    lesion_rows: list[LesionRow] = []
    rater_rows: list[dict[str, Any]] = []
    for session in full.sessions:
        participant = full.participants.get(session.participant)
        arm = participant.arm if participant else None
        record = _record_path(root, session)
        content: dict[str, Any] = {}
        if record.is_file():
            content = json.loads(record.read_text(encoding="utf-8"))
        measures = content.get("measures", {})
        key = (session.participant_id, session.session_id)
        for endpoint in VISIT_ENDPOINTS:
            value = measures.get(endpoint)
            if value is not None:
                note = "rater mask" if "rater" in content and endpoint in LESION_ENDPOINTS else ""
                rows.append(
                    EndpointRow(
                        key[0], key[1], session.visit_month, arm, endpoint, float(value), note=note
                    )
                )
                continue
            status = content.get("not_available", {}).get(endpoint) or problems.get(
                key, "not processed yet (run its participant level)"
            )
            rows.append(
                EndpointRow(key[0], key[1], session.visit_month, arm, endpoint, None, status)
            )
        if "rater" in content:
            rater_rows.append({"participant_id": key[0], "session": key[1], **content["rater"]})
        longitudinal: dict[str, Any] = {}
        tracked = longitudinal_record_path(root, session.participant, session.session)
        if tracked.is_file():
            longitudinal = json.loads(tracked.read_text(encoding="utf-8"))
        baseline = session.session == full.baseline_session(session.participant)
        if not baseline:
            reason = problems.get(key) or longitudinal_failed.get(key[0]) or _not_tracked(content)
            rows += _longitudinal_rows(session, arm, longitudinal, reason)
        ids = longitudinal.get("lesion_ids", {})
        categories = longitudinal.get("categories", {})
        for lesion in content.get("lesions", []):
            x, y, z = lesion["centroid_mm"]
            lesion_rows.append(
                LesionRow(
                    key[0],
                    key[1],
                    session.visit_month,
                    lesion_id=ids.get(
                        str(lesion["label"]), f"{session.session}-L{lesion['label']:03d}"
                    ),
                    label=lesion["label"],
                    volume_ml=lesion["volume_ml"],
                    centroid_x_mm=x,
                    centroid_y_mm=y,
                    centroid_z_mm=z,
                    category=categories.get(
                        str(lesion["label"]), "baseline" if baseline else "untracked"
                    ),
                    enhancing=lesion["enhancing"],
                    black_hole=lesion["black_hole"],
                )
            )
    long_path, _ = write_endpoints(rows, root, protocol_name=protocol.name)
    lesions_path = write_lesions(lesion_rows, root, protocol_name=protocol.name)
    if rater_rows:
        write_rater_agreement(rater_rows, root, protocol_name=protocol.name)
    return long_path, lesions_path


def _not_tracked(visit_record: dict[str, Any]) -> str:
    if not visit_record:
        return "not processed yet (run its participant level)"
    return "longitudinal stage did not run (baseline or previous visit missing or failed)"


def _longitudinal_rows(
    session: SessionInputs, arm: str | None, record: dict[str, Any], reason: str
) -> list[EndpointRow]:
    """A follow-up's longitudinal endpoint rows from its longitudinal record."""
    measures = record.get("measures", {})
    missing = record.get("not_available", {})
    rows = []
    for endpoint in LONGITUDINAL_ENDPOINTS:
        value = measures.get(endpoint)
        status = "ok" if value is not None else missing.get(endpoint, reason)
        rows.append(
            EndpointRow(
                session.participant_id,
                session.session_id,
                session.visit_month,
                arm,
                endpoint,
                None if value is None else float(value),
                status,
            )
        )
    return rows
