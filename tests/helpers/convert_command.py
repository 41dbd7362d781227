"""``mriproc convert`` called in-process: its exit status and what it printed.

Used by ``unit/test_convert.py`` and ``e2e/test_convert_simulated_trial.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mriproc.cli import main


def convert(
    capsys: pytest.CaptureFixture[str], dicom: Path, bids: Path, *extra: str
) -> tuple[int, str]:
    status = main(["-vv", "convert", str(dicom), str(bids), *extra])
    captured = capsys.readouterr()
    return status, captured.out + captured.err
