"""Shared test fixtures and helpers; ``tests/`` is put on ``sys.path`` so that test
modules import the helpers (pytest runs with ``--import-mode=importlib``, which does
not add test folders to the path itself).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mriproc.cli import main
from mriproc.demo import protocol_with_preset

sys.path.insert(0, str(Path(__file__).parent))

RunFast = Callable[..., tuple[int, Path]]

# pytest-xdist runs the suite on two workers, one test module at a time per worker
# (``--dist=loadfile`` in pyproject.toml), so a module-scoped fixture runs once: each
# pipeline run that several tests check is a module-scoped fixture of their one module.
# The modules with pipeline runs take longest; they are handed out first.
LONGEST_MODULES = (
    "test_cohort.py",  # the 1 x 2 trial run, its resumed, SLURM and group reruns
    "test_report.py",  # mriproc demo (4 x 2), the report of a flawed copy, Chromium
    "test_visit.py",  # 5 participants x 1 visit
    "test_brain.py",
    "test_error_isolation.py",
    "test_docker.py",
    "test_simulate.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, so that neither worker is left with one at the end."""
    order = {name: rank for rank, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))


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
