"""Everything ``mriproc stats`` writes, under ``OUT_DIR/mriproc/stats/``.

* ``baseline.tsv`` (Table 1), ``comparisons.tsv`` (Table 2), ``change_from_baseline.tsv``
  (Table 3), ``subgroups.tsv`` (Table 4), ``exclusions.tsv`` (values left out), each
  with its JSON data dictionary;
* ``summary.md`` and ``summary.html``: the readable tables;
* ``analysis.json``: the inputs (path and SHA-256), the arms and the visits.

Files are written atomically; rows are sorted and numbers have fixed formats, so the
same inputs give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mriproc.io.atomic import atomic_write_text
from mriproc.io.provenance import generated_by, software_versions
from mriproc.stats.analysis import TrialAnalysis, analyse_trial
from mriproc.stats.comparisons import COMPARISON_COLUMNS
from mriproc.stats.data import find_participants, load_trial
from mriproc.stats.descriptives import BASELINE_COLUMNS, CHANGE_COLUMNS, EXCLUSION_COLUMNS
from mriproc.stats.formatting import NA, number
from mriproc.stats.subgroups import SUBGROUP_COLUMNS
from mriproc.stats.summary import render_html, render_markdown, summary_blocks
from mriproc.tables import write_data_dictionary

__all__ = ["StatsResult", "run_stats", "write_analysis"]


@dataclass(frozen=True)
class StatsResult:
    """Where ``mriproc stats`` wrote its outputs, and the analysis itself."""

    stats_dir: Path
    files: tuple[Path, ...]
    analysis: TrialAnalysis


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return NA
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return number(value)
    return " ".join(str(value).split()) or ""


def _write_tsv(frame: pd.DataFrame, path: Path, columns: dict[str, str]) -> Path:
    lines = ["\t".join(columns)]
    lines += [
        "\t".join(_cell(v) for v in row) for row in frame[list(columns)].itertuples(index=False)
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")
    write_data_dictionary(path, {k: {"Description": v} for k, v in columns.items()})
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_analysis(
    analysis: TrialAnalysis, stats_dir: Path, *, inputs: dict[str, Path]
) -> tuple[Path, ...]:
    """Write every table, the summaries and ``analysis.json`` into ``stats_dir``."""
    tables = (
        ("baseline.tsv", analysis.baseline, BASELINE_COLUMNS),
        ("comparisons.tsv", analysis.comparisons, COMPARISON_COLUMNS),
        ("change_from_baseline.tsv", analysis.change, CHANGE_COLUMNS),
        ("subgroups.tsv", analysis.subgroups, SUBGROUP_COLUMNS),
        ("exclusions.tsv", analysis.exclusions, EXCLUSION_COLUMNS),
    )
    written = [_write_tsv(frame, stats_dir / name, columns) for name, frame, columns in tables]
    blocks = summary_blocks(analysis, inputs={k: str(v) for k, v in inputs.items()})
    written.append(atomic_write_text(stats_dir / "summary.md", render_markdown(blocks)))
    written.append(atomic_write_text(stats_dir / "summary.html", render_html(blocks)))
    data = analysis.data
    record = {
        "GeneratedBy": generated_by(),
        "SoftwareVersions": software_versions(),
        "Inputs": {
            role: {"path": str(path), "sha256": _sha256(path)} for role, path in inputs.items()
        },
        "Arms": list(data.arms),
        "ReferenceArm": data.reference_arm,
        "BaselineVisit": data.session_label(data.baseline_month),
        "FollowUpVisits": [data.session_label(m) for m in data.followup_months],
    }
    written.append(
        atomic_write_text(stats_dir / "analysis.json", json.dumps(record, indent=2) + "\n")
    )
    return tuple(written)


def run_stats(
    out_dir: Path,
    *,
    endpoints: Path | None = None,
    participants: Path | None = None,
    reference_arm: str | None = None,
) -> StatsResult:
    """Analyse the trial in ``out_dir`` and write ``out_dir/mriproc/stats/``.

    ``endpoints`` defaults to ``out_dir/mriproc/endpoints.tsv``; ``participants`` is
    found by :func:`mriproc.stats.data.find_participants`.
    """
    endpoints_path = endpoints or out_dir / "mriproc" / "endpoints.tsv"
    participants_path = find_participants(out_dir, participants)
    data = load_trial(endpoints_path, participants_path, reference_arm=reference_arm)
    analysis = analyse_trial(data)
    stats_dir = out_dir / "mriproc" / "stats"
    files = write_analysis(
        analysis,
        stats_dir,
        inputs={"endpoints": endpoints_path.resolve(), "participants": participants_path.resolve()},
    )
    return StatsResult(stats_dir, files, analysis)
