"""Tissue classes and partial-volume tissue fractions from co-registered contrasts.

A mixel model: every voxel of the intracranial region is one pure class (CSF, GM,
WM) or a two-class mixture at one of a few mixing levels; near the skull a
signal-free end-member (bone, air) and an outlier class (fat, muscle, vessels) are
allowed too, and grey and white matter only inside the brain envelope.  Mixing is
linear in the MR signal of each channel (a voxel integrates its tissues' signals).

The class signatures are measured once, as medians where the template priors carried
to the scan are >= 0.9, and are not re-estimated by EM: on dual-echo PD/T2 data the
CSF-GM contrast is weak, and letting EM move the signatures was measured to drift
the CSF signature towards CSF-GM mixtures (CSF 12 % too dark on T2w, PCF +0.015;
benchmarks/RESULTS.md).  EM estimates the component weights and the noise (per
channel, one level away from the skull and one near it); each voxel's fractions
are the posterior expectation, whose sum over voxels is the volume estimate.  With a
single channel, which cannot tell a two-class mixture from the third class, each
component is also weighed by the template's priors for its classes at the voxel.  Lesions
are not modelled here: the lesion stage counts lesion voxels as parenchyma
(:func:`mriproc.visit_lesions.brain_fractions`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CLASSES",
    "DSEG_LABELS",
    "MixelModel",
    "TissueError",
    "TissueFractions",
    "tissue_fractions",
]

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

CLASSES = ("CSF", "GM", "WM")
# dseg labels (BIDS-Derivatives convention of a look-up table in the JSON sidecar).
DSEG_LABELS = {0: "background", 1: "CSF", 2: "GM", 3: "WM", 4: "lesion"}
_SEED_PRIOR = 0.9
# With one channel: the smallest weight a component keeps where the template gives its
# classes no probability (the carried template is not exact).
_SPATIAL_FLOOR = 0.05
# EM fits the component weights and the noise on every FIT_STRIDE-th voxel of the
# region (a fixed, evenly spread subset: about 90,000 voxels on an ESIMS scan), then
# every voxel's fractions come from the fitted model. The fit's parameters are
# 40 weights and a few noise levels: the subset estimates them as well as all
# voxels do, at a quarter of the cost (benchmarks/RESULTS.md, issue 24).
FIT_STRIDE = 4


class TissueError(ValueError):
    """The contrasts do not allow tissue fractions (too few channels, empty classes)."""


@dataclass(frozen=True)
class _Component:
    """A pure class or a two-class mixture at one mixing level (fractions over END_MEMBERS)."""

    fractions: tuple[float, float, float, float]
    at_edge_only: bool  # involves the signal-free end-member
    outlier: bool = False


def _components(levels: int) -> list[_Component]:
    names = (*CLASSES, "none")
    components: list[_Component] = []
    for k, name in enumerate(names):
        pure = [0.0] * 4
        pure[k] = 1.0
        components.append(_Component(tuple(pure), name == "none"))  # type: ignore[arg-type]
    for k in range(4):
        for m in range(k + 1, 4):
            if (names[k], names[m]) == ("WM", "none"):
                continue  # white matter never touches bone
            for level in range(1, levels + 1):
                alpha = level / (levels + 1)
                mixed = [0.0] * 4
                mixed[k], mixed[m] = alpha, 1.0 - alpha
                components.append(_Component(tuple(mixed), names[m] == "none"))  # type: ignore[arg-type]
    components.append(_Component((0.0, 0.0, 0.0, 1.0), True, outlier=True))
    return components


@dataclass(frozen=True)
class MixelModel:
    """Class signatures (per channel), noise and the fitted mixture, for the record."""

    signatures: npt.NDArray[np.float64]  # (len(CLASSES), channels)
    noise_sd: npt.NDArray[np.float64]  # (2, channels): away from / near the skull
    iterations: int


def _seed_signatures(
    data: npt.NDArray[np.float64], priors: Mapping[str, FloatArray], region: BoolArray
) -> npt.NDArray[np.float64]:
    signatures = np.zeros((len(CLASSES), data.shape[1]))
    for k, name in enumerate(CLASSES):
        seeds = np.asarray(priors[name])[region] >= _SEED_PRIOR
        if seeds.sum() < 50:
            raise TissueError(f"fewer than 50 voxels where the template is {name}")
        signatures[k] = np.median(data[seeds], axis=0)
    return signatures


@dataclass(frozen=True)
class TissueFractions:
    """Partial-volume fractions of one scan (0 outside the region)."""

    csf: FloatArray
    gm: FloatArray
    wm: FloatArray
    region: BoolArray

    @property
    def parenchyma(self) -> FloatArray:
        """GM + WM."""
        return np.asarray(self.gm + self.wm, dtype=np.float32)

    def dseg(self) -> npt.NDArray[np.int16]:
        """Tissue classes (:data:`DSEG_LABELS`): the largest fraction, where tissue is >= 0.5."""
        stack = np.stack([self.csf, self.gm, self.wm])
        classes = np.asarray(np.argmax(stack, axis=0) + 1, dtype=np.int16)
        classes[(stack.sum(axis=0) < 0.5) | ~self.region] = 0
        return classes


def tissue_fractions(
    channels: Sequence[FloatArray],
    priors: Mapping[str, FloatArray],
    region: BoolArray,
    edge: BoolArray,
    tissue_zone: BoolArray,
    *,
    levels: int = 7,
    iterations: int = 15,
    fixed: MixelModel | None = None,
) -> tuple[TissueFractions, MixelModel]:
    """Partial-volume fractions by a mixel model fitted with EM.

    Parameters
    ----------
    channels
        Co-registered, bias-corrected images on one grid (at least one; with fewer,
        mixtures of two classes are told from a third class less surely).
    priors
        Template ``CSF``, ``GM`` and ``WM`` probabilities on that grid (they locate
        the voxels whose medians are the class signatures).
    region
        Voxels that may hold brain or CSF (the intracranial mask with a margin).
    edge
        Voxels near the inner surface of the skull: bone, air and outliers allowed.
    tissue_zone
        Voxels that may hold grey or white matter (the brain mask with a margin).
    levels
        Mixing fractions per pair of classes (evenly spaced in (0, 1)).
    iterations
        EM iterations.
    fixed
        A model whose signatures and noise are used as they are (EM then fits only
        the component weights): two scans of one subject, intensity-matched and
        measured with one model, differ only by what changed between them.
    """
    if not channels:
        raise TissueError("tissue fractions need at least one contrast")
    data = np.stack([np.asarray(c, dtype=np.float64)[region] for c in channels], axis=1)
    at_edge = np.asarray(edge, dtype=bool)[region]
    in_zone = np.asarray(tissue_zone, dtype=bool)[region]
    signatures = _seed_signatures(data, priors, region) if fixed is None else fixed.signatures
    components = _components(levels)
    fractions = np.array([c.fractions for c in components])  # (n_components, 4)
    edge_only = np.array([c.at_edge_only for c in components])
    has_tissue = (fractions[:, 1] > 0) | (fractions[:, 2] > 0)
    outlier = np.array([c.outlier for c in components])
    forbidden = (~at_edge[:, None] & edge_only[None, :]) | (~in_zone[:, None] & has_tissue[None, :])
    means = fractions[:, :3] @ signatures  # (n_components, channels)
    weights = np.full(len(components), 1.0 / len(components))
    span = data.max(axis=0) - data.min(axis=0)
    outlier_density = float(np.prod(1.0 / np.maximum(span, 1e-6)))
    # One noise level per channel in each of two zones: near the skull, voxels mix
    # bone, fat and vessels that the end-members only approximate, and a noise
    # shared with the interior was measured to be inflated by them (2x the true
    # noise on one unseen subject), blurring the posteriors of every voxel.
    zone = at_edge.astype(np.intp)
    noise = np.tile(np.maximum(0.05 * np.abs(signatures).max(axis=0), 1e-6), (2, 1))
    if fixed is not None:
        noise = np.array(fixed.noise_sd, dtype=np.float64)
    floor = 1e-3 * np.abs(signatures).max(axis=0) + 1e-9
    used_means = means[~outlier]
    # One channel cannot tell a two-class mixture from the third class (on FLAIR a
    # CSF/GM mixture has the WM signal): the template priors carried to the scan then
    # weigh each component by how likely its classes are at the voxel.
    spatial = (
        np.stack([np.asarray(priors[k], dtype=np.float32)[region] for k in CLASSES], axis=1)
        if len(channels) == 1
        else None
    )
    fit = slice(None, None, FIT_STRIDE)
    fit_data, fit_zone, fit_forbidden = data[fit], zone[fit], forbidden[fit]
    fit_spatial = None if spatial is None else spatial[fit]
    for _ in range(iterations):
        totals = np.zeros(len(components))
        residual = np.zeros((2, data.shape[1]))
        counts = np.zeros(2)
        for rows, resp in _responsibilities(
            fit_data,
            means,
            noise[fit_zone],
            weights,
            outlier,
            outlier_density,
            fit_forbidden,
            fit_spatial,
            fractions,
        ):
            totals += resp.sum(axis=0)
            used = resp[:, ~outlier]
            # sum over components j of resp_ij (x_i - m_j)^2, per voxel and channel
            squared = (
                used.sum(axis=1)[:, None] * fit_data[rows] ** 2
                - 2.0 * fit_data[rows] * (used @ used_means)
                + used @ used_means**2
            )
            in_zone_rows = fit_zone[rows]
            for k in (0, 1):
                residual[k] += squared[in_zone_rows == k].sum(axis=0)
                counts[k] += used[in_zone_rows == k].sum()
        weights = totals / len(fit_data)
        if fixed is not None:
            continue
        fitted = counts > 1.0
        noise[fitted] = np.sqrt(residual[fitted] / counts[fitted, None])
        # The image noise is the same everywhere; near the skull misfit adds to it.
        # (On a skull-stripped scan the zone holds exact zeros, fitted exactly by the
        # signal-free end-member: its own estimate would collapse to 0.)
        noise[0] = np.maximum(noise[0], floor)
        noise[1] = np.maximum(noise[1], noise[0])
    expected_all = np.empty((len(data), fractions.shape[1]))
    for rows, resp in _responsibilities(
        data, means, noise[zone], weights, outlier, outlier_density, forbidden, spatial, fractions
    ):
        expected_all[rows] = resp @ fractions

    def volume(column: int) -> FloatArray:
        out = np.zeros(region.shape, dtype=np.float32)
        out[region] = expected_all[:, column]
        return out

    result = TissueFractions(csf=volume(0), gm=volume(1), wm=volume(2), region=region.copy())
    return result, MixelModel(signatures, noise, iterations)


def _responsibilities(
    data: npt.NDArray[np.float64],
    means: npt.NDArray[np.float64],
    noise: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    outlier: npt.NDArray[np.bool_],
    outlier_density: float,
    forbidden: npt.NDArray[np.bool_],
    spatial: npt.NDArray[np.float32] | None = None,
    fractions: npt.NDArray[np.float64] | None = None,
    chunk: int = 100_000,
) -> Iterator[tuple[slice, npt.NDArray[np.float64]]]:
    """Posterior probability of every component for each voxel, in chunks of voxels.

    Gaussian components with a diagonal covariance (``noise``: per voxel and channel)
    share one quadratic form, evaluated as matrix products; the outlier component has a flat
    density over the data's range.  ``spatial`` (per voxel: the template's CSF, GM and
    WM probabilities) weighs each component by ``floor + sum of its class fractions x
    their probabilities`` (its signal-free part counts as probable; the outlier
    component is not weighed).
    """
    log_weights = np.log(np.maximum(weights, 1e-12))
    squared_means = (means**2).T
    for start in range(0, len(data), chunk):
        rows = slice(start, start + chunk)
        x = data[rows]
        precision = 1.0 / noise[rows] ** 2
        log_p = -0.5 * (
            (x**2 * precision).sum(axis=1)[:, None]
            - 2.0 * (x * precision) @ means.T
            + precision @ squared_means
        )
        log_p -= np.log(noise[rows]).sum(axis=1)[:, None]
        log_p[:, outlier] = np.log(outlier_density)
        if spatial is not None and fractions is not None:
            likely = spatial[rows] @ fractions[:, :3].T + fractions[:, 3]
            log_spatial = np.log(_SPATIAL_FLOOR + likely)
            log_spatial[:, outlier] = 0.0
            log_p += log_spatial
        log_p += log_weights
        log_p[forbidden[rows]] = -np.inf
        log_p -= log_p.max(axis=1, keepdims=True)
        np.exp(log_p, out=log_p)
        log_p /= log_p.sum(axis=1, keepdims=True)
        yield rows, log_p
