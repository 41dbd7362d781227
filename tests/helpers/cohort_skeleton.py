"""The cohort tests' skeleton dataset: ``n`` esims participants x 2 visits, tiny images.

Used by ``unit/test_cohort_tables.py``, ``workflows/test_node_resources.py`` and
``e2e/test_cohort_run.py``.
"""

from __future__ import annotations

from pathlib import Path

from mriproc.config import load_protocol
from mriproc.skeleton import write_skeleton_dataset

PROTOCOL = load_protocol("esims")


def skeleton(root: Path, n: int) -> Path:
    arms = {f"{i:02d}": ("placebo", "ivig")[i % 2] for i in range(1, n + 1)}
    return write_skeleton_dataset(
        root, PROTOCOL, arms=arms, sessions=["M00", "M12"], shape=(16, 16, 6), omit=[]
    )
