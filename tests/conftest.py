"""Shared test fixtures and helpers; ``tests/`` is put on ``sys.path`` so that test
modules import the helpers (pytest runs with ``--import-mode=importlib``, which does
not add test folders to the path itself).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mriproc.cli import main
from mriproc.config import load_protocol
from mriproc.simulate import TrialSpec, simulate_trial

sys.path.insert(0, str(Path(__file__).parent))

RunFast = Callable[..., tuple[int, Path]]


def _run_fast(root: Path, tmp: Path, *options: str) -> tuple[int, Path]:
    """``mriproc run ROOT TMP/out participant [OPTIONS]`` with the fast registration preset."""
    protocol_file = tmp / "esims_fast.yaml"
    data = yaml.safe_load((Path(load_protocol("esims").source)).read_text())
    data["registration"]["preset"] = "fast"
    protocol_file.write_text(yaml.safe_dump(data))
    out = tmp / "out"
    argv = ["run", str(root), str(out), "participant", "--protocol", str(protocol_file)]
    return main([*argv, "-w", str(tmp / "work"), *options]), out / "mriproc"


@pytest.fixture(scope="session")
def run_fast() -> RunFast:
    """``mriproc run ROOT TMP/out participant [OPTIONS]`` with the fast registration preset."""
    return _run_fast


@pytest.fixture(scope="session")
def longitudinal_trial(
    tmp_path_factory: pytest.TempPathFactory, run_fast: RunFast
) -> tuple[Path, Path]:
    """1 subject x 2 visits (seed 36) through ``mriproc run`` (fast preset, 2 processes).

    Returns the BIDS root and ``OUT/mriproc``; read-only for the tests, which compare
    their own runs of the same dataset (1 process, resumed, SLURM) with it.
    """
    tmp = tmp_path_factory.mktemp("longitudinal")
    root = tmp / "sim"
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0, 12), seed=36), load_protocol("esims"))
    code, out = run_fast(root, tmp, "--nprocs", "2")
    assert code == 0, (out / "errors.tsv").read_text()
    return root, out
