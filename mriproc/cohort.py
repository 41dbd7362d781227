"""Participant tables, and the cohort tables gathered from them.

The participant level writes, for each participant it ran, one file holding only
that participant's rows, ``OUT_DIR/mriproc/sub-<id>/sub-<id>_tables.json``
(endpoints, lesions, errors, rater agreement), atomically.  The cohort tables
(``endpoints.tsv``, ``endpoints_wide.tsv``, ``lesions.tsv``, ``errors.tsv``,
``rater_agreement.tsv``) are then rebuilt from every participant's file under an
exclusive lock (:func:`gather_cohort`): by each participant-level run, so that one
run on one machine ends with complete tables, and by ``mriproc run ... group``.

Participant-level jobs running at the same time (a SLURM array, one participant
per task, into one ``OUT_DIR``) therefore never clobber each other's rows: each
writes its own file, and each rebuild reads every file under the lock, so the
last rebuild holds every participant finished by then; the ``group`` job after
the array holds them all.  Participants of the dataset without a file yet get
rows saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mriproc.config import Protocol
from mriproc.endpoints import LESION_ENDPOINTS, LONGITUDINAL_ENDPOINTS, VISIT_ENDPOINTS
from mriproc.io.atomic import atomic_write_text
from mriproc.io.bids import BidsDataset, SessionInputs, discover_dataset
from mriproc.outputs import longitudinal_record_path, visit_record_path
from mriproc.plausibility import flag_implausible
from mriproc.tables import (
    EndpointRow,
    ErrorRow,
    LesionRow,
    TableError,
    write_endpoints,
    write_errors,
    write_lesions,
    write_rater_agreement,
)

# A role that a record says is missing: ``T1w_gad (missing)``.
_MISSING_ROLE = re.compile(r"(\w+) \(missing\)")

__all__ = [
    "FILE_STAGE",
    "IGNORED_STAGE",
    "NOT_PROCESSED",
    "SKIPPED_STAGE",
    "CohortTables",
    "ParticipantTables",
    "gather_cohort",
    "participant_tables",
    "participant_tables_path",
]


NOT_PROCESSED = "not processed yet (run its participant level)"

# errors.tsv stages: a session skipped before processing; one unusable file (the
# session runs without it); a file that fits none of the protocol's contrasts (listed,
# but not a failure); a visit workflow that failed; a longitudinal workflow that failed.
SKIPPED_STAGE = "inputs"
FILE_STAGE = "input-file"
IGNORED_STAGE = "ignored"


@dataclass(frozen=True)
class ParticipantTables:
    """One participant's rows of every cohort table."""

    participant: str
    endpoints: list[EndpointRow] = field(default_factory=list)
    lesions: list[LesionRow] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    rater: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The participant's rows as JSON (floats round-trip exactly)."""
        content = {
            "participant": self.participant,
            "endpoints": [asdict(r) for r in self.endpoints],
            "lesions": [asdict(r) for r in self.lesions],
            "errors": [asdict(r) for r in self.errors],
            "rater": self.rater,
        }
        return json.dumps(content, indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> ParticipantTables:
        """Read a participant's table file back (an unreadable file names itself)."""
        try:
            content = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                participant=content["participant"],
                endpoints=[EndpointRow(**r) for r in content["endpoints"]],
                lesions=[LesionRow(**r) for r in content["lesions"]],
                errors=[ErrorRow(**r) for r in content["errors"]],
                rater=list(content["rater"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a participant table file ({err})") from err


@dataclass(frozen=True)
class CohortTables:
    """What :func:`gather_cohort` wrote."""

    endpoints: Path
    lesions: Path
    errors: Path
    participants: int
    not_processed: tuple[str, ...]
    failures: int


def participant_tables_path(root: Path, participant: str) -> Path:
    """``OUT_DIR/mriproc/sub-<id>/sub-<id>_tables.json``."""
    return root / f"sub-{participant}" / f"sub-{participant}_tables.json"


def is_failure(error: ErrorRow) -> bool:
    """Whether an errors.tsv row makes the run fail (ignored files do not)."""
    return error.stage != IGNORED_STAGE


def participant_tables(
    root: Path,
    dataset: BidsDataset,
    participant: str,
    errors: Sequence[ErrorRow],
    input_problems: dict[str, dict[str, str]] | None = None,
) -> ParticipantTables:
    """A participant's rows from its sessions' records on disk and this run's errors.

    ``dataset`` lists every session of the participant (images need not be checked);
    ``errors`` are the participant's rows of errors.tsv, whose ``inputs``, ``visit``
    and ``longitudinal`` rows say why a session or the longitudinal stage gave no
    values; ``input_problems`` maps a session label to its contrasts' problems, which
    replace a record's "(missing)" with why the file was not used.
    """
    skipped = {e.session: e.reason for e in errors if e.stage == SKIPPED_STAGE and e.session}
    crashed = {e.session: e.reason for e in errors if e.stage == "visit" and e.session}
    longitudinal_error = next((e.reason for e in errors if e.stage == "longitudinal"), None)
    arm_of = dataset.participants.get(participant)
    arm = arm_of.arm if arm_of else None
    tables = ParticipantTables(participant, errors=sorted(errors, key=_error_key))
    for session in dataset.sessions:
        if session.participant != participant:
            continue
        problem = skipped.get(session.session_id)
        if session.session_id in crashed:
            problem = "processing failed: " + crashed[session.session_id]
        content = _read_json(visit_record_path(root, participant, session.session))
        if content and problem is None:
            problems = (input_problems or {}).get(session.session, {})
            tables.endpoints.extend(
                _record_rows(
                    session, arm, content, VISIT_ENDPOINTS, reason="not measured", problems=problems
                )
            )
            if "rater" in content:
                tables.rater.append(
                    {"participant_id": session.participant_id, "session": session.session_id}
                    | content["rater"]
                )
        else:
            content = {}
            status = problem or NOT_PROCESSED
            tables.endpoints.extend(_record_rows(session, arm, {}, VISIT_ENDPOINTS, reason=status))
        baseline = session.session == dataset.baseline_session(participant)
        longitudinal = _read_json(longitudinal_record_path(root, participant, session.session))
        if not baseline:
            if problem is not None:
                reason = problem
            elif longitudinal_error is not None:
                reason = "longitudinal stage failed: " + longitudinal_error
            elif not content:
                reason = NOT_PROCESSED
            else:
                reason = (
                    "longitudinal stage did not run (baseline or previous visit missing or failed)"
                )
            tables.endpoints.extend(
                _record_rows(session, arm, longitudinal, LONGITUDINAL_ENDPOINTS, reason=reason)
            )
        tables.lesions.extend(_lesion_rows(session, content, longitudinal, baseline=baseline))
    return tables


def write_participant_tables(root: Path, tables: ParticipantTables) -> Path:
    """Write a participant's table file atomically; return its path."""
    return atomic_write_text(participant_tables_path(root, tables.participant), tables.to_json())


@contextlib.contextmanager
def _cohort_lock(root: Path) -> Iterator[None]:
    """Exclusive lock on the cohort tables (an flock; NFS emulates it with fcntl locks)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".cohort-tables.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def gather_cohort(root: Path, bids_dir: Path, protocol: Protocol) -> CohortTables:
    """Rebuild the cohort tables from every participant's table file under ``root``.

    Participants of ``bids_dir`` without a file get rows saying they are not
    processed yet; files of participants no longer in the dataset are kept.
    """
    dataset = discover_dataset(bids_dir, protocol, check_images=False)
    with _cohort_lock(root):
        found = {
            p.name.removeprefix("sub-"): p
            for p in sorted(root.glob("sub-*"))
            if participant_tables_path(root, p.name.removeprefix("sub-")).is_file()
        }
        everyone = sorted(set(found) | set(dataset.participants))
        endpoints: list[EndpointRow] = []
        lesions: list[LesionRow] = []
        errors: list[ErrorRow] = []
        rater: list[dict[str, Any]] = []
        for participant in everyone:
            if participant in found:
                tables = ParticipantTables.read(participant_tables_path(root, participant))
            else:
                tables = participant_tables(root, dataset, participant, [])
            # Flagged here, from the protocol of this gathering: one place, and a
            # participant's stored rows never carry an earlier protocol's flags.
            endpoints += flag_implausible(tables.endpoints, protocol.plausibility)
            lesions += tables.lesions
            errors += tables.errors
            rater += tables.rater
        endpoints_path, _ = write_endpoints(endpoints, root, protocol_name=protocol.name)
        lesions_path = write_lesions(lesions, root, protocol_name=protocol.name)
        errors_path = write_errors(errors, root, protocol_name=protocol.name)
        rater_path = root / "rater_agreement.tsv"
        if rater:
            write_rater_agreement(rater, root, protocol_name=protocol.name)
        elif rater_path.is_file():  # no participant has rater masks any longer
            rater_path.unlink()
            rater_path.with_suffix(".json").unlink(missing_ok=True)
    return CohortTables(
        endpoints=endpoints_path,
        lesions=lesions_path,
        errors=errors_path,
        participants=len(everyone),
        not_processed=tuple(sorted(set(dataset.participants) - set(found))),
        failures=sum(1 for e in errors if is_failure(e)),
    )


# --------------------------------------------------------------------------- rows


def _error_key(error: ErrorRow) -> tuple[str, str, str, str]:
    return (error.participant_id, error.session or "", error.stage, error.reason)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    content: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return content


def _explain(status: str, problems: dict[str, str]) -> str:
    """``needs T1w_gad (missing)`` -> ``needs T1w_gad (<why the file was not used>)``.

    >>> _explain("needs T2w (missing), T1w (missing)", {"T1w": "2 files match"})
    'needs T2w (missing), T1w (2 files match)'
    """
    if not status.startswith("needs "):
        return status
    return _MISSING_ROLE.sub(lambda m: f"{m[1]} ({problems.get(m[1], 'missing')})", status)


def _record_rows(
    session: SessionInputs,
    arm: str | None,
    record: dict[str, Any],
    endpoints: Sequence[str],
    *,
    reason: str,
    problems: dict[str, str] | None = None,
) -> list[EndpointRow]:
    """Rows of ``endpoints`` from a visit or longitudinal record (``{}``: all n/a, ``reason``).

    A measure or reason the record holds for an endpoint outside ``endpoints`` is an
    error, not a silently dropped value.
    """
    measures = record.get("measures", {})
    missing = record.get("not_available", {})
    stray = sorted((set(measures) | set(missing)) - set(endpoints))
    if stray:
        raise TableError(
            f"{session.participant_id} {session.session_id}: the record holds "
            f"{', '.join(stray)}, which this stage's endpoints ({', '.join(endpoints)}) lack"
        )
    rows = []
    for endpoint in endpoints:
        value = measures.get(endpoint)
        where = (session.participant_id, session.session_id, session.visit_month, arm, endpoint)
        if value is None:
            status = _explain(missing.get(endpoint, reason), problems or {})
            rows.append(EndpointRow(*where, None, status))
        else:
            note = record.get("notes", {}).get(endpoint, "")
            if "rater" in record and endpoint in LESION_ENDPOINTS:
                note = "rater mask"
            rows.append(EndpointRow(*where, float(value), note=note))
    return rows


def _lesion_rows(
    session: SessionInputs,
    visit_record: dict[str, Any],
    longitudinal: dict[str, Any],
    *,
    baseline: bool,
) -> list[LesionRow]:
    ids = longitudinal.get("lesion_ids", {})
    categories = longitudinal.get("categories", {})
    rows = []
    for lesion in visit_record.get("lesions", []):
        x, y, z = lesion["centroid_mm"]
        label = str(lesion["label"])
        rows.append(
            LesionRow(
                session.participant_id,
                session.session_id,
                session.visit_month,
                lesion_id=ids.get(label, f"{session.session}-L{lesion['label']:03d}"),
                label=lesion["label"],
                volume_ml=lesion["volume_ml"],
                centroid_x_mm=x,
                centroid_y_mm=y,
                centroid_z_mm=z,
                category=categories.get(label, "baseline" if baseline else "untracked"),
                enhancing=lesion["enhancing"],
                black_hole=lesion["black_hole"],
            )
        )
    return rows
