"""Endpoint plots from ``endpoints.tsv``: a subject's trajectories, the cohort by arm.

Only values with status ``ok`` are plotted; a visit whose value is ``n/a`` is
marked with a grey cross on the axis (and listed with its reason on the page),
never drawn as zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from mriproc.endpoints import ENDPOINTS
from mriproc.report.inputs import NO_ARM
from mriproc.report.png import new_figure, png_bytes

__all__ = ["TRAJECTORY_ENDPOINTS", "arm_distributions_png", "trajectories_png"]

TRAJECTORY_ENDPOINTS = ("pcf", "t2_lesion_volume")
_UNITS = {e.name: e.unit for e in ENDPOINTS}
_ARM_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def _axis_label(endpoint: str) -> str:
    unit = _UNITS.get(endpoint, "")
    return f"{endpoint} ({unit})" if unit and unit != "fraction" else endpoint


def _no_value(ax: Axes) -> None:
    ax.text(
        0.5,
        0.5,
        "no value",
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=9,
        color="0.4",
    )


def _mark_missing(ax: Axes, months: Sequence[float]) -> None:
    if len(months):
        ax.plot(
            months,
            [0.02] * len(months),
            "x",
            color="0.5",
            markersize=7,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="n/a",
        )


def trajectories_png(rows: pd.DataFrame, endpoints: Sequence[str] = TRAJECTORY_ENDPOINTS) -> bytes:
    """One panel per endpoint: the subject's values over visit months."""
    figure = new_figure(3.3 * len(endpoints), 2.6)
    axes = figure.subplots(1, len(endpoints), squeeze=False)[0]
    for ax, endpoint in zip(axes, endpoints, strict=True):
        values = rows[rows["endpoint"] == endpoint].sort_values("visit_month")
        ok = values[values["status"] == "ok"]
        ax.plot(ok["visit_month"], ok["value"], "o-", color="#1f77b4")
        _mark_missing(ax, list(values.loc[values["status"] != "ok", "visit_month"].dropna()))
        ax.set_title(_axis_label(endpoint), fontsize=9)
        ax.set_xlabel("month", fontsize=8)
        months = sorted(values["visit_month"].dropna().unique())
        if months:
            ax.set_xticks(months)
            ax.set_xlim(months[0] - 2, months[-1] + 2)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ok.empty:
            _no_value(ax)
    figure.subplots_adjust(left=0.12, right=0.98, top=0.88, bottom=0.18, wspace=0.35)
    return png_bytes(figure)


def arm_distributions_png(
    endpoints: pd.DataFrame, names: Sequence[str], arms: Sequence[str]
) -> bytes:
    """One panel per endpoint: every participant's value by visit month, arms side by side.

    Each dot is one scan (offset by arm, spread deterministically within an arm);
    the bar is the arm's median at that visit.
    """
    columns = 3
    n_rows = max(1, -(-len(names) // columns))
    figure = new_figure(3.2 * columns, 2.4 * n_rows + 0.5)
    axes = figure.subplots(n_rows, columns, squeeze=False).ravel()
    width = 0.8 / max(len(arms), 1)
    for ax, endpoint in zip(axes, names, strict=False):
        values = endpoints[(endpoints["endpoint"] == endpoint) & (endpoints["status"] == "ok")]
        months = sorted(
            endpoints.loc[endpoints["endpoint"] == endpoint, "visit_month"].dropna().unique()
        )
        for a, arm in enumerate(arms):
            of_arm = values[values["arm"].fillna(NO_ARM) == arm]
            for v, month in enumerate(months):
                points = of_arm.loc[of_arm["visit_month"] == month, "value"].to_numpy(float)
                if not len(points):
                    continue
                centre = v + (a - (len(arms) - 1) / 2) * width
                spread = (
                    np.linspace(-width * 0.3, width * 0.3, len(points))
                    if len(points) > 1
                    else [0.0]
                )
                ax.plot(
                    centre + np.asarray(spread),
                    points,
                    "o",
                    markersize=3.5,
                    alpha=0.8,
                    color=_ARM_COLOURS[a % len(_ARM_COLOURS)],
                )
                median = float(np.median(points))
                ax.plot(
                    [centre - width * 0.4, centre + width * 0.4],
                    [median, median],
                    "-",
                    color="black",
                    linewidth=1.2,
                )
        ax.set_xticks(range(len(months)))
        ax.set_xticklabels([f"M{m:g}" for m in months], fontsize=7)
        ax.set_xlim(-0.6, len(months) - 0.4)
        ax.tick_params(labelsize=7)
        ax.set_title(_axis_label(endpoint), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        if values.empty:
            _no_value(ax)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles = [
        ax_handle
        for a, arm in enumerate(arms)
        for ax_handle in axes[0].plot(
            [], [], "o", color=_ARM_COLOURS[a % len(_ARM_COLOURS)], label=arm
        )
    ]
    figure.legend(
        handles=handles, loc="lower center", ncol=max(len(handles), 1), fontsize=8, frameon=False
    )
    figure.subplots_adjust(
        left=0.07,
        right=0.98,
        top=0.95,
        bottom=0.5 / figure.get_figheight() + 0.04,
        wspace=0.3,
        hspace=0.45,
    )
    return png_bytes(figure)
