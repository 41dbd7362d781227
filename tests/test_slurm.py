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
import sys
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


def test_array_template_runs_each_participant_then_the_group(
    slurm_cluster: None, tmp_path: Path
) -> None:
    """scripts/slurm_array.sbatch: three array tasks into one OUT_DIR, then the group job.

    Every session's T2w is unusable, so the tasks stop before any workflow: this checks
    the template's mechanics (task -> participant, shared OUT_DIR, dependent group).
    """
    from mriproc.config import load_protocol
    from mriproc.skeleton import write_skeleton_dataset

    arms = {"01": "placebo", "02": "ivig", "03": "placebo"}
    bids = write_skeleton_dataset(
        tmp_path / "bids", load_protocol("esims"), arms=arms, sessions=["M00"], shape=(16, 16, 6)
    )
    for image in bids.rglob("*_T2w.nii.gz"):
        image.write_bytes(b"")
    template = SCRIPT.with_name("slurm_array.sbatch")
    env = dict(os.environ, BIDS_DIR=str(bids), OUT_DIR=str(tmp_path / "out"))
    env["MRIPROC"] = str(Path(sys.executable).with_name("mriproc"))
    small = ["--cpus-per-task=1", "--mem=1G", f"--chdir={tmp_path}"]
    array = subprocess.run(
        ["sbatch", "--parsable", "--array=1-3", *small, str(template)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    group = [f"--dependency=afterany:{array}", "--export=ALL,MRIPROC_LEVEL=group", "--wait"]
    subprocess.run(["sbatch", *group, *small, str(template)], env=env, timeout=600)
    errors = read_table(tmp_path / "out" / "mriproc" / "errors.tsv")
    assert sorted(errors.participant_id) == ["sub-01", "sub-02", "sub-03"]
    assert errors.reason.str.contains("empty file").all()
    logs = sorted(p.read_text() for p in tmp_path.glob("mriproc-*.out"))
    assert sum("Processed 0 session(s)" in log for log in logs) == 3
    assert sum("Gathered 3 of 3 participant(s)" in log for log in logs) == 1
