"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mriproc.cli import main
from mriproc.demo import protocol_with_preset

RunFast = Callable[..., tuple[int, Path]]


def _run_fast(root: Path, tmp: Path, *options: str) -> tuple[int, Path]:
    """``mriproc run ROOT TMP/out participant [OPTIONS]`` with the fast registration preset."""
    protocol_file = protocol_with_preset("esims", "fast", tmp / "esims_fast.yaml")
    out = tmp / "out"
    argv = ["run", str(root), str(out), "participant", "--protocol", str(protocol_file)]
    return main([*argv, "-w", str(tmp / "work"), *options]), out / "mriproc"


@pytest.fixture(scope="session")
def run_fast() -> RunFast:
    """``mriproc run ROOT TMP/out participant [OPTIONS]`` with the fast registration preset."""
    return _run_fast
