"""One simulated subject: anatomy, lesions and atrophy, and their state at each visit.

A :class:`SimSubject` holds everything drawn once per subject; :meth:`SimSubject.visit`
gives the tissue fractions, lesion maps and MR signal volumes of one visit, all on
the 1 mm template grid, ready to be acquired by :mod:`mriproc.simulate.acquisition`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.mr_signal import signal
from mriproc.simulate.appearance import CLASSIC, Appearance, bright_structures, wm_texture
from mriproc.simulate.deformation import CoarseField, atrophy_field, smooth_random_field
from mriproc.simulate.lesion_model import LesionMaps, SimLesion, draw_lesions, rasterize_lesions
from mriproc.template import Template, head_fractions

__all__ = ["ArmModel", "SimSubject", "VisitState", "draw_subject", "signal_volume", "visit_state"]

FloatArray = npt.NDArray[np.float32]
LESION_TISSUES = ("lesion_chronic", "lesion_acute", "black_hole")
PARENCHYMA = ("GM", "WM", *LESION_TISSUES)


@dataclass(frozen=True)
class ArmModel:
    """Arm-specific disease course: atrophy (%/year, mean and SD) and new lesions/year.

    ``lesions_evolve`` False keeps every lesion exactly as it is at baseline (no
    enlarging, shrinking or size jitter): with no atrophy and no new lesions, the
    follow-ups are rescans of an unchanged brain (null pairs).
    """

    atrophy_pct_per_year: float
    atrophy_sd_pct_per_year: float
    new_lesions_per_year: float
    lesions_evolve: bool = True


@dataclass(frozen=True, eq=False)
class SimSubject:
    """Everything drawn once for one subject."""

    label: str
    arm: str
    covariates: dict[str, object]
    months: tuple[float, ...]
    anatomy: CoarseField
    anatomy_scale: float
    atrophy_unit: CoarseField
    atrophy_scales: tuple[float, ...]  # per visit, multiplies atrophy_unit
    annual_atrophy_pct: float
    fractions: dict[str, FloatArray]  # fixed head tissues (no lesions)
    lesions: tuple[SimLesion, ...]
    gd_dose: tuple[float, ...]  # per visit, relative blood gadolinium concentration
    appearance: Appearance  # how the subject's site renders tissue
    texture_seed: int = 0  # seeds the subject's white-matter texture (realistic only)

    def atrophy(self, visit: int) -> CoarseField | None:
        """The pull-back atrophy field of a visit (None at baseline)."""
        scale = self.atrophy_scales[visit]
        return None if scale == 0 else self.atrophy_unit.scaled(scale)


@dataclass(frozen=True, eq=False)
class VisitState:
    """Template-space truth of one visit."""

    fractions: dict[str, FloatArray]
    lesion_maps: LesionMaps
    gd_mm: dict[str, float | FloatArray]  # post-contrast gadolinium (mM) by tissue
    appearance: Appearance
    # T2 lengthening of GM and WM in the normally bright structures (None: none).
    t2_gain: FloatArray | None = None


def _parenchymal_volume(
    template: Template, parenchyma: FloatArray, field: CoarseField | None, step: int = 1
) -> float:
    """Volume (mL) of parenchyma pulled back through ``field``, sampled every ``step`` mm."""
    grid = np.mgrid[
        0 : template.shape[0] : step, 0 : template.shape[1] : step, 0 : template.shape[2] : step
    ]
    grid = grid.astype(np.float32)
    if field is not None:
        grid = grid + field.at(grid)
    values = ndimage.map_coordinates(parenchyma, grid, order=1, mode="constant", prefilter=False)
    return float(values.sum()) * step**3 / 1000.0


def draw_subject(
    template: Template,
    *,
    label: str,
    arm: str,
    model: ArmModel,
    months: tuple[float, ...],
    rng: np.random.Generator,
    appearance: Appearance = CLASSIC,
) -> SimSubject:
    """Draw one subject's anatomy, lesion history and atrophy (seen through ``appearance``,
    whose realistic kind also draws realistic lesion sizes and intensities)."""
    sex = str(rng.choice(["F", "M"], p=[0.6, 0.4]))
    covariates: dict[str, object] = {
        "sex": sex,
        "age": int(rng.integers(30, 61)),
        "edss": float(np.clip(np.round(rng.normal(5.0, 1.0) * 2) / 2, 3.0, 6.5)),
        "relapses_2y": int(rng.poisson(0.8)),
    }
    anatomy = smooth_random_field(template.shape, rms_mm=2.5, smoothness_mm=20.0, rng=rng)
    # MNI152 brains are larger than most: subjects are drawn 5-15 % smaller linearly.
    anatomy_scale = float(rng.uniform(0.85, 0.95))
    fractions = head_fractions(
        template,
        csf_layer_mm=float(rng.uniform(1.5, 3.0)),
        skull_mm=float(rng.uniform(5.0, 8.0)),
        scalp_mm=float(rng.uniform(5.0, 8.0)),
        rng=rng,
    )
    parenchyma = fractions["GM"] + fractions["WM"]
    atrophy_unit = atrophy_field(parenchyma, fractions["CSF"])
    baseline_volume = _parenchymal_volume(template, parenchyma, None)
    unit_change_pct = 100.0 * (
        _parenchymal_volume(template, parenchyma, atrophy_unit) / baseline_volume - 1.0
    )
    annual = float(rng.normal(model.atrophy_pct_per_year, model.atrophy_sd_pct_per_year))
    atrophy_scales = tuple(annual * m / 12.0 / unit_change_pct for m in months)

    years = np.diff(np.asarray(months, dtype=float)) / 12.0
    new_per_visit = [int(rng.poisson(model.new_lesions_per_year * y)) for y in years]
    if appearance.realistic:
        # Real brains differ from the template at the scale of gyri too: a finer
        # deformation on top of the smooth one, so template priors carried to the
        # scan misplace cortex and white matter by a millimetre or two.
        fine = smooth_random_field(template.shape, rms_mm=1.2, smoothness_mm=6.0, rng=rng, step=2)
        anatomy = _combined(anatomy, fine, template.shape)
    lesions = draw_lesions(
        template,
        n_visits=len(months),
        n_baseline=int(np.clip(rng.lognormal(np.log(40), 0.5), 5, 100)),
        new_per_visit=new_per_visit,
        rng=rng,
        evolve=model.lesions_evolve,
        sizes="realistic" if appearance.realistic else "classic",
    )
    return SimSubject(
        label=label,
        arm=arm,
        covariates=covariates,
        months=months,
        anatomy=anatomy,
        anatomy_scale=anatomy_scale,
        atrophy_unit=atrophy_unit,
        atrophy_scales=atrophy_scales,
        annual_atrophy_pct=annual,
        fractions=fractions,
        lesions=tuple(lesions),
        gd_dose=tuple(float(rng.uniform(0.8, 1.2)) for _ in months),
        appearance=appearance,
        texture_seed=int(rng.integers(2**31)) if appearance.realistic else 0,
    )


def _combined(coarse: CoarseField, fine: CoarseField, shape: tuple[int, int, int]) -> CoarseField:
    """The sum of two displacement fields, on the finer one's grid."""
    grid = np.mgrid[tuple(slice(0, n * fine.step, fine.step) for n in fine.displacement.shape[1:])]
    total = fine.displacement + coarse.at(grid.astype(np.float32))
    return CoarseField(np.asarray(total, dtype=np.float32), fine.step)


def visit_state(template: Template, subject: SimSubject, visit: int) -> VisitState:
    """Tissue fractions (lesions included) and gadolinium map of one visit."""
    maps = rasterize_lesions(template, list(subject.lesions), visit)
    fractions = dict(subject.fractions)
    brain = fractions["GM"] + fractions["WM"]
    lesion = maps.occupancy * brain  # lesions replace parenchyma, never CSF
    fractions["GM"] = fractions["GM"] * (1.0 - maps.occupancy)
    fractions["WM"] = fractions["WM"] * (1.0 - maps.occupancy)
    black_hole = lesion * maps.black_hole
    acute = (lesion - black_hole) * maps.acute
    fractions["black_hole"] = np.asarray(black_hole, dtype=np.float32)
    fractions["lesion_acute"] = np.asarray(acute, dtype=np.float32)
    fractions["lesion_chronic"] = np.asarray(lesion - black_hole - acute, dtype=np.float32)
    dose = subject.gd_dose[visit]
    gd: dict[str, float | FloatArray] = {"blood": 1.0 * dose, "choroid_plexus": 0.6 * dose}
    gd.update({name: maps.gd_mm for name in LESION_TISSUES})
    appearance = subject.appearance
    t2_gain = None
    if appearance.realistic:
        bright = bright_structures(template)
        t2_gain = np.asarray(
            appearance.hippocampus_t2_gain * bright.hippocampus
            + appearance.septum_t2_gain * bright.septum
            + appearance.cap_t2_gain * bright.caps,
            dtype=np.float32,
        )
        texture = wm_texture(template, appearance, subject.texture_seed)
        if texture is not None:
            t2_gain = np.asarray(t2_gain + texture, dtype=np.float32)
    return VisitState(
        fractions=fractions, lesion_maps=maps, gd_mm=gd, appearance=appearance, t2_gain=t2_gain
    )


def signal_volume(
    state: VisitState,
    contrast: str,
    *,
    post_contrast: bool,
    csf_flow: FloatArray | None = None,
) -> FloatArray:
    """Relative MR signal of every template voxel for one contrast, as the subject's
    site renders it.

    Lesion tissue shows its lesion's intensity share of the contrast (the rest is the
    white matter's signal); grey and white matter are lengthened in T2 by
    ``state.t2_gain``; ``csf_flow`` (FLAIR only: weights on the CSF) adds incompletely
    nulled CSF.
    """
    appearance = state.appearance
    sequence = appearance.sequences[contrast]
    tissues = appearance.tissues

    def tissue_signal(name: str, gd: float | FloatArray = 0.0) -> float | FloatArray:
        tissue = tissues[name]
        if state.t2_gain is not None and name in ("GM", "WM"):
            t2 = tissue.t2_ms * (1.0 + state.t2_gain)
            return signal(sequence, tissue.pd, tissue.t1_ms, t2, gd)
        value = signal(sequence, tissue.pd, tissue.t1_ms, tissue.t2_ms, gd)
        return value if np.ndim(value) else float(value)

    intensity = state.lesion_maps.intensity
    faint = bool(np.any(intensity < 1.0))
    white = tissue_signal("WM")  # faint lesions and CSF flow are scaled to it
    total = np.zeros_like(state.fractions["GM"])
    for name, fraction in state.fractions.items():
        gd = state.gd_mm[name] if post_contrast and name in state.gd_mm else 0.0
        value = white if name == "WM" else tissue_signal(name, gd)
        if faint and name in LESION_TISSUES:
            value = intensity * value + (1.0 - intensity) * white
        total += fraction * value
    if csf_flow is not None and contrast == "FLAIR":
        total += appearance.csf_flow * float(np.mean(white)) * csf_flow
    return total
