"""A real SLURM run: a one-node cluster on this machine, Nipype's SLURM plugin, same tables.

``scripts/slurm_localhost.sh`` installs Debian's slurm-wlm and munge when missing and
starts munged, slurmctld and slurmd.  The test is skipped, with the reason, only
where that cannot happen (not root, or no apt-get and no SLURM); under CI
(``CI=true``) it never skips: a failure to set up the cluster fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mriproc.tables import read_table

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture

SCRIPT = Path(__file__).parents[1] / "scripts" / "slurm_localhost.sh"


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A running one-node SLURM cluster (set up by the repository's script)."""
    installable = os.geteuid() == 0 and (
        shutil.which("apt-get") is not None or shutil.which("slurmctld") is not None
    )
    if not installable and os.environ.get("CI") != "true":
        pytest.skip("SLURM cannot be set up here: needs root and apt-get (or SLURM installed)")
    setup = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    if setup.returncode != 0:
        pytest.fail(f"{SCRIPT.name} failed:\n{setup.stderr}")
    # Idempotent: a second run changes nothing and the node stays ready.
    again = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "writing" not in again.stderr and "starting" not in again.stderr, again.stderr


def test_slurm_plugin_gives_the_multiproc_tables(
    slurm_cluster: None, tmp_path: Path, longitudinal_trial: tuple[Path, Path], run_fast: RunFast
) -> None:
    root, reference = longitudinal_trial
    plugin_args = json.dumps({"sbatch_args": "--time=30"})
    code, out = run_fast(root, tmp_path, "--plugin", "SLURM", "--plugin-args", plugin_args)
    assert code == 0, (out / "errors.tsv").read_text()
    for table in ("endpoints.tsv", "lesions.tsv"):
        assert (out / table).read_bytes() == (reference / table).read_bytes(), table
    assert read_table(out / "errors.tsv").empty
    # The nodes ran as SLURM jobs.
    batch = list((tmp_path / "work").rglob("batchscript_*.sh"))
    logs = list((tmp_path / "work").rglob("slurm-*.out"))
    assert batch and logs
