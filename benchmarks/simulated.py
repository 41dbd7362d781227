"""A simulated trial for a benchmark: simulated once into a work folder, then reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mriproc.config import load_protocol
from mriproc.simulate import TrialSpec, simulate_trial


def simulated_trial(
    work: Path, *, subjects: int, months: tuple[int, ...], seed: int
) -> list[dict[str, Any]]:
    """Simulate into ``work`` unless it already holds a trial; return its per-scan records."""
    record = work / "derivatives" / "groundtruth" / "simulation.json"
    if not record.is_file():
        spec = TrialSpec(n_subjects=subjects, months=months, seed=seed)
        simulate_trial(work, spec, load_protocol("esims"))
    scans: list[dict[str, Any]] = json.loads(record.read_text())["scans"]
    return scans
