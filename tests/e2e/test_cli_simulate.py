"""``mriproc simulate`` on the command line: a simulated trial and its preview written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mriproc.cli import EXIT_OK, main


def test_simulate_writes_a_trial_and_its_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    argv = ["simulate", str(out), "--subjects", "1", "--visits", "0", "--preview", "--seed", "3"]
    assert main(argv) == EXIT_OK
    printed = capsys.readouterr().out
    preview = out / "derivatives" / "groundtruth" / "sub-001_ses-M00_preview.png"
    assert f"Preview: {preview}" in printed
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "derivatives" / "groundtruth" / "endpoints.tsv").is_file()
    assert (out / "sub-001" / "ses-M00" / "anat" / "sub-001_ses-M00_PDw.nii.gz").is_file()
