"""How ``mriproc run`` drives Nipype's scheduler (a real, tiny workflow)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from mriproc import run


def _double(x: int) -> int:
    return 2 * x


@pytest.mark.parametrize(
    ("plugin", "poll_s"), [("MultiProc", run.MULTIPROC_POLL_S), ("Linear", run.NIPYPE_POLL_S)]
)
def test_multiproc_polls_often_and_other_plugins_keep_nipypes_pace(
    tmp_path: Path, plugin: str, poll_s: float
) -> None:
    """Nipype sleeps up to ``poll_sleep_duration`` between scheduling rounds: with its
    2 s default every node of a chain waited up to 2 s after the one before it."""
    wf = pe.Workflow(name="chain", base_dir=str(tmp_path))
    first = pe.Node(niu.Function(function=_double), name="first")
    first.inputs.x = 1
    second = pe.Node(niu.Function(function=_double), name="second")
    wf.connect(first, "out", second, "x")
    args = {"n_procs": 1} if plugin == "MultiProc" else {}
    run._execute(wf, {"p": ["chain"]}, plugin, args, io.StringIO())
    # What the workflow handed its plugin (Workflow.run passes its own configuration).
    assert float(wf.config["execution"]["poll_sleep_duration"]) == poll_s
    result = (tmp_path / "chain" / "second" / "result_second.pklz").is_file()
    assert result, "the workflow did not run"
