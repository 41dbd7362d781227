"""What a lesion candidate looks like and where it is: one row of features per candidate.

The per-candidate decision of the T2 lesion stage (issue 23: a sensitive intensity
method proposes candidates, a transparent classifier keeps the real lesions) reads
these features.  Each is computed for every labelled candidate at once
(``scipy.ndimage`` reductions over the label image), from what the lesion stage has
on the reading-space grid:

* size and shape: volume (mm³), in-plane diameter, extent across slices (mm),
  elongation (largest over smallest principal axis, in mm);
* contrast, per lesion channel, free of scanner units and of the noise level (a
  model learned on one site's scans must hold on another's): the mean inside
  relative to normal-appearing white matter (NAWM), the contrast to a ring around
  the candidate (inside minus ring, relative to NAWM), and the position between
  NAWM and grey matter (0 at the NAWM median, 1 at the grey-matter median: real
  lesions are often barely brighter than cortex on FLAIR);
* surroundings: the tissue model's CSF, grey- and white-matter fractions in the ring;
  the template's white-matter probability inside;
* place: depth below the brain surface (cortex) and distance to the ventricles (mm),
  and the lesion-frequency prior inside (:func:`mriproc.template.load_lesion_prior`,
  carried to the scan) when given.

Nothing here decides: the features are the same for every protocol, their weights
are learned (a model shipped as package data) and judged leave-one-patient-out.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.lesions import lesions_from_labels, slice_axis

__all__ = [
    "CLASSIFIER_FORMAT",
    "GREY_MATTER_MIN_FRACTION",
    "VENTRICLE_MIN_DEPTH_MM",
    "LesionClassifier",
    "candidate_features",
    "load_lesion_classifier",
]

FloatArray = npt.NDArray[np.float64]

# CSF deeper than this below the brain surface is ventricular (sulcal CSF is shallower).
VENTRICLE_MIN_DEPTH_MM = 15.0
# Grey matter (a channel's grey-matter median): tissue-model GM fraction at least this.
GREY_MATTER_MIN_FRACTION = 0.7
# Ventricles: voxels the tissue model calls at least this much CSF.
_VENTRICLE_CSF_FRACTION = 0.5


def candidate_features(
    labels: npt.ArrayLike,
    channels: Mapping[str, npt.ArrayLike],
    nawm: npt.ArrayLike,
    tissue: Mapping[str, npt.ArrayLike],
    template_wm: npt.ArrayLike,
    brain: npt.ArrayLike,
    voxel_size_mm: Sequence[float],
    *,
    ring_mm: tuple[float, float],
    prior: npt.ArrayLike | None = None,
) -> dict[str, FloatArray]:
    """Features of candidates ``1..labels.max()`` (each array: one value per candidate).

    The keys come in a stable order: size and shape, then per channel (in the order of
    ``channels``) its contrasts, then surroundings and place.

    Parameters
    ----------
    labels
        Candidate label image (0 background, 1..n candidates).
    channels
        Lesion channel name -> image (bias-corrected, on the grid of ``labels``).
    nawm
        Normal-appearing white matter: each channel's median there is its reference.
    tissue
        Tissue fractions ``CSF``, ``GM``, ``WM`` (the tissue model); grey matter
        (``GM`` >= :data:`GREY_MATTER_MIN_FRACTION` in the brain) gives each channel's
        grey-matter median.
    template_wm
        The template's white-matter probability carried to the grid.
    brain
        The brain mask.
    voxel_size_mm
        Voxel spacing.
    ring_mm
        The ring around a candidate: from ``ring_mm[0]`` to ``ring_mm[1]`` mm from it
        (nearer than any other candidate).
    prior
        The lesion-frequency prior carried to the grid, or None (the feature is NaN).

    >>> labels = np.zeros((12, 12, 3), int); labels[4:7, 4:7, 1] = 1
    >>> grey = np.zeros(labels.shape); grey[:, :2] = 1.0
    >>> flair = np.where(labels > 0, 200.0, np.where(grey > 0, 150.0, 100.0))
    >>> ones = np.ones(labels.shape)
    >>> f = candidate_features(labels, {"FLAIR": flair}, (labels == 0) & (grey == 0),
    ...     {"CSF": 0 * ones, "GM": grey, "WM": 1 - grey}, ones, ones > 0, (1.0, 1.0, 1.0),
    ...     ring_mm=(1.0, 2.0))
    >>> f["volume_mm3"].tolist(), f["FLAIR_contrast"].tolist(), f["FLAIR_gm_position"].tolist()
    ([9.0], [1.0], [2.0])
    """
    label_image = np.asarray(labels, dtype=np.int32)
    zooms = tuple(float(z) for z in voxel_size_mm)
    count = int(label_image.max(initial=0))
    index = np.arange(1, count + 1)
    found = lesions_from_labels(label_image, zooms)  # renumbered in raster order
    if found.count != count:
        raise ValueError("candidate labels must be 1..n without gaps")
    renumbered = found.labels.astype(np.float64)
    order = _reduce(ndimage.maximum, renumbered, label_image, index).astype(np.int64) - 1
    features: dict[str, FloatArray] = {
        "volume_mm3": found.volumes_ml[order] * 1000.0,
        "in_plane_diameter_mm": found.in_plane_diameters_mm[order].astype(np.float64),
    }
    features.update(_shape(label_image, index, zooms))

    reference = np.asarray(nawm) > 0
    in_brain = np.asarray(brain) > 0
    grey = in_brain & (np.asarray(tissue["GM"]) >= GREY_MATTER_MIN_FRACTION) & (label_image == 0)
    if not reference.any() or not grey.any():
        raise ValueError("candidate features need normal-appearing white and grey matter")
    ring = _rings(label_image, zooms, ring_mm) * in_brain
    for name, image in channels.items():
        data = np.asarray(image, dtype=np.float64)
        wm_median = float(np.median(data[reference]))
        gm_median = float(np.median(data[grey]))
        unit = max(abs(wm_median), 1e-6)
        inside = _mean(data, label_image, index)
        features[f"{name}_contrast"] = (inside - wm_median) / unit
        features[f"{name}_ring_contrast"] = (inside - _mean(data, ring, index)) / unit
        features[f"{name}_gm_position"] = (inside - wm_median) / max(
            abs(gm_median - wm_median), 1e-6 * unit
        )
    for name in ("CSF", "GM", "WM"):
        features[f"ring_{name}"] = _mean(np.asarray(tissue[name], np.float64), ring, index)
    features["template_wm"] = _mean(np.asarray(template_wm, np.float64), label_image, index)

    depth = ndimage.distance_transform_edt(in_brain, sampling=zooms)
    features["depth_mm"] = _mean(depth, label_image, index)
    ventricles = (
        in_brain
        & (np.asarray(tissue["CSF"]) >= _VENTRICLE_CSF_FRACTION)
        & (depth >= VENTRICLE_MIN_DEPTH_MM)
    )
    if ventricles.any():
        to_ventricles = ndimage.distance_transform_edt(~ventricles, sampling=zooms)
        features["ventricle_distance_mm"] = _reduce(
            ndimage.minimum, to_ventricles, label_image, index
        )
    else:
        features["ventricle_distance_mm"] = np.full(count, np.nan)
    features["prior"] = (
        np.full(count, np.nan)
        if prior is None
        else _mean(np.asarray(prior, np.float64), label_image, index)
    )
    return features


def _mean(
    values: FloatArray, labels: npt.NDArray[np.int32], index: npt.NDArray[np.int64]
) -> FloatArray:
    return _reduce(ndimage.mean, values, labels, index)


def _reduce(
    function: object,
    values: FloatArray,
    labels: npt.NDArray[np.int32],
    index: npt.NDArray[np.int64],
) -> FloatArray:
    if not len(index):
        return np.zeros(0)
    result = function(values, labels=labels, index=index)  # type: ignore[operator]
    return np.asarray(result, dtype=np.float64)


def _shape(
    labels: npt.NDArray[np.int32], index: npt.NDArray[np.int64], zooms: tuple[float, ...]
) -> dict[str, FloatArray]:
    """Extent across slices and elongation (principal axes of the voxel centres, mm)."""
    axis = slice_axis(zooms)
    extent = np.zeros(len(index))
    elongation = np.ones(len(index))
    for i, where in enumerate(ndimage.find_objects(labels)[: len(index)]):
        if where is None:
            continue
        box = labels[where] == index[i]
        points = np.argwhere(box).astype(np.float64) * np.asarray(zooms)
        extent[i] = (points[:, axis].max() - points[:, axis].min()) + zooms[axis]
        if len(points) > 3:
            spread = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(points.T)), 0.0))
            smallest = max(float(spread[0]), min(zooms) / np.sqrt(12.0))  # one voxel's SD
            elongation[i] = float(spread[-1]) / smallest
    return {"slice_extent_mm": extent, "elongation": elongation}


def _rings(
    labels: npt.NDArray[np.int32], zooms: tuple[float, ...], ring_mm: tuple[float, float]
) -> npt.NDArray[np.int32]:
    """Each background voxel ``ring_mm`` from the candidates, labelled by the nearest one."""
    distance, nearest = ndimage.distance_transform_edt(
        labels == 0, sampling=zooms, return_indices=True
    )
    owner = labels[tuple(nearest)]
    inner, outer = ring_mm
    return np.where((distance >= inner) & (distance <= outer), owner, 0).astype(np.int32)


@dataclass(frozen=True, eq=False)
class LesionClassifier:
    """A logistic model of "this candidate is a lesion", read from a JSON file.

    ``probability = 1 / (1 + exp(-(intercept + coefficients . standardised)))`` where
    each feature is first log-transformed when named in ``log_features``, missing
    values (NaN) take the training mean (``fill``) and the result is standardised by
    ``mean`` and ``scale``.  The file also records how the model was made: its
    training data, the script and its metrics (``record``).
    """

    channels: tuple[str, ...]
    features: tuple[str, ...]
    log_features: tuple[str, ...]
    fill: FloatArray
    mean: FloatArray
    scale: FloatArray
    coefficients: FloatArray
    intercept: float
    record: dict[str, Any] = field(default_factory=dict)

    def design(self, features: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """The standardised feature matrix (candidates x model features)."""
        missing = [name for name in self.features if name not in features]
        if missing:
            raise ValueError(f"lesion classifier needs features {missing}")
        columns = []
        for i, name in enumerate(self.features):
            values = np.asarray(features[name], dtype=np.float64)
            if name in self.log_features:
                values = np.log(np.maximum(values, 1e-6))
            columns.append(np.where(np.isfinite(values), values, self.fill[i]))
        rows = np.size(next(iter(features.values()))) if features else 0
        matrix = np.column_stack(columns) if columns else np.zeros((rows, 0))
        return np.asarray((matrix - self.mean) / self.scale, dtype=np.float64)

    def probability(self, features: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """Each candidate's probability of being a lesion."""
        if not features or np.size(next(iter(features.values()))) == 0:
            return np.zeros(0)
        score = self.design(features) @ self.coefficients + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-score)), dtype=np.float64)

    def to_json(self) -> str:
        """The model file's content."""
        document = {
            "format": CLASSIFIER_FORMAT,
            "channels": list(self.channels),
            "features": list(self.features),
            "log_features": list(self.log_features),
            "fill": [round(float(v), 10) for v in self.fill],
            "mean": [round(float(v), 10) for v in self.mean],
            "scale": [round(float(v), 10) for v in self.scale],
            "coefficients": [round(float(v), 10) for v in self.coefficients],
            "intercept": round(float(self.intercept), 10),
            "record": self.record,
        }
        return json.dumps(document, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> LesionClassifier:
        """Read a model file's content (``source`` names it in errors)."""
        try:
            document = json.loads(text)
            if document.get("format") != CLASSIFIER_FORMAT:
                raise ValueError(f"format is not {CLASSIFIER_FORMAT}")
            features = tuple(str(f) for f in document["features"])
            arrays = {
                key: np.asarray(document[key], dtype=np.float64)
                for key in ("fill", "mean", "scale", "coefficients")
            }
            if any(len(a) != len(features) for a in arrays.values()):
                raise ValueError("fill, mean, scale and coefficients need one value per feature")
            if not np.all(arrays["scale"] > 0):
                raise ValueError("scale must be positive")
            return cls(
                channels=tuple(str(c) for c in document["channels"]),
                features=features,
                log_features=tuple(str(f) for f in document.get("log_features", [])),
                intercept=float(document["intercept"]),
                record=dict(document.get("record", {})),
                **arrays,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{source}: not a lesion classifier ({err})") from None


CLASSIFIER_FORMAT = "mriproc-lesion-classifier/1"


@functools.cache
def load_lesion_classifier(name: str) -> LesionClassifier:
    """A shipped classifier (``mriproc/data/lesion_classifier_<name>.json``) or a file."""
    path = Path(name)
    if path.suffix == ".json":
        if not path.is_file():
            raise ValueError(f"lesion classifier {path}: no such file")
        return LesionClassifier.from_json(path.read_text(), str(path))
    shipped = resources.files("mriproc").joinpath("data", f"lesion_classifier_{name}.json")
    if not shipped.is_file():
        raise ValueError(
            f"no shipped lesion classifier named {name!r} (mriproc/data/lesion_classifier_*.json)"
        )
    return LesionClassifier.from_json(shipped.read_text(), f"lesion_classifier_{name}.json")
