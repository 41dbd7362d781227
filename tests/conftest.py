"""Shared test fixtures and helpers; ``tests/`` is put on ``sys.path`` so that test
modules import the helpers (pytest runs with ``--import-mode=importlib``, which does
not add test folders to the path itself).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mriproc.cli import main
from mriproc.config import load_protocol
from mriproc.demo import protocol_with_preset
from mriproc.simulate import TrialSpec, simulate_trial

sys.path.insert(0, str(Path(__file__).parent))

RunFast = Callable[..., tuple[int, Path]]

# pytest-xdist runs the suite on two workers (``--dist=loadgroup`` in pyproject.toml).
# Every test is grouped with its module, so a module-scoped fixture runs once; modules
# that share one of the session-wide pipeline runs below form one group, so that run
# happens once too. These groups are the longest, so they are handed out first.
SHARED_RUN_GROUPS = {
    "test_cli.py": "demo_run",
    "test_report.py": "demo_run",
    "test_cohort.py": "longitudinal_trial",
    "test_longitudinal.py": "longitudinal_trial",
    "test_slurm.py": "longitudinal_trial",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its xdist group; the shared-run groups go first."""
    for item in items:
        group = SHARED_RUN_GROUPS.get(item.path.name, str(item.path))
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.path.name not in SHARED_RUN_GROUPS)


def _run_fast(root: Path, tmp: Path, *options: str) -> tuple[int, Path]:
    """``mriproc run ROOT TMP/out participant [OPTIONS]`` with the fast registration preset."""
    protocol_file = protocol_with_preset("esims", "fast", tmp / "esims_fast.yaml")
    out = tmp / "out"
    argv = ["run", str(root), str(out), "participant", "--protocol", str(protocol_file)]
    return main([*argv, "-w", str(tmp / "work"), *options]), out / "mriproc"


@pytest.fixture(scope="session")
def run_fast() -> RunFast:
    """``mriproc run ROOT TMP/out participant [OPTIONS]`` with the fast registration preset."""
    return _run_fast


@dataclass(frozen=True)
class DemoRun:
    """What ``mriproc demo --out OUT`` returned and printed, and the run folder it made."""

    exit_code: int
    stdout: str
    stderr: str
    run_dir: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``mriproc demo`` once per session: the whole chain, shared by the CLI and report tests."""
    out = tmp_path_factory.mktemp("demo")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--out", str(out)])
    (run_dir,) = out.iterdir()
    return DemoRun(code, stdout.getvalue(), stderr.getvalue(), run_dir)


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
