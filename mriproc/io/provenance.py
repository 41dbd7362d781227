"""Provenance recorded beside every output: software versions, the protocol used and
the lock file the environment was installed from."""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import sys
import uuid
from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import tomli_w

from mriproc import __version__
from mriproc.io.atomic import atomic_write_text

__all__ = [
    "generated_by",
    "lock_file",
    "lock_file_sha256",
    "new_run_id",
    "run_log_dir",
    "software_versions",
    "toml_ready",
    "write_run_config",
]

# Distributions whose versions can change a number in the outputs.
_RELEVANT_DISTRIBUTIONS = (
    "numpy",
    "scipy",
    "nibabel",
    "nipype",
    "antspyx",
    "scikit-image",
    "nilearn",
    "pandas",
    "pybids",
    "pydicom",
    "dcm2niix",
    "statsmodels",
)

LOCK_NAME = "requirements.lock"


def lock_file() -> Path | None:
    """The ``requirements.lock`` this installation came from, when it can be found.

    Looked for, in order: ``<sys.prefix>/share/mriproc/requirements.lock`` (the
    container image copies the lock it installed from there) and the source tree
    mriproc is imported from (a clone or an editable install: the folder above the
    package that also holds ``pyproject.toml``).  A plain ``pip install`` from an
    index has neither, and the hash is then recorded as ``unknown``.
    """
    installed = Path(sys.prefix) / "share" / "mriproc" / LOCK_NAME
    source_tree = Path(__file__).resolve().parents[2]
    candidates = [installed]
    if (source_tree / "pyproject.toml").is_file():
        candidates.append(source_tree / LOCK_NAME)
    return next((path for path in candidates if path.is_file()), None)


@cache
def lock_file_sha256() -> str:
    """SHA-256 (hex) of :func:`lock_file`, or ``"unknown"`` when there is none."""
    path = lock_file()
    return "unknown" if path is None else hashlib.sha256(path.read_bytes()).hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of mriproc, Python and the libraries that compute its numbers."""
    versions = {"mriproc": __version__, "python": platform.python_version()}
    for dist in _RELEVANT_DISTRIBUTIONS:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def generated_by(*, protocol_name: str | None = None) -> list[dict[str, Any]]:
    """A BIDS ``GeneratedBy`` entry for mriproc, naming the protocol when there is one.

    Besides BIDS's ``Name``, ``Version`` and ``CodeURL`` it records ``Protocol`` and
    ``RequirementsLockSHA256`` (:func:`lock_file_sha256`): with the version, the hash
    names the exact library versions the numbers were computed with.
    """
    entry: dict[str, Any] = {
        "Name": "mriproc",
        "Version": __version__,
        "CodeURL": "https://github.com/mriproc/mriproc",
    }
    if protocol_name is not None:
        entry["Protocol"] = protocol_name
    entry["RequirementsLockSHA256"] = lock_file_sha256()
    return [entry]


def new_run_id(now: datetime | None = None) -> str:
    """A run id as fMRIPrep's: ``YYYYMMDD-HHMMSS_<uuid4>``."""
    return f"{(now or datetime.now()):%Y%m%d-%H%M%S}_{uuid.uuid4()}"


def run_log_dir(output_dir: Path, run_id: str) -> Path:
    """A run's log folder: ``OUT_DIR/mriproc/logs/<run id>``."""
    return output_dir / "mriproc" / "logs" / run_id


def toml_ready(value: Any) -> Any:
    """``value`` with what TOML cannot hold made plain: None dropped, paths and tuples as str/list.

    >>> toml_ready({"a": None, "b": (1, Path("x")), "c": {"d": None}})
    {'b': [1, 'x'], 'c': {}}
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [toml_ready(v) for v in items if v is not None]
    if isinstance(value, Path):
        return str(value)
    return value


def write_run_config(
    log_dir: Path, *, run_id: str, command: list[str], options: dict[str, Any], protocol: Any
) -> Path:
    """Write ``log_dir/mriproc.toml``: command, options, resolved protocol, versions."""
    content = {
        "run": {"id": run_id, "mriproc_version": __version__, "command": command},
        "options": toml_ready(options),
        "protocol": toml_ready(protocol),
        "environment": software_versions(),
    }
    return atomic_write_text(log_dir / "mriproc.toml", tomli_w.dumps(content))
