"""Figures to embedded PNG: the same figure gives the same bytes on every run.

Figures are made with :class:`matplotlib.figure.Figure` directly (Agg canvas, no
pyplot state), saved without the ``Software`` text chunk (matplotlib writes no date
into PNG) and embedded as ``data:`` URIs so the report opens offline.
"""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["DPI", "data_uri", "new_figure", "png_bytes"]

DPI = 90
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure of fixed size on its own Agg canvas."""
    figure = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG, without metadata that would differ between versions or runs."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``.

    >>> data_uri(PNG_SIGNATURE)[:30]
    'data:image/png;base64,iVBORw0K'
    """
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
