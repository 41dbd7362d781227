"""``mriproc demo``: the whole chain on a small simulated two-arm trial.

Simulates a trial with its ground truth, validates it, runs the participant level
(every visit and the longitudinal stage, with the ``fast`` registration preset so
the demo fits in a few minutes on two cores), computes the trial statistics and
writes the QC report.  Each stage says what it does and how long it took; the visit
workflows report each visit as it finishes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from mriproc.config import load_protocol
from mriproc.io.provenance import new_run_id, run_log_dir, write_run_config
from mriproc.progress import Progress, owning_workflow
from mriproc.simulate import TrialSpec

__all__ = ["DEMO_SPEC", "DemoResult", "protocol_with_preset", "run_demo"]

# Two arms x two participants x two visits: every stage has something to compare
# (two participants per arm for the statistics, a follow-up for the longitudinal stage).
DEMO_SPEC = TrialSpec(n_subjects=4, arms=("placebo", "ivig"), months=(0, 12), seed=2026)
_STAGES = 5


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote everything, and whether every visit was processed."""

    bids_dir: Path
    output_dir: Path
    endpoints: Path
    errors: Path
    stats_summary: Path
    report: Path
    failed_sessions: int


def protocol_with_preset(name: str, preset: str, destination: Path) -> Path:
    """Write a copy of protocol ``name`` whose registration preset is ``preset``.

    The demo's recorded command (``--protocol <file>``) reruns it as it ran: the
    variant is a file, kept beside the outputs.
    """
    source = load_protocol(name).source
    data = yaml.safe_load(Path(source).read_text(encoding="utf-8"))
    data["registration"]["preset"] = preset
    destination.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    load_protocol(destination)  # refuse a variant that does not validate
    return destination


class _Stages:
    """Stage headers with elapsed time on ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.number = 0
        self.start = time.monotonic()

    def begin(self, text: str) -> None:
        self.number += 1
        elapsed = time.monotonic() - self.start
        self.stream.write(f"[{self.number}/{_STAGES}] {text} (at {elapsed:.0f} s)\n")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write(f"Done in {time.monotonic() - self.start:.0f} s.\n\n")
        self.stream.flush()


class _Steps:
    """Steps of a stage: a redrawn line on a terminal (:class:`Progress`), else one line each."""

    def __init__(self, total: int, label: str, stream: TextIO) -> None:
        self.progress = Progress(total, label, stream=stream)
        self.stream = stream

    def step(self, what: str) -> None:
        self.progress.step(what)
        if not self.progress.interactive:  # Progress only logs off a terminal
            self.stream.write(f"  {self.progress.done}/{self.progress.total} {what}\n")
            self.stream.flush()


def _workflow_progress(steps: _Steps) -> Callable[[Any, str], None]:
    """A Nipype ``status_callback`` that counts finished visits and longitudinal stages."""

    def callback(node: Any, status: str) -> None:
        if status in ("end", "exception") and node.name == "outputs":
            workflow = owning_workflow(str(node.fullname)) or str(node.fullname)
            steps.step(workflow + (" FAILED" if status == "exception" else ""))

    return callback


def run_demo(out: Path, *, stream: TextIO, progress_stream: TextIO | None = None) -> DemoResult:
    """Run the demo into a new folder below ``out``; stage messages go to ``stream``."""
    from mriproc.report import write_report
    from mriproc.run import run_participants
    from mriproc.simulate import simulate_trial
    from mriproc.stats import run_stats
    from mriproc.validate import validate_dataset

    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=out)).resolve()
    bids_dir = run_dir / "bids"
    output_dir = run_dir / "out"
    spec = DEMO_SPEC
    protocol = load_protocol("esims")
    stages = _Stages(stream)
    n_visits = spec.n_subjects * len(spec.months)
    stages.begin(
        f"Simulating {spec.n_subjects} participants ({', '.join(spec.arms)}) x "
        f"{len(spec.months)} visits with ground truth into {bids_dir}"
    )
    simulated = _Steps(spec.n_subjects, "simulate", progress_stream or stream)
    simulate_trial(
        bids_dir,
        spec,
        protocol,
        # Two participants at a time, as the run below uses two processes.
        n_procs=2,
        on_subject=lambda subject: simulated.step(
            f"sub-{subject.label} ({subject.arm}, {len(spec.months)} visits)"
        ),
    )
    stages.begin("Validating the dataset")
    validation = validate_dataset(bids_dir, protocol)
    stream.write("\n".join(validation.lines()[-1:]) + "\n")
    stages.begin(
        f"Processing {n_visits} visits and {spec.n_subjects} longitudinal stages "
        "(mriproc run ... participant, fast registration preset)"
    )
    protocol_file = protocol_with_preset("esims", "fast", run_dir / "esims_fast.yaml")
    callback = _workflow_progress(
        _Steps(n_visits + spec.n_subjects, "run", progress_stream or stream)
    )
    protocol = load_protocol(protocol_file)
    run_id = new_run_id()
    log_dir = run_log_dir(output_dir, run_id)
    # The same record `mriproc run` writes: what ran, with which options and protocol.
    command = ["mriproc", "run", str(bids_dir), str(output_dir), "participant"]
    command += ["--protocol", str(protocol_file), "-w", str(run_dir / "work"), "--nprocs", "2"]
    options = {
        "bids_dir": bids_dir,
        "output_dir": output_dir,
        "analysis_level": "participant",
        "protocol": protocol_file,
        "work_dir": run_dir / "work",
        "nprocs": 2,
        "plugin": "MultiProc",
        "run_id": run_id,
        "called_by": "mriproc demo",
    }
    write_run_config(log_dir, run_id=run_id, command=command, options=options, protocol=protocol)
    result = run_participants(
        bids_dir,
        output_dir,
        protocol,
        work_dir=run_dir / "work",
        log_dir=log_dir,
        plugin="MultiProc",
        plugin_args={"n_procs": 2, "status_callback": callback},
    )
    stages.begin("Trial statistics (mriproc stats)")
    stats = run_stats(output_dir)
    stages.begin("QC report (mriproc report)")
    report = write_report(output_dir, progress_stream=progress_stream)
    stages.done()
    return DemoResult(
        bids_dir=bids_dir,
        output_dir=output_dir,
        endpoints=result.endpoints,
        errors=result.errors,
        stats_summary=stats.stats_dir / "summary.html",
        report=report.index,
        failed_sessions=result.failed + result.skipped,
    )
