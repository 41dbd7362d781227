"""A picture of one simulated visit: every contrast with the ground-truth outlines.

Rows are contrasts, each in its own grid (T1w images are not registered, so they
show the same slice number, not the same anatomy), columns are slices through the
PCF slab and the slice with most lesion.  Every image is shown in RAS order
(neurological view).  Outlines on the dual-echo/FLAIR grid: T2 lesions (red),
enhancing lesions (yellow), black holes (cyan); titles mark slices in the PCF slab.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

from mriproc.io.atomic import atomic_path

__all__ = ["write_preview"]


def _as_ras(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The array with its axes reordered and flipped to the closest RAS order."""
    orientation = nib.orientations.io_orientation(affine)
    return np.asarray(nib.orientations.apply_orientation(data, orientation))


def write_preview(path: str | os.PathLike[str], title: str, visit: dict[str, Any]) -> Path:
    """Write a PNG of ``visit`` (the dict given to ``simulate_trial``'s ``on_visit``)."""
    # Show every image in RAS voxel order (neurological view) whatever its storage.
    images = {
        role: (_as_ras(data, affine), affine) for role, (data, affine) in visit["images"].items()
    }
    truth = visit["truth"]
    masks = {
        name: _as_ras(getattr(truth, name), truth.affine)
        for name in ("t2lesion", "cel", "blackhole", "pcfslab")
    }
    nz = masks["t2lesion"].shape[2]
    slab_slices = np.flatnonzero(masks["pcfslab"].any(axis=(0, 1)))
    middle = int(slab_slices.mean()) if len(slab_slices) else nz // 2
    slices = [max(middle - 3, 0), middle, min(middle + 3, nz - 1)]
    if masks["t2lesion"].any():
        busiest = int(np.argmax(masks["t2lesion"].sum(axis=(0, 1))))
        if busiest not in slices:
            slices[-1] = busiest
    roles = [r for r in ("PDw", "T2w", "FLAIR", "T1w", "T1w_gad") if r in images]
    fig, axes = plt.subplots(len(roles), len(slices), figsize=(3.2 * len(slices), 3.2 * len(roles)))
    axes = np.atleast_2d(axes)
    for row, role in enumerate(roles):
        data = images[role][0].astype(np.float32)
        vmax = float(np.percentile(data, 99.5)) or 1.0
        for col, k in enumerate(slices):
            ax = axes[row, col]
            ax.imshow(data[:, :, k].T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
            if role in ("PDw", "T2w", "FLAIR"):
                for mask, colour in (
                    (masks["t2lesion"], "red"),
                    (masks["cel"], "yellow"),
                    (masks["blackhole"], "cyan"),
                ):
                    if mask[:, :, k].any():
                        ax.contour(
                            mask[:, :, k].T.astype(float),
                            levels=[0.5],
                            colors=colour,
                            linewidths=0.6,
                        )
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(role)
            if row == 0:
                in_slab = " (PCF slab)" if k in slab_slices else ""
                ax.set_title(f"slice {k}{in_slab}", fontsize=9)
    fig.suptitle(f"{title}\nred: T2 lesions, yellow: enhancing, cyan: black holes", fontsize=10)
    fig.tight_layout()
    destination = Path(path)
    with atomic_path(destination) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return destination
