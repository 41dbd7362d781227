"""Simulated MS lesions: where they are, how big, and how they change across visits.

Each lesion is an ovoid (ellipsoid with soft 1 mm edges) in template space,
periventricular, deep or juxtacortical white matter, 3-25 mm across (``sizes``
"classic"), or, as in real patients, many under 5 mm and some faint (``sizes``
"realistic": 2-25 mm, median about 5 mm, each lesion's intensity drawn between a
quarter and nine tenths of the lesion tissue's contrast, and lesions centred where
real patients' lesions are: drawn from the lesion-frequency prior of 27 real
patients, :func:`mriproc.template.load_lesion_prior`).  Across visits a
lesion is absent, new, enlarging, shrinking or stable; some baseline lesions have a
T1-hypointense core (black hole); new lesions usually enhance at the visit they
appear (nodular or ring), and a few other lesions enhance too.  Growth and shrinkage
are far beyond the protocol's thresholds and stable lesions change by under 5 %, so
the intended category of every lesion is unambiguous.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from mriproc.simulate.appearance import lateral_ventricles
from mriproc.template import Template, lesion_prior_on_template

__all__ = ["LesionMaps", "SimLesion", "draw_lesions", "rasterize_lesions"]

FloatArray = npt.NDArray[np.float32]
Location = Literal["periventricular", "deep", "juxtacortical"]
Enhancement = Literal["none", "nodular", "ring"]
Category = Literal["absent", "baseline", "new", "enlarging", "shrinking", "stable"]
Sizes = Literal["classic", "realistic"]


@dataclass(frozen=True)
class SimLesion:
    """One simulated lesion and its history over the visits."""

    lesion_id: str
    location: Location
    center_mm: tuple[float, float, float]
    radii_mm: tuple[float, float, float]  # at scale 1
    rotation: tuple[tuple[float, float, float], ...]
    scale: tuple[float, ...]  # linear size factor per visit; 0 = absent
    category: tuple[Category, ...]  # versus the previous visit
    enhancement: tuple[Enhancement, ...]
    gd_mm: float  # gadolinium concentration in enhancing tissue
    black_hole_core: float  # core radius fraction (0 = no black hole)
    # Share of the lesion tissue's contrast the lesion shows (1 = full; faint below).
    intensity: float = 1.0

    def volume_ml(self, visit: int) -> float:
        """Ellipsoid volume at a visit (mL)."""
        s = self.scale[visit]
        a, b, c = self.radii_mm
        return float(4.0 / 3.0 * np.pi * a * b * c * s**3 / 1000.0)


@functools.cache
def _candidates(template: Template) -> dict[Location, npt.NDArray[np.int64]]:
    """Template voxels where each kind of lesion may be centred."""
    wm = template.wm
    near_ventricle, near_gm, cerebral = _distances(template)
    out: dict[Location, npt.NDArray[np.int64]] = {}
    out["periventricular"] = np.argwhere(
        (wm > 0.7) & (near_ventricle > 1) & (near_ventricle < 7) & cerebral
    )
    out["deep"] = np.argwhere((wm > 0.9) & (near_ventricle > 10) & (near_gm > 6) & cerebral)
    out["juxtacortical"] = np.argwhere((wm > 0.6) & (near_gm > 0.5) & (near_gm < 3) & cerebral)
    return out


@functools.cache
def _distances(
    template: Template,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Distance (voxels) to the lateral ventricles and to grey matter; the cerebrum."""
    deep_csf = lateral_ventricles(template)
    near_ventricle = np.asarray(ndimage.distance_transform_edt(~deep_csf), dtype=np.float64)
    near_gm = np.asarray(ndimage.distance_transform_edt(template.gm < 0.4), dtype=np.float64)
    z = template.world_grid(2)[None, None, :]
    cerebral = np.broadcast_to(z > -25.0, template.wm.shape)  # spare cerebellum and brainstem
    return near_ventricle, near_gm, np.asarray(cerebral)


@functools.cache
def _real_places(template: Template) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """White-matter voxels and the cumulative share of the lesion-frequency prior (where
    27 real patients' lesions were) up to each: lesions placed where real ones are."""
    prior = lesion_prior_on_template()
    places = np.argwhere((template.wm > 0.5) & (prior > 0.002))
    weights = prior[tuple(places.T)].astype(np.float64)
    return places, np.cumsum(weights) / weights.sum()


def _location(template: Template, voxel: npt.NDArray[np.int64]) -> Location:
    """Periventricular (within 7 mm of a lateral ventricle), juxtacortical (within 3 mm
    of grey matter) or deep."""
    near_ventricle, near_gm, _ = _distances(template)
    where = tuple(int(v) for v in voxel)
    if near_ventricle[where] < 7:
        return "periventricular"
    return "juxtacortical" if near_gm[where] < 3 else "deep"


def _random_rotation(rng: np.random.Generator) -> tuple[tuple[float, float, float], ...]:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return tuple((float(row[0]), float(row[1]), float(row[2])) for row in q)


def draw_lesions(
    template: Template,
    *,
    n_visits: int,
    n_baseline: int,
    new_per_visit: list[int],
    rng: np.random.Generator,
    p_enlarging: float = 0.08,
    p_shrinking: float = 0.06,
    p_black_hole: float = 0.3,
    p_baseline_enhancing: float = 0.04,
    evolve: bool = True,
    sizes: Sizes = "classic",
) -> list[SimLesion]:
    """Draw a subject's lesions and their evolution over ``n_visits`` visits.

    ``evolve`` False: every lesion keeps its baseline size and stops enhancing after
    baseline (the random draws are made all the same, so the lesions are placed as
    with ``evolve`` True).
    """
    candidates = _candidates(template)
    inv_affine = np.linalg.inv(template.affine)
    placed: list[tuple[npt.NDArray[np.float64], float]] = []  # centre, radius of every lesion
    lesions: list[SimLesion] = []

    def place(first_visit: int, allow_confluent: bool) -> None:
        for _attempt in range(200):
            location: Location
            if sizes == "realistic":  # where real patients' lesions are
                places, cumulative = _real_places(template)
                voxel = places[min(int(np.searchsorted(cumulative, rng.random())), len(places) - 1)]
                location = _location(template, voxel)
            else:
                location = rng.choice(
                    ["periventricular", "deep", "juxtacortical"], p=[0.5, 0.3, 0.2]
                )
                pool = candidates[location]
                voxel = pool[rng.integers(len(pool))]
            centre = (template.affine @ np.append(voxel, 1.0))[:3]
            if sizes == "realistic":
                diameter = float(np.clip(rng.lognormal(np.log(5.0), 0.6), 2.0, 25.0))
            else:
                diameter = float(np.clip(rng.lognormal(np.log(9.0), 0.45), 3.0, 25.0))
            if location == "juxtacortical":
                diameter = min(diameter, 10.0)
            radius = diameter / 2.0
            confluent = allow_confluent and placed and rng.random() < 0.25
            if confluent:
                other, other_r = placed[rng.integers(len(placed))]
                offset = rng.normal(size=3)
                offset *= (other_r + radius) * 0.7 / np.linalg.norm(offset)
                centre = other + offset
                voxel = np.round((inv_affine @ np.append(centre, 1.0))[:3]).astype(int)
                if (
                    np.any(voxel < 0)
                    or np.any(voxel >= template.shape)
                    or template.wm[tuple(voxel)] < 0.5
                ):
                    continue
            else:
                # New lesions keep 3 mm clear of every earlier lesion, so "new" is unambiguous.
                margin = 3.0 if first_visit > 0 else 0.5
                if any(np.linalg.norm(centre - c) < r * 1.6 + radius + margin for c, r in placed):
                    continue
            break
        else:
            return
        axes = radius * np.array([1.0, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)])
        scale = [0.0] * n_visits
        category: list[Category] = ["absent"] * n_visits
        enhancement: list[Enhancement] = ["none"] * n_visits
        size = 1.0
        for visit in range(first_visit, n_visits):
            if visit == first_visit:
                category[visit] = "baseline" if visit == 0 else "new"
                if visit > 0 and rng.random() < 0.8:
                    enhancement[visit] = "ring" if rng.random() < 0.3 else "nodular"
                elif visit == 0 and rng.random() < p_baseline_enhancing:
                    enhancement[visit] = "nodular"
            else:
                draw = rng.random()
                if draw < p_enlarging:
                    size *= float(rng.uniform(1.25, 1.5))  # volume x 1.95-3.4
                    category[visit] = "enlarging"
                    if rng.random() < 0.3:
                        enhancement[visit] = "ring"
                elif draw < p_enlarging + p_shrinking and size * radius > 2.5:
                    size *= float(rng.uniform(0.7, 0.8))  # volume x 0.34-0.51
                    category[visit] = "shrinking"
                else:
                    size *= float(rng.uniform(0.985, 1.015))  # volume within +-5 %
                    category[visit] = "stable"
                if not evolve:
                    size, category[visit], enhancement[visit] = 1.0, "stable", "none"
            scale[visit] = size
        black_hole = first_visit == 0 and diameter >= 6.0 and rng.random() < p_black_hole
        intensity = float(rng.uniform(0.25, 0.9)) if sizes == "realistic" else 1.0
        lesions.append(
            SimLesion(
                lesion_id=f"L{len(lesions) + 1:03d}",
                location=location,
                center_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                radii_mm=(float(axes[0]), float(axes[1]), float(axes[2])),
                rotation=_random_rotation(rng),
                scale=tuple(scale),
                category=tuple(category),
                enhancement=tuple(enhancement),
                gd_mm=float(rng.uniform(0.3, 0.6)),
                black_hole_core=float(rng.uniform(0.5, 0.7)) if black_hole else 0.0,
                intensity=intensity,
            )
        )
        placed.append((centre, radius * max(scale[first_visit:] or [1.0])))

    for _ in range(n_baseline):
        place(0, allow_confluent=True)
    for visit, n_new in enumerate(new_per_visit, start=1):
        for _ in range(n_new):
            place(visit, allow_confluent=False)
    return lesions


@dataclass(frozen=True)
class LesionMaps:
    """One visit's lesions rasterized on the template grid."""

    occupancy: FloatArray  # 0..1, any lesion
    black_hole: FloatArray  # 0..1, black-hole core
    acute: FloatArray  # 0..1, new or enlarging tissue at this visit
    gd_mm: FloatArray  # gadolinium concentration in enhancing lesion tissue
    enhancing: FloatArray  # 0..1, enhancing part
    label: npt.NDArray[np.int16]  # index+1 of the dominant lesion, 0 = none
    intensity: FloatArray  # the dominant lesion's intensity (1 outside lesions)


def rasterize_lesions(template: Template, lesions: list[SimLesion], visit: int) -> LesionMaps:
    """Soft-edged lesion maps for one visit (1 mm template grid)."""
    shape = template.shape
    occupancy = np.zeros(shape, np.float32)
    black_hole = np.zeros(shape, np.float32)
    acute = np.zeros(shape, np.float32)
    gd = np.zeros(shape, np.float32)
    enhancing = np.zeros(shape, np.float32)
    label = np.zeros(shape, np.int16)
    intensity = np.ones(shape, np.float32)
    inv_affine = np.linalg.inv(template.affine)
    for index, lesion in enumerate(lesions):
        s = lesion.scale[visit]
        if s <= 0:
            continue
        radii = np.asarray(lesion.radii_mm) * s
        centre_vox = (inv_affine @ np.append(lesion.center_mm, 1.0))[:3]
        reach = int(np.ceil(radii.max() + 2))
        lo = np.maximum(np.floor(centre_vox).astype(int) - reach, 0)
        hi = np.minimum(np.floor(centre_vox).astype(int) + reach + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        grid = np.stack(
            np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi, strict=True)), indexing="ij")
        )
        offset = np.tensordot(
            template.affine[:3, :3], grid - centre_vox[:, None, None, None], axes=1
        )
        local = np.tensordot(np.asarray(lesion.rotation).T, offset, axes=1)
        r = np.sqrt(sum((local[i] / radii[i]) ** 2 for i in range(3)))
        mean_radius = float(radii.mean())
        # Soft edge about 1 mm wide: the 1 mm grid then carries partial volume.
        occ = np.clip((1.0 - r) * mean_radius + 0.5, 0.0, 1.0).astype(np.float32)
        better = occ > occupancy[box]
        label[box][better] = index + 1
        intensity[box][better] = lesion.intensity
        occupancy[box] = np.maximum(occupancy[box], occ)
        if lesion.black_hole_core > 0:
            core = np.clip((lesion.black_hole_core - r) * mean_radius + 0.5, 0.0, 1.0)
            black_hole[box] = np.maximum(black_hole[box], core.astype(np.float32))
        if lesion.category[visit] in ("new", "enlarging"):
            acute[box] = np.maximum(acute[box], occ)
        kind = lesion.enhancement[visit]
        if kind != "none":
            if kind == "ring":
                inner = np.clip((0.6 - r) * mean_radius + 0.5, 0.0, 1.0)
                part = np.clip(occ - inner, 0.0, 1.0).astype(np.float32)
            else:
                part = occ
            enhancing[box] = np.maximum(enhancing[box], part)
            gd[box] = np.maximum(gd[box], part * lesion.gd_mm)
    return LesionMaps(occupancy, black_hole, acute, gd, enhancing, label, intensity)
