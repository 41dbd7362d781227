"""Shared test configuration.  The tests are in three tiers:

* ``unit/``: functions on small synthetic arrays and files, configuration, tables and
  contracts; no Nipype workflow is built and no pipeline runs.
* ``workflows/``: workflow graphs built on a skeleton or small simulated dataset,
  without running them.
* ``e2e/``: whatever runs the pipeline or a command end to end (``mriproc run``,
  ``mriproc demo``, the command line on a simulated trial, SLURM, the container image,
  the quick start); its fixture ``run_fast`` is in ``e2e/conftest.py``.

``tests/helpers/`` (helpers of several tiers) is put on ``sys.path`` so that test
modules import them by name (pytest runs with ``--import-mode=importlib``, which does
not add test folders to the path itself).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))

# pytest-xdist runs the suite on two workers, one test module at a time per worker
# (``--dist=loadfile`` in pyproject.toml), so a module-scoped fixture runs once: each
# pipeline run that several tests check is a module-scoped fixture of their one module.
# The modules with pipeline runs take longest; they are handed out first.  Module file
# names are unique across the tiers.
LONGEST_MODULES = (
    "test_cohort_run.py",  # e2e: the 1 x 2 trial run, its resumed, SLURM and group reruns
    "test_report_demo.py",  # e2e: mriproc demo (4 x 2), the report of a flawed copy, Chromium
    "test_visit_run.py",  # e2e: 5 participants x 1 visit
    "test_brain.py",  # unit
    "test_error_isolation.py",  # e2e
    "test_docker.py",  # e2e
    "test_simulate.py",  # unit
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, so that neither worker is left with one at the end."""
    order = {name: rank for rank, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))
