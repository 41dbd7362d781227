"""How a site's scanner renders tissue: the classic model, or one that shows real difficulty.

The **classic** appearance renders every subject with the literature 1.5 T relaxation
values of :mod:`mriproc.mr_signal` and the nominal sequences: the same model the
brain fit's synthetic template uses, so measurements on it are optimistic by
construction.

The **realistic** appearance draws, per site (one per subject), what makes real
FLAIR, T2w and PDw hard, from distributions the measuring code does not know:

* relaxation times and proton densities of every tissue jittered per site, grey
  matter's T2 drawn lower than the literature value (real FLAIR shows cortex
  about 1.15-1.4 times as bright as white matter, where the nominal values give
  1.38), and the FLAIR inversion and echo times drawn per site (CSF nulling
  differs);
* white matter that is not uniform: a fine texture of T2 (a few per cent over a
  few millimetres), different in every subject;
* normally bright structures, not lesions, with a longer T2 than the tissue they are
  made of: the hippocampi and amygdalae, the septum pellucidum and fornix, and the
  periventricular caps at the frontal horns and the atria with a thin ependymal
  lining along the lateral ventricles (the choroid plexus is a tissue of its own);
* CSF flow artefacts on FLAIR: incompletely nulled CSF in the third and fourth
  ventricles, the basal cisterns and patches of the lateral ventricles, different at
  every scan;
* faint lesions (:mod:`mriproc.simulate.lesion_model` draws each lesion's intensity
  and, with the realistic appearance, a size distribution with many lesions under
  5 mm).

None of this changes the ground truth: tissue fractions and lesion masks are the
same; only the signal the scanner records changes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.mr_signal import SEQUENCES, TISSUES, Sequence, Tissue
from mriproc.template import Template

__all__ = [
    "APPEARANCES",
    "CLASSIC",
    "Appearance",
    "BrightStructures",
    "bright_structures",
    "csf_flow_artefact",
    "draw_appearance",
    "lateral_ventricles",
    "wm_texture",
]

FloatArray = npt.NDArray[np.float32]
AppearanceName = Literal["classic", "realistic"]
APPEARANCES: tuple[AppearanceName, ...] = ("classic", "realistic")


@dataclass(frozen=True, eq=False)
class Appearance:
    """One site's rendering of tissue (what the scanner records, not what is there)."""

    name: AppearanceName
    tissues: dict[str, Tissue]
    sequences: dict[str, Sequence]
    # T2 lengthening (fraction) of the tissue in normally bright structures.
    hippocampus_t2_gain: float = 0.0
    septum_t2_gain: float = 0.0
    cap_t2_gain: float = 0.0
    # Incompletely nulled CSF on FLAIR: peak signal as a fraction of WM's FLAIR signal.
    csf_flow: float = 0.0
    # White-matter T2 texture: RMS (fraction) of a field smooth over about 2 mm.
    wm_texture: float = 0.0

    @property
    def realistic(self) -> bool:
        """True when the appearance renders real-scan difficulty."""
        return self.name == "realistic"


CLASSIC = Appearance("classic", dict(TISSUES), dict(SEQUENCES))


def draw_appearance(name: AppearanceName, rng: np.random.Generator) -> Appearance:
    """The classic appearance (no draw), or a realistic site's drawn from ``rng``."""
    if name == "classic":
        return CLASSIC
    if name != "realistic":
        raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}, got {name!r}")
    tissues = {
        key: Tissue(
            pd=tissue.pd * float(rng.uniform(0.97, 1.03)),
            t1_ms=tissue.t1_ms * float(rng.uniform(0.92, 1.08)),
            t2_ms=tissue.t2_ms * float(rng.uniform(0.94, 1.06)),
        )
        for key, tissue in TISSUES.items()
    }
    grey = tissues["GM"]
    tissues["GM"] = replace(grey, t2_ms=TISSUES["GM"].t2_ms * float(rng.uniform(0.88, 1.02)))
    flair = SEQUENCES["FLAIR"]
    sequences = dict(SEQUENCES)
    sequences["FLAIR"] = replace(
        flair, ti_ms=float(rng.uniform(2300.0, 2600.0)), te_ms=float(rng.uniform(90.0, 140.0))
    )
    return Appearance(
        name,
        tissues,
        sequences,
        hippocampus_t2_gain=float(rng.uniform(0.04, 0.12)),
        septum_t2_gain=float(rng.uniform(0.08, 0.20)),
        cap_t2_gain=float(rng.uniform(0.15, 0.40)),
        csf_flow=float(rng.uniform(0.3, 1.2)),
        wm_texture=float(rng.uniform(0.02, 0.05)),
    )


def lateral_ventricles(template: Template) -> npt.NDArray[np.bool_]:
    """The lateral ventricles: deep CSF inside their MNI bounding box."""
    x, y, z = _world(template)
    box = (np.abs(x) < 35) & (y > -50) & (y < 35) & (z > -10) & (z < 35)
    return np.asarray((template.csf > 0.5) & (template.inside_mm > 15.0) & box)


@dataclass(frozen=True, eq=False)
class BrightStructures:
    """Template-space weights (0-1) of the structures that are normally bright on FLAIR."""

    hippocampus: FloatArray
    septum: FloatArray
    caps: FloatArray
    flow_region: FloatArray  # where CSF flow artefacts occur on FLAIR


@functools.cache
def bright_structures(template: Template) -> BrightStructures:
    """Where the normally bright structures are (MNI coordinates and template tissue)."""
    x, y, z = _world(template)
    ventricles = lateral_ventricles(template)
    to_ventricle = ndimage.distance_transform_edt(~ventricles).astype(np.float32)

    # Hippocampi and amygdalae: grey matter of the medial temporal lobes.
    medial_temporal = (np.abs(x) > 16) & (np.abs(x) < 38) & (y > -42) & (y < 0) & (z > -30)
    medial_temporal = medial_temporal & (z < -4)
    hippocampus = np.where(medial_temporal, template.gm, 0.0)

    # Septum pellucidum and fornix: the midline tissue between the lateral ventricles.
    between = (np.abs(x) < 3.0) & (y > -20) & (y < 28) & (z > -2) & (z < 28)
    septum = np.where(between & (to_ventricle <= 4.0), 1.0 - template.csf, 0.0)

    # Periventricular caps at the frontal horns and the atria (a few mm of white
    # matter), and a thin ependymal lining along the whole ventricle.
    horns = (y > 8) | (y < -28)
    cap = np.clip(1.0 - to_ventricle / 5.0, 0.0, 1.0) * horns
    lining = np.clip(1.0 - to_ventricle / 2.0, 0.0, 1.0) * 0.5
    caps = np.maximum(cap, lining) * (template.wm + template.gm)

    # CSF flow on FLAIR: third and fourth ventricles, basal cisterns, lateral ventricles.
    deep = template.inside_mm > 4.0
    midline_low = (np.abs(x) < 20) & (z < 12) & (z > -45) & (y > -60) & (y < 20)
    flow_region = np.where((deep & midline_low) | ventricles, template.csf, 0.0)

    def frozen(array: npt.ArrayLike) -> FloatArray:
        result = np.asarray(array, dtype=np.float32)
        result.setflags(write=False)
        return result

    return BrightStructures(frozen(hippocampus), frozen(septum), frozen(caps), frozen(flow_region))


def csf_flow_artefact(
    template: Template, appearance: Appearance, rng: np.random.Generator
) -> FloatArray | None:
    """One scan's FLAIR CSF-flow artefact (0-1 weights on the CSF), or None (classic)."""
    if appearance.csf_flow <= 0:
        return None
    coarse = rng.normal(size=tuple(int(np.ceil(n / 8)) + 1 for n in template.shape))
    smooth = ndimage.zoom(coarse, 8, order=3)[tuple(slice(0, n) for n in template.shape)]
    patches = np.clip(smooth - 0.5, 0.0, 1.0)  # about a third of the region, in patches
    return np.asarray(patches * bright_structures(template).flow_region, dtype=np.float32)


def wm_texture(template: Template, appearance: Appearance, seed: int) -> FloatArray | None:
    """One subject's white-matter T2 texture (relative change per voxel), or None."""
    if appearance.wm_texture <= 0:
        return None
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=tuple(int(np.ceil(n / 2)) + 1 for n in template.shape))
    smooth = ndimage.gaussian_filter(coarse, 1.0)
    smooth /= max(float(smooth.std()), 1e-12)
    field = ndimage.zoom(smooth, 2, order=1)[tuple(slice(0, n) for n in template.shape)]
    return np.asarray(appearance.wm_texture * field * template.wm, dtype=np.float32)


def _world(template: Template) -> tuple[FloatArray, FloatArray, FloatArray]:
    return (
        template.world_grid(0)[:, None, None],
        template.world_grid(1)[None, :, None],
        template.world_grid(2)[None, None, :],
    )
