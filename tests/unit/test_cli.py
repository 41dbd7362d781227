"""The ``mriproc`` command line, called in-process through ``mriproc.cli.main``: version,
usage errors (refused before anything runs) and ``validate`` on skeleton datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mriproc import __version__
from mriproc.cli import EXIT_OK, EXIT_USAGE, main
from mriproc.config import load_protocol
from mriproc.run import work_dir_lock
from mriproc.skeleton import write_skeleton_dataset

ARMS = {"01": "placebo", "02": "ivig"}
SESSIONS = ["M00", "M12", "M24"]


def _skeleton(root: Path, omit: list[tuple[str, str, str]] | None = None) -> Path:
    return write_skeleton_dataset(
        root,
        load_protocol("esims"),
        arms=ARMS,
        sessions=SESSIONS,
        shape=(16, 16, 6),
        omit=omit or [],
    )


@pytest.fixture(scope="module")
def complete_bids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete esims skeleton dataset (read-only for the tests)."""
    return _skeleton(tmp_path_factory.mktemp("complete") / "bids")


@pytest.fixture(scope="module")
def incomplete_bids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An esims skeleton dataset lacking one post-contrast T1w (read-only for the tests)."""
    return _skeleton(
        tmp_path_factory.mktemp("incomplete") / "bids", omit=[("02", "M12", "T1w_gad")]
    )


# --------------------------------------------------------------------------- basics


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == f"mriproc {__version__}\n"
    assert __version__ == "0.1.0.dev0"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "usage: mriproc" in capsys.readouterr().err


def test_console_script_version() -> None:
    script = Path(sys.executable).parent / "mriproc"
    assert script.is_file(), f"console script not installed at {script}"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"mriproc {__version__}\n"


# --------------------------------------------------------------------------- run options


@pytest.mark.parametrize(
    "plugin_args",
    ["{not json", "[1, 2]"],
    ids=["invalid-json", "not-an-object"],
)
def test_bad_plugin_args_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plugin_args: str
) -> None:
    argv = ["run", str(tmp_path / "bids"), str(tmp_path / "out"), "participant"]
    assert main([*argv, "--plugin-args", plugin_args]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "--plugin-args" in captured.err
    assert ("not valid JSON" in captured.err) or ("must be a JSON object" in captured.err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("out", "work", "message"),
    [
        ("bids/out", None, "OUT_DIR {tmp}/bids/out is inside the BIDS dataset {tmp}/bids"),
        ("out", "bids/work", "work dir {tmp}/bids/work is inside the BIDS dataset"),
        ("afile/out", None, "OUT_DIR {tmp}/afile/out: {tmp}/afile is a file, not a folder"),
    ],
    ids=["out-inside-bids", "work-inside-bids", "out-under-a-file"],
)
def test_unusable_run_folders_are_one_line_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    out: str,
    work: str | None,
    message: str,
) -> None:
    # Before: OUT_DIR inside the dataset was accepted and the next run read its own
    # outputs as inputs; OUT_DIR under a file gave a 22-line traceback and exit 1.
    (tmp_path / "bids").mkdir()
    (tmp_path / "afile").write_text("not a folder\n")
    argv = ["run", str(tmp_path / "bids"), str(tmp_path / out), "participant"]
    if work:
        argv += ["--work-dir", str(tmp_path / work)]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "bids"]
    assert list((tmp_path / "bids").iterdir()) == []


def test_a_work_dir_in_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: two runs sharing a work dir removed each other's Nipype files and left
    # "FileNotFoundError ... _unfinished.json" rows in errors.tsv.
    _one_session_dataset(tmp_path / "bids")
    work = tmp_path / "work"
    argv = ["run", str(tmp_path / "bids"), str(tmp_path / "out"), "participant", "-w", str(work)]
    with work_dir_lock(work):  # another run holds it
        assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"work dir {work} is in use by another mriproc run (process {os.getpid()})" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _one_session_dataset(root: Path) -> None:
    anat = root / "sub-01" / "ses-M00" / "anat"
    anat.mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    (anat / "sub-01_ses-M00_T2w.nii.gz").write_bytes(b"")


@pytest.mark.parametrize(
    ("dataset", "options", "message"),
    [
        ("folder", [], "{tmp}/bids: not a BIDS dataset (dataset_description.json is missing)"),
        ("empty", [], "{tmp}/bids: nothing to process"),
        ("one", ["--participant-label", "02"], "participant(s) not found: sub-02"),
    ],
    ids=["not-bids", "no-participants", "unknown-participant"],
)
def test_a_run_with_nothing_to_process_leaves_nothing_behind(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    dataset: str,
    options: list[str],
    message: str,
) -> None:
    # Before: such a run left OUT_DIR with a log folder only (not BIDS), or reported
    # "Processed 0 session(s)" with exit 0 and empty tables (no participants).
    bids = tmp_path / "bids"
    if dataset == "one":
        _one_session_dataset(bids)
    else:
        bids.mkdir()
    if dataset == "empty":
        (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    argv = ["run", str(bids), str(tmp_path / "out"), "participant", *options]
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bids"]


# --------------------------------------------------------------------------- validate


def test_validate_complete_dataset(complete_bids: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(complete_bids)]) == 0
    out = capsys.readouterr().out
    assert "Protocol 'esims': contrasts PDw, T2w, T1w, T1w_gad; reading space T2w" in out
    assert "2 participant(s), 6 session(s)" in out
    for participant, arm in ARMS.items():
        for session, month in zip(SESSIONS, (0, 12, 24), strict=True):
            assert f"sub-{participant} ses-{session}  (month {month}, arm {arm})" in out
    assert out.count("present:  PDw, T2w, T1w, T1w_gad") == 6
    assert "6 of 6 session(s) complete; dataset is complete" in out


def test_validate_incomplete_dataset_exits_1(
    incomplete_bids: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(incomplete_bids)]) == 1
    out = capsys.readouterr().out
    block = out.split("sub-02 ses-M12  (month 12, arm ivig)", 1)[1].split("\n\n", 1)[0]
    assert "present:  PDw, T2w, T1w\n" in block
    assert "missing:  T1w_gad" in block
    assert "cannot compute (needs T1w_gad): cel_count, cel_volume" in block
    assert "5 of 6 session(s) complete; dataset is usable, with gaps" in out


def test_validate_unusable_dataset_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 2
    out = capsys.readouterr().out
    assert out.startswith("ERROR: ")
    assert "dataset_description.json is missing" in out


def test_validate_participant_label(
    incomplete_bids: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only sub-01, which is complete.
    assert main(["validate", str(incomplete_bids), "--participant-label", "01"]) == 0
    out = capsys.readouterr().out
    assert "1 participant(s), 3 session(s)" in out
    assert "sub-02" not in out


def test_validate_json(incomplete_bids: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(incomplete_bids), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"] == "esims"
    assert report["exit_code"] == 1
    assert report["fatal"] is None
    assert len(report["sessions"]) == 6
    problems = {
        (s["participant_id"], s["session"]): s["problems"]
        for s in report["sessions"]
        if s["problems"]
    }
    assert problems == {("sub-02", "ses-M12"): {"T1w_gad": "missing"}}


def test_validate_json_of_fatal_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == 2
    assert "dataset_description.json is missing" in report["fatal"]


def test_validate_unknown_protocol(complete_bids: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(complete_bids), "--protocol", "nosuch"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "nosuch: no such protocol file" in captured.err
    assert "esims, flair" in captured.err


def test_validate_protocol_by_name(complete_bids: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The esims skeleton has no FLAIR, the flair protocol's reading space.
    assert main(["validate", str(complete_bids), "--protocol", "flair"]) == 2
    out = capsys.readouterr().out
    assert out.count("missing:  FLAIR") == 6
    assert "dataset is UNUSABLE" in out


def test_demo_out_is_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "demo"
    target.write_text("not a folder\n")
    assert main(["demo", "--out", str(target)]) != EXIT_OK
    assert str(target) in capsys.readouterr().err
