"""The official BIDS validator (``bids-validator`` 1.15 from npm) on the datasets mriproc
writes: a simulated trial and its DICOM converted back.  Zero errors, zero warnings.

The validator is installed from npm into a cache folder on first use (node and npm must
be on the PATH); without node the test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from convert_command import convert

from mriproc.cli import EXIT_OK, main

VALIDATOR = "bids-validator@1.15.0"


@pytest.fixture(scope="module")
def validator() -> Path:
    """The validator's executable, installed from npm into a cache folder if needed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed: the official BIDS validator cannot run")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mriproc-tests"
    prefix = cache / VALIDATOR.replace("@", "-")
    executable = prefix / "node_modules" / ".bin" / "bids-validator"
    if not executable.is_file():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), VALIDATOR],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not executable.is_file():
            pytest.skip(f"npm install {VALIDATOR} failed: {done.stderr.strip()[-500:]}")
    return executable


def issues(validator: Path, dataset: Path) -> dict[str, list[str]]:
    """The validator's errors and warnings on ``dataset``: code and the files named."""
    done = subprocess.run(
        [str(validator), "--json", str(dataset)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(done.stdout)["issues"]
    return {
        kind: [
            f"{issue['key']}: "
            + "; ".join(
                sorted(
                    {
                        f"{(f.get('file') or {}).get('relativePath', '')} {f.get('evidence') or ''}"
                        for f in issue.get("files") or []
                        if f
                    }
                )
            )
            for issue in report[kind]
        ]
        for kind in ("errors", "warnings")
    }


def test_simulated_and_converted_datasets_pass_clean(validator: Path, tmp_path: Path) -> None:
    simulated = tmp_path / "sim"
    argv = ["simulate", str(simulated), "--subjects", "2", "--visits", "0,12", "--format", "both"]
    assert main([*argv, "--seed", "9"]) == EXIT_OK
    assert issues(validator, simulated) == {"errors": [], "warnings": []}


def test_a_converted_dataset_passes_clean(
    validator: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulated = tmp_path / "sim"
    argv = ["simulate", str(simulated), "--subjects", "1", "--visits", "0,12", "--format", "dicom"]
    assert main([*argv, "--seed", "9"]) == EXIT_OK
    bids = tmp_path / "bids"
    participants = tmp_path / "covariates.tsv"  # a covariate mriproc does not know
    participants.write_text("participant_id\tarm\tsite\nsub-001\tplacebo\tVienna\n")
    status, output = convert(
        capsys, simulated / "sourcedata" / "dicom", bids, "--participants", str(participants)
    )
    assert status == EXIT_OK, output
    assert issues(validator, bids) == {"errors": [], "warnings": []}
    dictionary = json.loads((bids / "participants.json").read_text())
    assert "site" in dictionary and "Description" in dictionary["site"]
