"""The progress line of a run: participants done, failed and the ETA; quiet in logs."""

from __future__ import annotations

import io
import logging
import re
from types import SimpleNamespace

import pytest

from mriproc.progress import WorkflowProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_counts_participants_with_an_eta() -> None:
    stream = _Terminal()
    progress = WorkflowProgress(
        {"01": ["visit_sub_01_ses_M00", "longitudinal_sub_01"], "02": ["visit_sub_02_ses_M00"]},
        stream=stream,
    )

    def node(name: str) -> SimpleNamespace:
        return SimpleNamespace(fullname=f"mriproc_wf.{name}")

    progress(node("visit_sub_01_ses_M00.outputs"), "end")
    assert stream.getvalue() == ""  # sub-01 still has its longitudinal stage
    progress(node("longitudinal_sub_01.outputs"), "end")
    assert re.search(r"participants: 1/2 sub-01 done \(\d+ s, ETA \d+ s\)$", stream.getvalue())
    progress(node("visit_sub_02_ses_M00.n4_t1w"), "exception")
    assert stream.getvalue().endswith("participants: 2/2 sub-02 failed (1 failed so far) (0 s)\n")


def test_progress_is_quiet_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()  # not a terminal
    progress = WorkflowProgress({"01": ["visit_sub_01_ses_M00"]}, stream=stream)
    progress(SimpleNamespace(fullname="mriproc_wf.visit_sub_01_ses_M00.outputs"), "end")
    assert stream.getvalue() == ""
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
