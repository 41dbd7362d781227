"""One visit's QC mosaic: axial slices of the reading-space image with mask contours.

Rows: the brain mask and the PCF slab; the lesion masks (T2 lesions, black holes,
enhancing, new and enlarging); and a registration check, the edges of a contrast
that was resampled into reading space (T1w) over the reading image.  The slices are
the acquired axial slices (no resampling: a rater reads 5 mm slices as acquired),
shown in RAS order (neurological view: the subject's left on the left), spread over
the brain and always including the middle of the PCF slab and the slice with the
most T2 lesion.  A mask that cannot be read or is not on the reading image's grid is
left out with the reason; the mosaic is still drawn.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.lines import Line2D
from nibabel.spatialimages import SpatialImage
from scipy import ndimage
from skimage.feature import canny

from mriproc.report.png import new_figure, png_bytes

__all__ = [
    "ANATOMY_COLOURS",
    "EDGE_COLOUR",
    "LESION_COLOURS",
    "ImageError",
    "VisitMosaic",
    "choose_slices",
    "draw_visit_mosaic",
    "load_ras",
]

ANATOMY_COLOURS = {"brain": "#00e000", "pcfslab": "#3399ff"}
LESION_COLOURS = {
    "t2lesion": "#ff2020",
    "blackhole": "#00e5ff",
    "cel": "#ffff00",
    "newlesion": "#ff40ff",
    "enlarginglesion": "#ff9900",
}
EDGE_COLOUR = (1.0, 0.85, 0.0)
N_SLICES = 6
_EDGE_SIGMA = 1.0
_PANEL_INCHES = 2.0


class ImageError(ValueError):
    """An image that cannot be shown (unreadable, wrong grid, not 3-D)."""


@dataclass(frozen=True)
class VisitMosaic:
    """The PNG of one visit and the layers left out of it, with reasons."""

    png: bytes
    slices: tuple[int, ...]
    left_out: dict[str, str]


def _ras_zooms(image: SpatialImage) -> tuple[np.ndarray, np.ndarray]:
    """(orientation to closest RAS, voxel sizes in RAS axis order)."""
    orientation = nib.orientations.io_orientation(image.affine)
    zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
    ras_zooms = np.empty(3)
    for axis, (target, _) in enumerate(orientation):
        ras_zooms[int(target)] = zooms[axis]
    return orientation, ras_zooms


def _load(path: Path) -> SpatialImage:
    try:
        image = nib.load(path)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise ImageError(f"{path.name} cannot be read ({type(err).__name__}: {err})") from err
    except nib.filebasedimages.ImageFileError as err:
        raise ImageError(f"{path.name} cannot be read as an image ({err})") from err
    if not isinstance(image, SpatialImage):
        raise ImageError(f"{path.name} is not a spatial image")
    return image


def load_ras(path: Path, reference: SpatialImage | None = None) -> np.ndarray:
    """The image's voxels in RAS order; with ``reference``, it must be on its grid."""
    image = _load(path)
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise ImageError(f"{path.name} cannot be read ({type(err).__name__}: {err})") from err
    if data.ndim != 3:
        raise ImageError(f"{path.name} is {data.ndim}-D, not 3-D")
    grid = reference if reference is not None else image
    if reference is not None and (
        data.shape != reference.shape[:3]
        or not np.allclose(image.affine, reference.affine, atol=1e-3)
    ):
        raise ImageError(f"{path.name} is not on the reading image's grid")
    orientation, _ = _ras_zooms(grid)
    return np.asarray(nib.orientations.apply_orientation(data, orientation))


def choose_slices(
    brain: np.ndarray | None,
    slab: np.ndarray | None,
    lesions: np.ndarray | None,
    n_slices: int = N_SLICES,
    *,
    n_axial: int,
) -> list[int]:
    """Axial slices spread over the brain, with the slab's middle and the busiest lesion slice.

    >>> brain = np.zeros((4, 4, 20), bool); brain[..., 2:18] = True
    >>> slab = np.zeros_like(brain); slab[..., 9:13] = True
    >>> choose_slices(brain, slab, None, 4, n_axial=20)
    [4, 8, 11, 15]
    """
    covered = np.flatnonzero(brain.any(axis=(0, 1))) if brain is not None else np.array([])
    first, last = (int(covered[0]), int(covered[-1])) if len(covered) else (0, n_axial - 1)
    # Leave out the brain's thin top and bottom caps, which say little about masks.
    margin = (last - first) * 0.12
    spread = np.linspace(first + margin, last - margin, n_slices)
    chosen = [round(float(k)) for k in spread]
    wanted = []
    if slab is not None and slab.any():
        in_slab = np.flatnonzero(slab.any(axis=(0, 1)))
        wanted.append(int(in_slab[len(in_slab) // 2]))
    if lesions is not None and lesions.any():
        wanted.append(int(np.argmax(lesions.sum(axis=(0, 1)))))
    for slice_index in wanted:
        if slice_index not in chosen:
            nearest = int(np.argmin([abs(k - slice_index) for k in chosen]))
            if chosen[nearest] not in wanted:
                chosen[nearest] = slice_index
    return sorted(set(chosen))


def _crop(image: np.ndarray, brain: np.ndarray | None, margin: int = 6) -> tuple[slice, slice]:
    """In-plane bounding box of the head (or brain) with a margin."""
    region = brain if brain is not None and brain.any() else image > 0.1 * image.max()
    if not region.any():
        return slice(None), slice(None)
    xs = np.flatnonzero(region.any(axis=(1, 2)))
    ys = np.flatnonzero(region.any(axis=(0, 2)))
    return (
        slice(max(int(xs[0]) - margin, 0), int(xs[-1]) + margin + 1),
        slice(max(int(ys[0]) - margin, 0), int(ys[-1]) + margin + 1),
    )


def _edges(plane: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Canny edges of one slice inside ``region`` (the brain and a rim around it).

    Thresholds are quantiles of the gradient inside the region, so the edges of the
    ventricles, the grey/white boundary and the brain surface show, not just the
    scalp, whatever the intensity scale.
    """
    if not region.any() or not np.isfinite(plane).all() or plane.max() <= plane.min():
        return np.zeros(plane.shape, dtype=bool)
    smoothed = ndimage.gaussian_filter(plane.astype(float), _EDGE_SIGMA)
    gradient = np.hypot(ndimage.sobel(smoothed, axis=0), ndimage.sobel(smoothed, axis=1))
    low, high = np.percentile(gradient[region], [75.0, 90.0])
    return np.asarray(
        canny(
            plane.astype(float),
            sigma=_EDGE_SIGMA,
            low_threshold=low,
            high_threshold=high,
            mask=region,
        )
    )


def draw_visit_mosaic(
    title: str,
    reading: Path,
    masks: Mapping[str, Path],
    *,
    edge_image: tuple[str, Path] | None,
    labels: Mapping[str, str],
    reading_name: str,
) -> VisitMosaic:
    """Draw the mosaic of one visit; raises :class:`ImageError` if ``reading`` cannot be shown.

    ``masks`` maps layer keys (:data:`ANATOMY_COLOURS`, :data:`LESION_COLOURS`) to
    files on the reading grid, ``labels`` the keys to legend text; ``edge_image`` is
    ``(name, file)`` of a contrast resampled into reading space.
    """
    if not reading.is_file():
        raise ImageError(f"reading image {reading} not found")
    reference = _load(reading)
    image = load_ras(reading)
    _, zooms = _ras_zooms(reference)
    left_out: dict[str, str] = {}
    layers: dict[str, np.ndarray] = {}
    for key, path in masks.items():
        try:
            layers[key] = load_ras(path, reference) > 0
        except ImageError as err:
            left_out[key] = str(err)
    edges_of: np.ndarray | None = None
    edge_name = ""
    if edge_image is not None:
        edge_name = edge_image[0]
        try:
            edges_of = load_ras(edge_image[1], reference)
        except ImageError as err:
            left_out["registration"] = str(err)
    lesion_union = layers.get("t2lesion")
    slices = choose_slices(
        layers.get("brain"), layers.get("pcfslab"), lesion_union, n_axial=image.shape[2]
    )
    crop_x, crop_y = _crop(image, layers.get("brain"))
    edge_region = (
        ndimage.binary_dilation(layers["brain"], np.ones((5, 5, 1), bool))
        if "brain" in layers and layers["brain"].any()
        else np.ones(image.shape, dtype=bool)
    )
    inside = layers["brain"] if "brain" in layers and layers["brain"].any() else image > 0
    vmax = float(np.percentile(image[inside], 99.5)) if inside.any() else 1.0
    rows: list[tuple[str, Sequence[str]]] = [
        ("masks", [k for k in ANATOMY_COLOURS if k in layers]),
        ("lesions", [k for k in LESION_COLOURS if k in layers]),
    ]
    if edges_of is not None:
        rows.append((f"{edge_name} edges", []))
    colours = {**ANATOMY_COLOURS, **LESION_COLOURS}
    figure = new_figure(_PANEL_INCHES * len(slices), (_PANEL_INCHES + 0.1) * len(rows) + 0.8)
    axes = figure.subplots(len(rows), len(slices), squeeze=False)
    aspect = zooms[1] / zooms[0]
    for row, (name, keys) in enumerate(rows):
        for col, k in enumerate(slices):
            ax = axes[row, col]
            plane = image[crop_x, crop_y, k].T
            ax.imshow(
                plane,
                cmap="gray",
                origin="lower",
                vmin=0,
                vmax=vmax or 1.0,
                aspect=aspect,
                interpolation="nearest",
            )
            for key in keys:
                mask = layers[key][crop_x, crop_y, k].T
                if mask.any():
                    ax.contour(
                        mask.astype(float), levels=[0.5], colors=colours[key], linewidths=0.9
                    )
            if edges_of is not None and row == len(rows) - 1:
                overlay = np.zeros((*plane.shape, 4))
                edges = _edges(edges_of[crop_x, crop_y, k].T, edge_region[crop_x, crop_y, k].T)
                overlay[edges] = (*EDGE_COLOUR, 1.0)
                ax.imshow(overlay, origin="lower", aspect=aspect, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=8)  # names the edge row (not in the legend)
            if row == 0:
                in_slab = "pcfslab" in layers and bool(layers["pcfslab"][..., k].any())
                ax.set_title(f"slice {k}" + (" (slab)" if in_slab else ""), fontsize=8)
    handles = [
        Line2D([], [], color=colours[key], linewidth=2, label=labels.get(key, key))
        for _, keys in rows
        for key in keys
    ]
    figure.suptitle(f"{title} — {reading_name}", fontsize=9)
    if handles:
        figure.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 4),
            fontsize=7,
            frameon=False,
        )
    figure.subplots_adjust(
        left=0.04,
        right=0.995,
        top=1 - 0.45 / figure.get_figheight(),
        bottom=0.5 / figure.get_figheight(),
        wspace=0.03,
        hspace=0.06,
    )
    return VisitMosaic(png_bytes(figure), tuple(slices), left_out)
