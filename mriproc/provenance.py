"""Provenance recorded beside every output: software versions and the protocol used."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mriproc import __version__

__all__ = ["generated_by", "software_versions"]

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
    """A BIDS ``GeneratedBy`` entry for mriproc, naming the protocol when there is one."""
    entry: dict[str, Any] = {
        "Name": "mriproc",
        "Version": __version__,
        "CodeURL": "https://github.com/mriproc/mriproc",
    }
    if protocol_name is not None:
        entry["Protocol"] = protocol_name
    return [entry]
