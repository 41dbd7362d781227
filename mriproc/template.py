"""Template anatomy: tissue fractions on the MNI152 2009 grid shipped inside nilearn.

GM and WM come from the template's probability maps and CSF is the brain mask minus
both (ventricles and sulci).  The nilearn template is skull-stripped, so a head is
grown around it from the distance to the brain: an extra-axial CSF layer, the skull
(cortical bone around fatty marrow) and the scalp (muscle and fat).  Structures that
enhance with gadolinium in every brain (dural sinuses, choroid plexus, cortical
veins) are added as blood and choroid-plexus fractions, so that enhancing-lesion
detection meets the distractors it meets in real scans.

The simulator draws its subjects from these maps; brain masking registers a
synthetic image of the same head model (:func:`synthetic_image`, in the contrast of
the scan) to each scan.  Everything here is in template space: 1 mm voxels, MNI152
world coordinates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import nibabel as nib
import numpy as np
import numpy.typing as npt
from nilearn import datasets
from scipy import ndimage

from mriproc.io.nifti import read_image

__all__ = [
    "LESION_PRIOR_VOXEL_MM",
    "Template",
    "head_fractions",
    "lesion_prior_on_template",
    "load_lesion_prior",
    "load_template",
]

# The lesion-frequency prior's grid: the template's, at this voxel size (where lesions
# occur is known to a few millimetres; scripts/build_lesion_prior.py).
LESION_PRIOR_VOXEL_MM = 2.0

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)  # hashed by identity: cached per template
class Template:
    """Fixed template maps on the MNI152 1 mm grid."""

    affine: npt.NDArray[np.float64]
    gm: FloatArray
    wm: FloatArray
    csf: FloatArray
    outside_mm: FloatArray  # distance outside the brain mask (0 inside)

    @functools.cached_property
    def inside_mm(self) -> FloatArray:
        """Depth inside the brain mask (0 outside); computed when first asked for.

        Only the simulator asks (cortical veins, lesion sites): a template fit does
        not pay for the distance transform.
        """
        inside = np.asarray(ndimage.distance_transform_edt(self.outside_mm == 0), np.float32)
        inside.setflags(write=False)
        return inside

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape."""
        return (int(self.gm.shape[0]), int(self.gm.shape[1]), int(self.gm.shape[2]))

    def world_grid(self, axis: int) -> FloatArray:
        """MNI coordinate (mm) along ``axis`` for every voxel index along it."""
        n = self.shape[axis]
        return np.asarray(
            self.affine[axis, axis] * np.arange(n) + self.affine[axis, 3], dtype=np.float32
        )


@functools.cache
def load_template() -> Template:
    """The MNI152 2009 template's tissue maps (from the nilearn wheel; nothing is downloaded)."""
    gm_img = datasets.load_mni152_gm_template(resolution=1)
    gm = np.asarray(gm_img.get_fdata(dtype=np.float32), dtype=np.float32)
    wm = np.asarray(
        datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32),
        dtype=np.float32,
    )
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0
    # The mask has holes and rough edges at its surface; close it so that the grown
    # head layers are smooth shells.
    mask = ndimage.binary_closing(
        mask, structure=ndimage.generate_binary_structure(3, 1), iterations=2
    )
    mask = ndimage.binary_fill_holes(mask)
    total = gm + wm
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0).astype(np.float32)
    gm, wm = gm * scale, wm * scale
    csf = np.where(mask, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0).astype(np.float32)
    outside = ndimage.distance_transform_edt(~mask).astype(np.float32)
    for array in (gm, wm, csf, outside):
        array.setflags(write=False)
    return Template(
        affine=np.asarray(gm_img.affine, dtype=np.float64),
        gm=gm,
        wm=wm,
        csf=csf,
        outside_mm=outside,
    )


def _shell(distance: FloatArray, inner: float, outer: float, edge: float = 0.7) -> FloatArray:
    """Soft 0..1 indicator of ``inner < distance <= outer`` with linear edges of ``edge`` mm."""
    rise = np.clip((distance - inner) / edge + 0.5, 0.0, 1.0)
    fall = np.clip((outer - distance) / edge + 0.5, 0.0, 1.0)
    return np.asarray(rise * fall * (distance > 0), dtype=np.float32)


def head_fractions(
    template: Template,
    *,
    csf_layer_mm: float,
    skull_mm: float,
    scalp_mm: float,
    rng: np.random.Generator | None,
) -> dict[str, FloatArray]:
    """Tissue fractions of one subject's head in template space (they sum to <= 1).

    Parameters
    ----------
    template
        From :func:`load_template`.
    csf_layer_mm, skull_mm, scalp_mm
        Thickness of the extra-axial CSF, the skull and the scalp.
    rng
        Draws the cortical veins (None: no veins).
    """
    d = template.outside_mm
    # World coordinates as open grids: broadcasting builds full volumes only where needed.
    x = template.world_grid(0)[:, None, None]
    y = template.world_grid(1)[None, :, None]
    z = template.world_grid(2)[None, None, :]
    outer_csf = _shell(d, 0.0, csf_layer_mm)
    skull = _shell(d, csf_layer_mm, csf_layer_mm + skull_mm)
    marrow = _shell(d, csf_layer_mm + 0.3 * skull_mm, csf_layer_mm + 0.7 * skull_mm)
    scalp_inner = csf_layer_mm + skull_mm
    muscle = _shell(d, scalp_inner, scalp_inner + 0.5 * scalp_mm)
    fat = _shell(d, scalp_inner + 0.5 * scalp_mm, scalp_inner + scalp_mm)

    # Dural sinuses: superior sagittal along the upper midline, transverse at the back.
    in_dura = _shell(d, 0.0, csf_layer_mm + 1.0)
    sagittal = np.clip(1.0 - np.abs(x) / 4.0, 0.0, 1.0) * (z > 0) * (y > -95) * (y < 60)
    transverse = (
        np.clip(1.0 - np.abs(z + 8.0) / 4.0, 0.0, 1.0)
        * (y < -70)
        * (np.abs(x) > 8)
        * (np.abs(x) < 60)
    )
    sinus = in_dura * np.clip(sagittal + transverse, 0.0, 1.0)

    # Choroid plexus: in the atria of the lateral ventricles.
    ventricle_csf = template.csf * (d == 0)
    atria = np.zeros(template.shape, dtype=np.float32)
    for side in (-1.0, 1.0):
        r2 = ((x - side * 28.0) / 9.0) ** 2 + ((y + 40.0) / 9.0) ** 2 + ((z - 14.0) / 7.0) ** 2
        atria = np.maximum(atria, np.clip(1.5 - r2, 0.0, 1.0))
    choroid = np.asarray(0.8 * atria * ventricle_csf, dtype=np.float32)

    veins = (
        _cortical_veins(template, rng)
        if rng is not None
        else np.zeros(template.shape, dtype=np.float32)
    )
    blood = np.clip(sinus + veins, 0.0, 1.0)

    fractions = {
        "GM": template.gm.copy(),
        "WM": template.wm.copy(),
        "CSF": np.asarray(template.csf + outer_csf, dtype=np.float32),
        "bone": np.asarray(skull * (1.0 - marrow), dtype=np.float32),
        "fat": np.asarray(fat + skull * marrow, dtype=np.float32),
        "muscle": muscle,
        "choroid_plexus": choroid,
        "blood": np.asarray(blood, dtype=np.float32),
    }
    # Blood and choroid plexus displace what was there before; where the soft
    # edges of neighbouring layers overlap, fractions are scaled to sum to 1.
    # (In place: every array in ``fractions`` is this call's own.)
    kept = 1.0 - np.clip(fractions["blood"] + fractions["choroid_plexus"], 0.0, 1.0)
    for name in ("GM", "WM", "CSF", "bone", "fat", "muscle"):
        fractions[name] *= kept
    total = np.zeros(template.shape, dtype=np.float32)
    for fraction in fractions.values():
        total += fraction
    excess = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0).astype(np.float32)
    for fraction in fractions.values():
        fraction *= excess
    return fractions


def _cortical_veins(template: Template, rng: np.random.Generator, n_veins: int = 40) -> FloatArray:
    """Thin tubes (about 1.5-2.5 mm wide) running through sulcal CSF near the cortex."""
    seeds = np.argwhere((template.csf > 0.6) & (template.inside_mm > 0) & (template.inside_mm < 8))
    veins = np.zeros(template.shape, dtype=np.float32)
    if len(seeds) == 0:
        return veins
    for start in seeds[rng.choice(len(seeds), size=n_veins, replace=False)]:
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        length = rng.uniform(10.0, 30.0)
        steps = np.linspace(0.0, length, int(length * 2) + 1)
        points = np.round(start[None, :] + steps[:, None] * direction[None, :]).astype(int)
        inside = np.all((points >= 0) & (points < np.array(template.shape)), axis=1)
        points = points[inside]
        veins[points[:, 0], points[:, 1], points[:, 2]] = 1.0
    radius = rng.uniform(0.5, 0.8)
    tubes = np.clip(ndimage.gaussian_filter(veins, radius) * 4.0, 0.0, 1.0)
    # Veins run in sulcal CSF, not through the ventricles deep inside the brain.
    sulcal = np.clip(2.0 * template.csf, 0.0, 1.0) * (template.inside_mm < 12.0)
    return np.asarray(tubes * sulcal, dtype=np.float32)


def synthetic_image(
    template: Template, contrast: str, *, with_head: bool
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """The template head as a ``contrast`` image (signal equations, 1.5 T values).

    ``with_head=False`` gives the skull-stripped brain, for already stripped scans.
    Returns the voxel array and the template affine.
    """
    from mriproc.mr_signal import SEQUENCES, TISSUES, signal

    if with_head:
        fractions = head_fractions(template, csf_layer_mm=2.0, skull_mm=6.5, scalp_mm=6.5, rng=None)
    else:
        inside = template.outside_mm == 0
        fractions = {"GM": template.gm, "WM": template.wm, "CSF": np.where(inside, template.csf, 0)}
    sequence = SEQUENCES[contrast]
    image = np.zeros(template.shape, dtype=np.float32)
    for name, fraction in fractions.items():
        tissue = TISSUES[name]
        image += fraction * float(signal(sequence, tissue.pd, tissue.t1_ms, tissue.t2_ms))
    return np.asarray(image * 1000.0, dtype=np.float32), template.affine


@functools.cache
def load_lesion_prior() -> nib.Nifti1Image:
    """Where MS lesions occur: the share of patients with a lesion at each place (0-1).

    On the template's grid at :data:`LESION_PRIOR_VOXEL_MM`; shipped as package data
    (``mriproc/data/lesion_prior.nii.gz``, built by ``scripts/build_lesion_prior.py``
    from 27 three-rater consensus masks of the open_ms_data database, Lesjak et al.
    2017, CC-BY 4.0; ``mriproc/data/README.md``).  Nothing is downloaded.
    """
    path = resources.files("mriproc").joinpath("data", "lesion_prior.nii.gz")
    with resources.as_file(path) as local:
        return read_image(local)


@functools.cache
def lesion_prior_on_template() -> FloatArray:
    """The lesion-frequency prior interpolated (linearly) to the template's 1 mm grid."""
    template = load_template()
    prior = load_lesion_prior()
    voxel_map = np.linalg.inv(prior.affine) @ template.affine
    values = ndimage.affine_transform(
        np.asarray(prior.dataobj, dtype=np.float32),
        voxel_map[:3, :3],
        offset=voxel_map[:3, 3],
        output_shape=template.shape,
        order=1,
        mode="constant",
        cval=0.0,
    )
    result = np.asarray(np.clip(values, 0.0, 1.0), dtype=np.float32)
    result.setflags(write=False)
    return result
