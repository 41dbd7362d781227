"""Known brain volume change injected into real scans: the truth is exact, the anatomy real.

A real development scan (all its contrasts) is the subject's anatomy.  A visit of it
is made by

1. a smooth deformation that shrinks the parenchyma by a known percentage while the
   intracranial boundary (the skull) stays where it is: the simulator's atrophy
   field (:func:`mriproc.simulate.deformation.atrophy_field`: every parenchyma/CSF
   boundary retreats into the parenchyma and the CSF beside it fills the space)
   built on the scan's own tissues;
2. a small rigid pose of its own (the head placed again in the scanner);
3. one resampling of each original image onto the visit's grid (its native grid,
   or ESIMS geometry: 0.94 x 0.94 mm in-plane, 5 mm axial slices, each the mean of
   five 1 mm sub-slices), through the pose and the deformation at once;
4. its own scanner gain, a smooth bias field and added Gaussian noise.

The tissue fractions that build the field and define the truth come from a
three-class Gaussian mixture of the T1w intensities inside the scan's brain mask
(not from mriproc's tissue model).  The true PBVC is the change of the parenchyma
integral pulled back through the deformation on a 1 mm grid; the true PCF change
is computed the same way over a slab, after the run, on mriproc's baseline slab.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.io.itk import read_itk_affine
from mriproc.simulate.deformation import CoarseField, atrophy_field, random_pose

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_ms_data"
STRIPPED = SHARED / "cross_sectional" / "patient07"
LONGITUDINAL = SHARED / "longitudinal" / "patient01"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Contrast:
    """One original image and the map from anatomy (reference-image world) to its world."""

    data: npt.NDArray[np.float32]
    affine: FloatArray
    anatomy_to_image: FloatArray  # RAS 4 x 4


@dataclass(frozen=True, eq=False)
class Anatomy:
    """A real scan as the subject: its contrasts, tissues on a 1 mm grid, and its field."""

    name: str
    reference: str  # the contrast whose world is the anatomy space (FLAIR)
    contrasts: dict[str, Contrast]
    grid_affine: FloatArray  # 1 mm grid over the head, in anatomy space
    parenchyma: npt.NDArray[np.float32]
    csf: npt.NDArray[np.float32]
    unit_field: CoarseField

    def pulled_back(
        self, values: npt.NDArray[np.float32], field: CoarseField | None
    ) -> npt.NDArray[np.float32]:
        """``values`` (on the 1 mm grid) as the deformed anatomy holds them."""
        if field is None:
            return values
        grid = np.indices(values.shape, dtype=np.float32)
        where = grid + field.at(grid)
        return np.asarray(
            ndimage.map_coordinates(values, where, order=1, mode="nearest", prefilter=False),
            dtype=np.float32,
        )

    def pbvc(self, field: CoarseField | None) -> float:
        """True PBVC (%) of the deformed anatomy."""
        after = float(self.pulled_back(self.parenchyma, field).sum())
        return 100.0 * (after / float(self.parenchyma.sum()) - 1.0)

    def field_for(self, pbvc: float) -> CoarseField | None:
        """The deformation whose true PBVC is ``pbvc`` (None for no change)."""
        if pbvc == 0.0:
            return None
        scale = pbvc / self.pbvc(self.unit_field)
        for _ in range(3):  # the change is nearly linear in the scale: refine it
            scale *= pbvc / self.pbvc(self.unit_field.scaled(scale))
        return self.unit_field.scaled(scale)


def _load(path: Path) -> tuple[npt.NDArray[np.float32], FloatArray]:
    image = nib.load(str(path))
    return np.asarray(image.dataobj, dtype=np.float32), np.asarray(image.affine, dtype=np.float64)


def _gmm_fractions(
    t1w: npt.NDArray[np.float32], brain: npt.NDArray[np.bool_], iterations: int = 60
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Parenchyma and CSF posteriors of a 3-class 1-D Gaussian mixture of T1w in ``brain``."""
    values = t1w[brain].astype(np.float64)
    means = np.quantile(values, [0.05, 0.5, 0.9])
    sds = np.full(3, values.std() / 3.0)
    weights = np.full(3, 1.0 / 3.0)
    for _ in range(iterations):
        density = weights / sds * np.exp(-0.5 * ((values[:, None] - means) / sds) ** 2)
        posterior = density / np.maximum(density.sum(axis=1, keepdims=True), 1e-300)
        totals = posterior.sum(axis=0)
        weights = totals / totals.sum()
        means = (posterior * values[:, None]).sum(axis=0) / totals
        sds = np.sqrt((posterior * (values[:, None] - means) ** 2).sum(axis=0) / totals)
    order = np.argsort(means)  # CSF darkest on T1w
    csf = np.zeros(t1w.shape, dtype=np.float32)
    parenchyma = np.zeros(t1w.shape, dtype=np.float32)
    csf[brain] = posterior[:, order[0]]
    parenchyma[brain] = posterior[:, order[1]] + posterior[:, order[2]]
    return parenchyma, csf


def _resample(
    contrast: Contrast, grid_shape: tuple[int, ...], grid_affine: FloatArray
) -> npt.NDArray[np.float32]:
    """A contrast on a grid in anatomy space (linear)."""
    to_voxel = np.linalg.inv(contrast.affine) @ contrast.anatomy_to_image @ grid_affine
    grid = np.indices(grid_shape, dtype=np.float64).reshape(3, -1)
    where = to_voxel[:3, :3] @ grid + to_voxel[:3, 3:4]
    return np.asarray(
        ndimage.map_coordinates(contrast.data, where, order=1, mode="constant", cval=0.0).reshape(
            grid_shape
        ),
        dtype=np.float32,
    )


def load_anatomy(name: str) -> Anatomy:
    """``patient07`` (1 mm, stripped) or ``patient01`` (study 1, with skull)."""
    if name == "patient07":
        files = {
            "FLAIR": STRIPPED / "FLAIR.nii.gz",
            "T2w": STRIPPED / "T2W.nii.gz",
            "T1w": STRIPPED / "T1W.nii.gz",
        }
        contrasts = {}
        for role, path in files.items():
            data, affine = _load(path)
            contrasts[role] = Contrast(data, affine, np.eye(4))
        flair = contrasts["FLAIR"]
        brain = ndimage.binary_fill_holes(flair.data > 0)
        icv = brain
        grid_affine = flair.affine
        t1w = contrasts["T1w"].data
        lesions = np.asarray(nib.load(str(STRIPPED / "consensus_gt.nii.gz")).dataobj) > 0
    elif name == "patient01":
        contrasts = {}
        flair_data, flair_affine = _load(LONGITUDINAL / "study1_FLAIR.nii.gz")
        contrasts["FLAIR"] = Contrast(flair_data, flair_affine, np.eye(4))
        for role, stem in (("T2w", "T2W"), ("T1w", "T1W")):
            data, affine = _load(LONGITUDINAL / f"study1_{stem}.nii.gz")
            to_image = read_itk_affine(LONGITUDINAL / f"study1_{stem}_intrastudy_to_FLAIR.txt")
            contrasts[role] = Contrast(data, affine, to_image)
        # A 1 mm grid over the FLAIR's field of view, axis-aligned in its world.
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in flair_data.shape], indexing="ij"))
        world = flair_affine[:3, :3] @ corners.reshape(3, -1) + flair_affine[:3, 3:4]
        low, high = world.min(axis=1), world.max(axis=1)
        shape = tuple(int(np.ceil(h - lo)) + 1 for lo, h in zip(low, high, strict=True))
        grid_affine = np.eye(4)
        grid_affine[:3, 3] = low
        common = nib.load(str(LONGITUDINAL / "brainmask_common_space.nii.gz"))
        common_to_raw = read_itk_affine(LONGITUDINAL / "study1_FLAIR_to_common_space.txt")
        mask_contrast = Contrast(
            np.asarray(common.dataobj, dtype=np.float32),
            np.asarray(common.affine, dtype=np.float64),
            np.linalg.inv(common_to_raw),
        )
        brain = _resample(mask_contrast, shape, grid_affine) > 0.5
        # Intracranial: the brain mask grown by the extra-axial CSF (3 mm).
        icv = ndimage.binary_dilation(brain, iterations=3)
        t1w = _resample(contrasts["T1w"], shape, grid_affine)
        lesions = np.zeros(shape, dtype=bool)
    else:
        raise ValueError(f"unknown development scan {name!r}")
    parenchyma, csf = _gmm_fractions(t1w, brain)
    parenchyma = np.where(lesions, 1.0, parenchyma).astype(np.float32)
    csf = np.where(lesions, 0.0, csf).astype(np.float32)
    csf = np.where(icv & ~brain, 1.0, csf).astype(np.float32)  # extra-axial CSF
    field = atrophy_field(parenchyma, csf)
    return Anatomy(name, "FLAIR", contrasts, grid_affine, parenchyma, csf, field)


@dataclass(frozen=True)
class Geometry:
    """A visit's voxel grid: shape, voxel size and the sub-slice offsets of a thick slice."""

    shape: tuple[int, int, int]
    zooms: tuple[float, float, float]
    sub_slices_mm: tuple[float, ...]


ESIMS = Geometry((256, 256, 28), (0.9375, 0.9375, 5.0), (-2.0, -1.0, 0.0, 1.0, 2.0))


def native_geometry(contrast: Contrast) -> Geometry:
    """The original image's own grid."""
    zooms = tuple(float(z) for z in np.sqrt((contrast.affine[:3, :3] ** 2).sum(axis=0)))
    shape = tuple(int(n) for n in contrast.data.shape[:3])
    return Geometry((shape[0], shape[1], shape[2]), (zooms[0], zooms[1], zooms[2]), (0.0,))


def make_visit(
    anatomy: Anatomy,
    field: CoarseField | None,
    *,
    geometry: str,
    rng: np.random.Generator,
    noise_fraction: float = 0.03,
) -> tuple[dict[str, nib.Nifti1Image], FloatArray]:
    """Every contrast of one visit of the (deformed) anatomy, with its own pose and noise.

    Returns the images and the pose (anatomy -> scanner, RAS 4 x 4).

    ``geometry``: ``native`` (each contrast on its own original grid) or ``esims``.
    ``noise_fraction``: SD of the added noise as a fraction of the brain's median.
    """
    pose = random_pose(rng, max_rotation_deg=(3.0, 3.0, 3.0), max_translation_mm=(3.0, 3.0, 3.0))
    head_to_anatomy = np.linalg.inv(pose)  # scanner (visit world) -> anatomy
    gain = float(rng.uniform(0.8, 1.25))
    to_grid = np.linalg.inv(anatomy.grid_affine)
    visit: dict[str, nib.Nifti1Image] = {}
    for role, contrast in anatomy.contrasts.items():
        shape_geo = native_geometry(contrast) if geometry == "native" else ESIMS
        # The scanner's grid stays where the original one was; the head moves in it.
        if geometry == "native":
            affine = np.linalg.inv(contrast.anatomy_to_image) @ contrast.affine
        else:
            affine = np.diag([-shape_geo.zooms[0], shape_geo.zooms[1], shape_geo.zooms[2], 1.0])
            middle = np.append((np.array(anatomy.parenchyma.shape) - 1) / 2, 1.0)
            centre = (anatomy.grid_affine @ middle)[:3]
            half = (np.asarray(shape_geo.shape, dtype=float) - 1.0) / 2.0
            affine[:3, 3] = centre - affine[:3, :3] @ half
        total = np.zeros(shape_geo.shape, dtype=np.float64)
        for offset in shape_geo.sub_slices_mm:
            grid = np.indices(shape_geo.shape, dtype=np.float64)
            grid[2] += offset / shape_geo.zooms[2]
            world = np.tensordot(affine[:3, :3], grid, axes=1) + affine[:3, 3, None, None, None]
            anat = (
                np.tensordot(head_to_anatomy[:3, :3], world, axes=1)
                + head_to_anatomy[:3, 3, None, None, None]
            )
            if field is not None:
                # The deformation is a pull-back on the 1 mm grid: anatomy point ->
                # grid voxel -> displaced grid voxel -> anatomy point.
                voxel = (
                    np.tensordot(to_grid[:3, :3], anat, axes=1) + to_grid[:3, 3, None, None, None]
                )
                displaced = voxel + field.at(voxel.astype(np.float32))
                anat = (
                    np.tensordot(anatomy.grid_affine[:3, :3], displaced, axes=1)
                    + anatomy.grid_affine[:3, 3, None, None, None]
                )
            image_to_voxel = np.linalg.inv(contrast.affine) @ contrast.anatomy_to_image
            source = (
                np.tensordot(image_to_voxel[:3, :3], anat, axes=1)
                + image_to_voxel[:3, 3, None, None, None]
            )
            total += ndimage.map_coordinates(
                contrast.data, source.reshape(3, -1), order=3, mode="constant", cval=0.0
            ).reshape(shape_geo.shape)
        clean = np.maximum(total / len(shape_geo.sub_slices_mm), 0.0)
        brain_level = float(np.median(clean[clean > np.quantile(clean, 0.6)]))
        bias = _bias_field(shape_geo.shape, rng)
        noisy = clean * bias * gain + rng.normal(
            0.0, noise_fraction * brain_level * gain, clean.shape
        )
        noisy = np.maximum(noisy, 0.0)
        image = nib.Nifti1Image(noisy.astype(np.float32), affine)
        image.header.set_xyzt_units("mm")
        visit[role] = image
    return visit, pose


def _bias_field(
    shape: tuple[int, int, int], rng: np.random.Generator, strength: float = 0.1
) -> FloatArray:
    """A smooth multiplicative field spanning about ``1 +- strength``."""
    axes = [np.linspace(-1.0, 1.0, n) for n in shape]
    u, v, w = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [u, v, w, u * v, u * w, v * w, u**2 - 1 / 3, v**2 - 1 / 3, w**2 - 1 / 3]
    log_bias = sum(c * t for c, t in zip(rng.normal(0.0, 1.0, len(terms)), terms, strict=True))
    log_bias = np.broadcast_to(log_bias, shape)
    span = float(np.abs(log_bias).max()) or 1.0
    return np.asarray(np.exp(log_bias * (np.log1p(strength) / span)), dtype=np.float64)
