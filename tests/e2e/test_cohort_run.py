"""Cohort processing end to end: the trial run and its reruns, group level, provenance,
SLURM.

One real run, the module's ``longitudinal_trial`` (1 subject x 2 visits, 2 processes),
is checked end to end (longitudinal endpoints, masks, tracked lesions, provenance) and
is the uninterrupted reference of the reruns: killed with SIGKILL and resumed with 1
process, and under Nipype's SLURM plugin, they must give byte-identical tables.

SLURM: ``scripts/slurm_localhost.sh`` installs Debian's slurm-wlm and munge when
missing and starts munged, slurmctld and slurmd.  Those tests are skipped, with the
reason, only where that cannot happen (not root, or no apt-get and no SLURM); under CI
(``CI=true``) they never skip: a failure to set up the cluster fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from cohort_skeleton import skeleton

from mriproc.cli import EXIT_FAILURE, EXIT_OK, main
from mriproc.config import load_protocol
from mriproc.endpoints import LONGITUDINAL_ENDPOINTS
from mriproc.io.provenance import generated_by
from mriproc.longitudinal import CHANGE_CATEGORIES
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table
from mriproc.visit import BASELINE_FIT, OWN_FIT

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture

TABLES = ("endpoints.tsv", "endpoints_wide.tsv", "lesions.tsv")


# --------------------------------------------------------------------------- the trial run


@pytest.fixture(scope="module")
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


def test_run_writes_longitudinal_endpoints_masks_and_tracked_lesions(
    longitudinal_trial: tuple[Path, Path],
) -> None:
    """``mriproc run``, 1 subject x 2 visits: every longitudinal endpoint, follow-up grid masks."""
    _, out = longitudinal_trial
    table = pd.read_csv(out / "endpoints.tsv", sep="\t")
    table = table[table.participant_id == "sub-001"]
    follow = table[(table.session == "ses-M12") & table.endpoint.isin(LONGITUDINAL_ENDPOINTS)]
    assert sorted(follow.endpoint) == sorted(LONGITUDINAL_ENDPOINTS)
    assert (follow.status == "ok").all(), follow[["endpoint", "status"]]
    assert set(follow[follow.endpoint == "active_scan"].value) <= {0.0, 1.0}
    at_baseline = table[(table.session == "ses-M00") & table.endpoint.isin(LONGITUDINAL_ENDPOINTS)]
    assert at_baseline.empty  # comparisons do not apply at baseline
    anat = out / "sub-001" / "ses-M12" / "anat"
    reading = nib.load(anat / "sub-001_ses-M12_desc-t2lesion_mask.nii.gz")
    for name in ("newlesion", "enlarginglesion"):
        mask = nib.load(anat / f"sub-001_ses-M12_desc-{name}_mask.nii.gz")
        assert mask.shape == reading.shape
        np.testing.assert_allclose(mask.affine, reading.affine)
        assert (np.asarray(mask.dataobj) <= np.asarray(reading.dataobj)).all()  # subsets of lesions
    lesions = pd.read_csv(out / "lesions.tsv", sep="\t")
    lesions = lesions[lesions.participant_id == "sub-001"]
    ids = {s: set(group.lesion_id) for s, group in lesions.groupby("session")}
    assert ids["ses-M00"] & ids["ses-M12"]  # identities carried to the follow-up
    assert set(lesions[lesions.session == "ses-M12"].category) <= set(CHANGE_CATEGORIES)
    new_mask = nib.load(anat / "sub-001_ses-M12_desc-newlesion_mask.nii.gz")
    new_count = follow.set_index("endpoint").loc["new_t2_count", "value"]
    assert (np.asarray(new_mask.dataobj).sum() > 0) == (new_count > 0)
    # The template fitted once: the follow-up's record says it carries the baseline's.
    for session, fit in (("M00", OWN_FIT), ("M12", BASELINE_FIT)):
        record = out / f"sub-001/ses-{session}/anat/sub-001_ses-{session}_desc-visit_measures.json"
        assert json.loads(record.read_text())["template_fit"] == fit
    # Provenance: every record, image sidecar and the dataset description name version,
    # protocol, lock.
    generated = generated_by(protocol_name="esims")
    assert generated[0]["RequirementsLockSHA256"] != "unknown"
    sidecars = sorted(anat.glob("*.json"))
    assert len(sidecars) > 10
    for record in (*sidecars, out / "dataset_description.json"):
        assert json.loads(record.read_text())["GeneratedBy"] == generated, record


# --------------------------------------------------------------------------- group level


def test_group_gathers_participants_run_in_separate_jobs(
    tmp_path: Path, longitudinal_trial: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Job 1 (processed earlier) and job 2 (a participant whose scans are unusable) -> group."""
    root, reference = longitudinal_trial
    bids = tmp_path / "bids"
    shutil.copytree(root, bids, ignore=shutil.ignore_patterns("derivatives"))
    for session in ("M00", "M12"):
        source = bids / "sub-001" / f"ses-{session}" / "anat"
        target = bids / "sub-002" / f"ses-{session}" / "anat"
        target.mkdir(parents=True)
        for image in source.iterdir():
            (target / image.name.replace("sub-001", "sub-002")).write_bytes(b"")
    header = (bids / "participants.tsv").read_text().splitlines()[0].split("\t")
    row = {"participant_id": "sub-002", "arm": "ivig"}
    with (bids / "participants.tsv").open("a") as table:
        table.write("\t".join(row.get(column, "n/a") for column in header) + "\n")
    out = tmp_path / "out"
    shutil.copytree(reference / "sub-001", out / "mriproc" / "sub-001")  # job 1's outputs

    job2 = ["run", str(bids), str(out), "participant", "--participant-label", "002"]
    assert main(job2) == EXIT_FAILURE  # every scan of sub-002 is unusable
    assert main(["run", str(bids), str(out), "group"]) == EXIT_FAILURE
    assert "Gathered 2 of 2 participant(s)" in capsys.readouterr().out

    endpoints = read_table(out / "mriproc" / "endpoints.tsv")
    ours = endpoints[endpoints.participant_id == "sub-001"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, read_table(reference / "endpoints.tsv"))
    second = endpoints[endpoints.participant_id == "sub-002"]
    assert second.value.isna().all()
    assert second.status.str.contains("empty file").all()
    errors = read_table(out / "mriproc" / "errors.tsv")
    assert set(errors.participant_id) == {"sub-002"}
    assert set(errors.stage) == {"inputs", "input-file"}


def test_a_listed_participant_without_data_is_an_error_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: a participant in participants.tsv with no folder vanished without a word.
    bids = skeleton(tmp_path / "bids", 1)
    for image in bids.rglob("*.nii.gz"):  # nothing to process: every scan unusable
        image.write_bytes(b"")
    with (bids / "participants.tsv").open("a") as table:
        header = (bids / "participants.tsv").read_text().splitlines()[0].split("\t")
        table.write("\t".join({"participant_id": "sub-09"}.get(c, "n/a") for c in header) + "\n")
    out = tmp_path / "out"
    assert main(["run", str(bids), str(out), "participant"]) == EXIT_FAILURE
    reason = "listed in participants.tsv but has no data (no sub-09 folder with images)"
    assert f"mriproc: WARNING: sub-09: {reason}" in capsys.readouterr().err
    errors = read_table(out / "mriproc" / "errors.tsv")
    row = errors[errors.participant_id == "sub-09"]
    assert list(row.stage) == ["inputs"] and list(row.reason) == [reason]


def test_run_says_when_participants_tsv_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: every arm was n/a without a word from run.
    bids = skeleton(tmp_path / "bids", 1)
    for image in bids.rglob("*.nii.gz"):
        image.write_bytes(b"")
    (bids / "participants.tsv").unlink()
    main(["run", str(bids), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert "mriproc: WARNING: participants.tsv is missing; arm and covariates are n/a" in err


def test_group_without_participant_runs_lists_everyone_as_not_processed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bids = skeleton(tmp_path / "bids", 2)
    assert main(["run", str(bids), str(tmp_path / "out"), "group"]) == EXIT_FAILURE
    assert "Not processed yet: sub-01, sub-02" in capsys.readouterr().out
    endpoints = read_table(tmp_path / "out" / "mriproc" / "endpoints.tsv")
    assert set(endpoints.status) == {"not processed yet (run its participant level)"}
    (config,) = (tmp_path / "out" / "mriproc" / "logs").glob("*/mriproc.toml")
    recorded = tomllib.loads(config.read_text())
    assert recorded["run"]["command"] == [
        "mriproc",
        "run",
        str(bids),
        str(tmp_path / "out"),
        "group",
    ]
    assert recorded["options"]["analysis_level"] == "group"
    assert (tmp_path / "out" / "mriproc" / "dataset_description.json").is_file()


# --------------------------------------------------------------------------- provenance


def test_run_records_options_protocol_and_source(longitudinal_trial: tuple[Path, Path]) -> None:
    root, out = longitudinal_trial
    (log_dir,) = (out / "logs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}_[0-9a-f-]{36}", log_dir.name)
    config = tomllib.loads((log_dir / "mriproc.toml").read_text())
    assert config["run"]["id"] == log_dir.name
    assert config["run"]["command"][:4] == ["mriproc", "run", str(root), str(out.parent)]
    assert config["options"]["nprocs"] == 2
    assert config["options"]["analysis_level"] == "participant"
    assert config["protocol"]["name"] == "esims"
    assert config["protocol"]["registration"]["preset"]["name"] == "fast"  # written out
    assert config["protocol"]["pcf"]["channels"] == ["PDw", "T2w"]
    assert "nipype" in config["environment"]
    description = (out / "dataset_description.json").read_text()
    assert str(root.resolve()) in description and '"Version"' in description


# --------------------------------------------------------------------------- resume


def _complete_images(out: Path) -> None:
    """Every output that looks finished is complete: images load fully, JSON parses."""
    for path in out.rglob("*"):
        if path.name.startswith("."):
            continue  # temporary files of atomic writes are hidden
        if path.name.endswith(".nii.gz"):
            assert np.isfinite(np.asarray(nib.load(path).dataobj, dtype=np.float32)).all(), path
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_killed_run_resumes_from_cache_with_identical_tables(
    tmp_path: Path, longitudinal_trial: tuple[Path, Path]
) -> None:
    """SIGKILL once the baseline visit is written; the rerun (1 process) reuses its nodes."""
    root, reference = longitudinal_trial
    protocol = tmp_path / "fast.yaml"
    protocol.write_text((reference.parent.parent / "esims_fast.yaml").read_text())
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [sys.executable, "-m", "mriproc.cli", "run", str(root), str(out), "participant"]
    argv += ["--protocol", str(protocol), "-w", str(work), "--nprocs", "1"]
    record = out / "mriproc/sub-001/ses-M00/anat/sub-001_ses-M00_desc-visit_measures.json"
    job = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not record.is_file() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job.poll() is None, "the run ended before it could be interrupted"
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert not (out / "mriproc" / "endpoints.tsv").exists()
    _complete_images(out / "mriproc")
    killed_at = time.time()

    assert subprocess.run(argv, stdout=subprocess.DEVNULL).returncode == EXIT_OK

    results = list(work.rglob("result_*.pklz"))
    rerun = [r for r in results if r.stat().st_mtime >= killed_at]
    reused = [r for r in results if r.stat().st_mtime < killed_at]
    assert any("visit_sub_001_ses_M00" in str(r) and "brain_masks" in str(r) for r in reused)
    assert len(rerun) < len(results)
    for table in TABLES:
        assert (out / "mriproc" / table).read_bytes() == (reference / table).read_bytes(), table
    _complete_images(out / "mriproc")


# --------------------------------------------------------------------------- SLURM

SCRIPT = Path(__file__).parents[2] / "scripts" / "slurm_localhost.sh"


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
