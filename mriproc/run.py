"""``mriproc run BIDS_DIR OUT_DIR participant``: every session's visit workflow, then the tables.

All selected sessions go into one Nipype workflow (per-visit sub-workflows feeding
each participant's longitudinal one), run with the chosen plugin; a session that
fails does not stop the others.  Sessions whose reading-space or tissue images are
unusable are skipped before the workflow runs.  Afterwards each participant's rows
are written to its own table file and the cohort tables are gathered from every
participant's file (:mod:`mriproc.cohort`), so participants run in separate jobs
end up in one table; ``errors.tsv`` lists skipped and failed sessions, unusable and
ignored files, with the reason and the crash file.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mriproc.cohort import (
    FILE_STAGE,
    IGNORED_STAGE,
    SKIPPED_STAGE,
    ParticipantTables,
    gather_cohort,
    is_failure,
    participant_tables,
    participant_tables_path,
    write_participant_tables,
)
from mriproc.config import Protocol
from mriproc.endpoints import ENDPOINTS
from mriproc.io.bids import BidsDataset, SessionInputs, bids_path, discover_dataset
from mriproc.outputs import visit_record_path
from mriproc.progress import WorkflowProgress, owning_workflow
from mriproc.tables import ErrorRow, write_dataset_description

__all__ = ["RunResult", "WorkDirInUseError", "run_participants", "work_dir_lock"]

logger = logging.getLogger(__name__)

# Libraries that would otherwise start one thread per core in every Nipype process;
# Nipype schedules the processes (ITK's own count is fixed in mriproc.registration).
_SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Seconds between the scheduler's rounds: MultiProc, and Nipype's default (SLURM).
MULTIPROC_POLL_S = 0.1
NIPYPE_POLL_S = 2.0


@dataclass(frozen=True)
class RunResult:
    """What a participant-level run did."""

    processed: int
    failed: int
    skipped: int
    failures: int
    endpoints: Path
    lesions: Path
    errors: Path


def _processable(session: SessionInputs, protocol: Protocol) -> str | None:
    """Why the visit workflow cannot run on ``session`` (None when it can)."""
    nothing = not session.files and not session.ignored
    if nothing and set(session.problems.values()) == {"missing"}:
        return "the session holds no images"
    reading = protocol.reading_space
    if reading not in session.files:
        return f"needs {reading} ({session.problems.get(reading, 'missing')})"
    # A visit none of whose endpoints has its contrasts is not run either (the
    # longitudinal ones need the visit's own lesions or PCF).
    lacking: dict[str, None] = {}
    for endpoint in ENDPOINTS:
        if endpoint.longitudinal:
            continue
        needs = [r for r in protocol.required_contrasts(endpoint.group) if r not in session.files]
        if endpoint.group == "pcf" and protocol.tissue_model_lacks(session.files):
            needs += [r for r in protocol.pcf.channels if r not in session.files]
        if not needs:
            return None
        lacking.update(dict.fromkeys(needs))
    return "nothing to compute: needs " + ", ".join(
        f"{role} ({session.problems.get(role, 'missing')})" for role in lacking
    )


def _input_errors(
    session: SessionInputs, protocol: Protocol, skipped: str | None
) -> list[ErrorRow]:
    """errors.tsv rows of a session's inputs: skipped, unusable files, ignored files."""
    pid, ses = session.participant_id, session.session_id
    rows = [] if skipped is None else [ErrorRow(pid, ses, SKIPPED_STAGE, skipped)]
    needed = {protocol.reading_space} if skipped else set()
    for role, why in sorted(session.problems.items()):
        if why != "missing" and role not in needed:
            rows.append(ErrorRow(pid, ses, FILE_STAGE, f"{role} not used: {why}"))
    rows += [ErrorRow(pid, ses, IGNORED_STAGE, f"{p.name}: {why}") for p, why in session.ignored]
    for note in session.notes:
        logger.info("%s %s: %s", pid, ses, note)
    return rows


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
        workflow = owning_workflow(fullname)
        if workflow is not None:
            reasons.setdefault(workflow, (message, str(crash)))
    return reasons


class WorkDirInUseError(RuntimeError):
    """Another ``mriproc run`` holds the work dir."""


@contextlib.contextmanager
def work_dir_lock(work_dir: Path) -> Iterator[None]:
    """Hold ``work_dir`` for this run (an advisory lock, released when the process ends).

    Two runs sharing a Nipype work dir remove each other's files mid-run; the second
    is refused instead (:class:`WorkDirInUseError`).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / ".mriproc-run.lock"
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise WorkDirInUseError(
                f"work dir {work_dir} is in use by another mriproc run (process {holder}); "
                "give each concurrent run its own --work-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_participants(
    bids_dir: Path,
    output_dir: Path,
    protocol: Protocol,
    *,
    work_dir: Path,
    log_dir: Path,
    participant_labels: Sequence[str] | None = None,
    session_labels: Sequence[str] | None = None,
    plugin: str = "MultiProc",
    plugin_args: dict[str, Any] | None = None,
    rater_masks: Path | None = None,
    progress_stream: TextIO | None = None,
) -> RunResult:
    """Run the visit and longitudinal workflows on the selected sessions; write the tables.

    ``log_dir`` is this run's log folder (``OUT_DIR/mriproc/logs/<run id>``): Nipype
    crash files go to its ``crash`` folder, so that runs sharing ``work_dir`` never
    remove each other's.  ``rater_masks`` is a BIDS-Derivatives folder: a session's
    ``sub-*/ses-*/anat/sub-*_ses-*_desc-t2lesion_mask.nii.gz`` there, when present, is
    used for its lesion endpoints (``rater_agreement.tsv`` compares it with the
    automated mask).
    """
    root = output_dir / "mriproc"
    root.mkdir(parents=True, exist_ok=True)
    dataset = discover_dataset(
        bids_dir, protocol, participant_labels=participant_labels, session_labels=session_labels
    )
    write_dataset_description(
        root, source_datasets=[bids_dir.resolve().as_uri()], protocol_name=protocol.name
    )
    crash_dir = log_dir / "crash"
    crash_dir.mkdir(parents=True, exist_ok=True)
    for problem in dataset.problems:  # e.g. participants.tsv missing: arms are n/a
        logger.warning("%s", problem)
    errors: dict[str, list[ErrorRow]] = {p: [] for p in dataset.participants}
    for participant in dataset.without_data:
        errors[participant] = [
            ErrorRow(
                f"sub-{participant}",
                None,
                SKIPPED_STAGE,
                f"listed in participants.tsv but has no data (no sub-{participant} folder "
                "with images)",
            )
        ]
    skipped: set[tuple[str, str]] = set()
    to_run: list[SessionInputs] = []
    for session in dataset.sessions:
        reason = _processable(session, protocol)
        errors[session.participant] += _input_errors(session, protocol, reason)
        if reason is None:
            to_run.append(session)
        else:
            skipped.add((session.participant, session.session))
            logger.warning("%s %s skipped: %s", session.participant_id, session.session_id, reason)
    # Before any node exists: nodes copy Nipype's configuration when they are created.
    _configure_nipype(crash_dir)
    top, final_nodes = _build_workflow(
        dataset,
        to_run,
        protocol,
        root,
        work_dir,
        rater_masks=rater_masks,
    )

    crashes: dict[str, tuple[str, str]] = {}
    if to_run:
        _execute(top, final_nodes, plugin, dict(plugin_args or {}), progress_stream)
        crashes = _crash_reasons(crash_dir)
        orphans = _orphans(to_run, dataset, protocol, crashes)
        if orphans:
            # Without their baselines in the list, the follow-ups carry no fit, and
            # no longitudinal stage is built (it needs the baseline).  Their crashes
            # are the second run's (its own crash folder).
            own_fit_dir = crash_dir / "own-fit"
            own_fit_dir.mkdir(exist_ok=True)
            _configure_nipype(own_fit_dir)
            again, again_final = _build_workflow(
                dataset, orphans, protocol, root, work_dir, rater_masks=rater_masks
            )
            _execute(again, again_final, plugin, dict(plugin_args or {}), progress_stream)
            rerun = {_visit_wf_name(s) for s in orphans}
            crashes = {n: c for n, c in crashes.items() if n not in rerun}
            crashes |= _crash_reasons(own_fit_dir)
    failed = 0
    for session in to_run:
        name = _visit_wf_name(session)
        record = visit_record_path(root, session.participant, session.session)
        if record.is_file() and name not in crashes:
            # Contrasts the co-registration check refused: their endpoints are NA.
            for role, reason in json.loads(record.read_text()).get("refused", {}).items():
                errors[session.participant].append(
                    ErrorRow(session.participant_id, session.session_id, "coregistration", reason)
                )
                logger.error(
                    "%s %s: %s refused: %s",
                    session.participant_id,
                    session.session_id,
                    role,
                    reason,
                )
            continue
        failed += 1
        message, crash = crashes.get(name, ("no result written", ""))
        errors[session.participant].append(
            ErrorRow(session.participant_id, session.session_id, "visit", message, crash or None)
        )
        logger.error("%s %s failed: %s", session.participant_id, session.session_id, message)
    for participant in final_nodes:
        name = _longitudinal_wf_name(participant)
        if name in crashes:
            message, crash = crashes[name]
            errors[participant].append(
                ErrorRow(f"sub-{participant}", None, "longitudinal", message, crash)
            )
            logger.error("sub-%s longitudinal stage failed: %s", participant, message)
    # Every session of the selected participants gets rows, run now or earlier.
    everything = discover_dataset(
        bids_dir, protocol, participant_labels=list(dataset.participants), check_images=False
    )
    selected = {s.session_id for s in dataset.sessions}
    failures = 0
    for participant, rows in errors.items():
        failures += sum(1 for e in rows if is_failure(e))
        previous = participant_tables_path(root, participant)
        if session_labels is not None and previous.is_file():
            # Errors of sessions this run did not select still stand.
            rows = rows + [
                e
                for e in ParticipantTables.read(previous).errors
                if e.session is not None and e.session not in selected
            ]
        problems = {s.session: s.problems for s in dataset.sessions if s.participant == participant}
        write_participant_tables(
            root, participant_tables(root, everything, participant, rows, problems)
        )
    cohort = gather_cohort(root, bids_dir, protocol)
    return RunResult(
        processed=len(to_run) - failed,
        failed=failed,
        skipped=len(skipped),
        failures=failures,
        endpoints=cohort.endpoints,
        lesions=cohort.lesions,
        errors=cohort.errors,
    )


def _carried_baseline(
    session: SessionInputs,
    to_run: Sequence[SessionInputs],
    dataset: BidsDataset,
    protocol: Protocol,
) -> SessionInputs | None:
    """The baseline whose template fit ``session`` carries, if any.

    Under ``registration.template_fit: per_participant`` a follow-up carries its
    baseline's fit when the baseline runs too; otherwise (and for the baseline
    itself) it fits its own.
    """
    if protocol.registration.template_fit != "per_participant":
        return None
    label = dataset.baseline_session(session.participant)
    for other in to_run:
        if other.participant == session.participant and other.session == label != session.session:
            return other
    return None


def _baseline_failure(
    session: SessionInputs,
    to_run: Sequence[SessionInputs],
    dataset: BidsDataset,
    protocol: Protocol,
    crashes: dict[str, tuple[str, str]],
) -> str | None:
    """The baseline session's id when it failed and ``session`` carried its template fit."""
    baseline = _carried_baseline(session, to_run, dataset, protocol)
    if baseline is not None and _visit_wf_name(baseline) in crashes:
        return baseline.session_id
    return None


def _orphans(
    to_run: Sequence[SessionInputs],
    dataset: BidsDataset,
    protocol: Protocol,
    crashes: dict[str, tuple[str, str]],
) -> list[SessionInputs]:
    """The follow-ups to process again, each on its own template fit: a failed baseline's.

    A follow-up that carried its baseline's fit (``registration.template_fit:
    per_participant``) is lost with the baseline, or crashes on a fit the baseline
    could not use, or, worse, is measured on it: nothing is lost when one scan is bad,
    and nothing is measured on a failed scan's fit, so every such follow-up runs again
    without it (its visit record says ``template_fit``: fitted to this visit).
    """
    orphans: list[SessionInputs] = []
    for session in to_run:
        baseline = _baseline_failure(session, to_run, dataset, protocol, crashes)
        if baseline is not None:
            orphans.append(session)
            logger.warning(
                "%s %s: its baseline %s failed; processing it again on its own template fit",
                session.participant_id,
                session.session_id,
                baseline,
            )
    return orphans


def _visit_wf_name(session: SessionInputs) -> str:
    from mriproc.workflows.visit import visit_wf_name

    return visit_wf_name(session)


def _longitudinal_wf_name(participant: str) -> str:
    from mriproc.workflows.longitudinal import longitudinal_wf_name

    return longitudinal_wf_name(participant)


def _build_workflow(
    dataset: BidsDataset,
    to_run: list[SessionInputs],
    protocol: Protocol,
    root: Path,
    work_dir: Path,
    *,
    rater_masks: Path | None,
) -> tuple[Any, dict[str, list[str]]]:
    """The top workflow, and per participant the workflows whose end means it is done."""
    from nipype.pipeline import engine as pe

    from mriproc.workflows.longitudinal import init_longitudinal_wf
    from mriproc.workflows.visit import connect_baseline, init_visit_wf

    top = pe.Workflow(name="mriproc_wf", base_dir=str(work_dir))
    visit_wfs: dict[tuple[str, str], pe.Workflow] = {}
    final: dict[str, list[str]] = {}
    carried = {
        (s.participant, s.session): _carried_baseline(s, to_run, dataset, protocol) for s in to_run
    }
    # Baselines first: their workflows feed the follow-ups' that carry their fit.
    for session in sorted(to_run, key=lambda s: carried[(s.participant, s.session)] is not None):
        rater = None
        if rater_masks is not None:
            candidate = bids_path(
                rater_masks, session.participant, session.session, suffix="mask", desc="t2lesion"
            )
            rater = candidate.resolve() if candidate.is_file() else None
        baseline = carried[(session.participant, session.session)]
        wf = init_visit_wf(
            session=session,
            protocol=protocol,
            output_dir=root,
            rater_mask=rater,
            follows_baseline=baseline is not None,
        )
        visit_wfs[(session.participant, session.session)] = wf
        top.add_nodes([wf])
        final.setdefault(session.participant, []).append(wf.name)
        if baseline is not None:
            connect_baseline(top, visit_wfs[(baseline.participant, baseline.session)], wf)
    # Longitudinal: every participant whose baseline and at least one later visit run.
    for participant in sorted(final):
        visits = [
            s.session
            for s in dataset.visits_of(participant)
            if (participant, s.session) in visit_wfs
        ]
        if len(visits) < 2 or visits[0] != dataset.baseline_session(participant):
            continue
        longitudinal = init_longitudinal_wf(
            participant=participant,
            sessions=visits,
            protocol=protocol,
            output_dir=root,
            # The follow-ups carried the baseline's fit: their bundles hold the
            # registration to it (the baseline runs: it is visits[0]).
            registered_to_baseline=carried[(participant, visits[1])] is not None,
        )
        final[participant].append(longitudinal.name)
        for index, label in enumerate(visits):
            top.connect(
                visit_wfs[(participant, label)],
                "outputnode.bundle",
                longitudinal,
                f"inputnode.bundle_{index}",
            )
    return top, final


def _execute(
    top: Any,
    final_nodes: dict[str, list[str]],
    plugin: str,
    plugin_args: dict[str, Any],
    progress_stream: TextIO | None,
) -> None:
    """Run ``top`` with ``plugin``: resources per node, progress."""
    if plugin in ("SLURM", "SLURMGraph"):
        _slurm_resources(top)
    # Nipype's scheduler sleeps up to poll_sleep_duration (default 2 s) between its
    # rounds, so every node waited up to that long after the ones it depends on
    # (measured: about 12 s of a 99 s one-process ESIMS visit). MultiProc
    # checks in-process futures, cheap to poll often; the SLURM plugins ask squeue
    # each round and keep Nipype's default.  Set on the workflow's own configuration,
    # which it copied from Nipype's when it was created and hands to the plugin.
    poll_s = MULTIPROC_POLL_S if plugin == "MultiProc" else NIPYPE_POLL_S
    top.config["execution"]["poll_sleep_duration"] = str(poll_s)
    if plugin != "SLURMGraph":  # graph plugins submit everything at once: no callbacks
        plugin_args.setdefault(
            "status_callback", WorkflowProgress(final_nodes, stream=progress_stream)
        )
    n_sessions = sum(len(v) for v in final_nodes.values())
    logger.info("processing %d workflow(s) with the %s plugin", n_sessions, plugin)
    with _environment(
        {variable: "1" for variable in _SINGLE_THREAD}
        # Nipype's SLURM plugin names jobs after LOGNAME.
        | {"LOGNAME": os.environ.get("USER", "mriproc")}
    ):
        # MultiProc runs a full garbage collection in every scheduling round where a
        # processor is free (measured: 20 s of this process's CPU in a one-visit run,
        # taken from the nodes' threads). The workflow graph built so far is
        # long-lived: frozen, the collector skips it.
        gc.freeze()
        try:
            top.run(plugin=plugin, plugin_args=plugin_args)
        except RuntimeError as err:  # some nodes failed; the others ran
            logger.warning("%s", err)
        finally:
            gc.unfreeze()


@contextlib.contextmanager
def _environment(defaults: dict[str, str]) -> Iterator[None]:
    """Set the variables not already set, for the workflow's processes and jobs only."""
    added = [name for name in defaults if name not in os.environ]
    os.environ.update({name: defaults[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _configure_nipype(crash_dir: Path) -> None:
    """Crash files into ``crash_dir``, content hashes, Nipype's log level from ours."""
    from nipype import config as nipype_config
    from nipype import logging as nipype_logging

    verbose = logging.getLogger("mriproc").getEffectiveLevel()
    nipype_level = "INFO" if verbose <= logging.DEBUG else "WARNING"  # -vv: Nipype's INFO too
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
            "logging": {"workflow_level": nipype_level, "interface_level": nipype_level},
        }
    )
    nipype_logging.update_logging(nipype_config)


def _slurm_resources(top: Any) -> None:
    """Each node's SLURM job asks for the node's declared cores and memory."""
    for name in top.list_node_names():
        node = top.get_node(name)
        mem_mib = math.ceil(node.mem_gb * 1024)
        args = f"--cpus-per-task={node.n_procs} --mem={mem_mib}M"
        node.plugin_args = {**node.plugin_args, "sbatch_args": args}
