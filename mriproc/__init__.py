"""mriproc: MRI endpoints for multiple-sclerosis treatment trials."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mriproc")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
