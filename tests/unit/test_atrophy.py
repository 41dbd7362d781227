"""Boundary-shift PBVC and PCF change on synthetic brains with a known volume change."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mriproc.atrophy import (
    VisitImage,
    boundary_shift,
    brain_surface,
    jacobian_change,
    jacobian_integration,
)
from mriproc.config import load_protocol, load_registration_preset
from mriproc.followup import FollowupOutcome, _brain_change

PARAMS = load_protocol("esims").pbvc


def rotation_z(degrees: float, shift: tuple[float, float, float]) -> np.ndarray:
    angle = np.radians(degrees)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    matrix[:3, 3] = shift
    return matrix


def brain(
    zooms: tuple[float, float, float],
    radii: tuple[float, float, float],
    pose: np.ndarray,
    seed: int,
    *,
    ventricle: float = 12.0,
) -> VisitImage:
    """An ellipsoidal brain (intensity 100) with a spherical ventricle, in CSF (200).

    Partial volume is a linear ramp of the signed distance to the surfaces, one
    voxel wide; ``pose`` maps the brain's own space to the scanner's.
    """
    fov = np.array([120.0, 140.0, 110.0])
    shape = tuple(int(n) for n in np.round(fov / np.asarray(zooms)))
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2 * np.asarray(zooms)
    grid = np.indices(shape).reshape(3, -1).T.astype(float)
    world = grid @ affine[:3, :3].T + affine[:3, 3]
    inverse = np.linalg.inv(pose)
    points = world @ inverse[:3, :3].T + inverse[:3, 3]
    scaled = np.linalg.norm(points / np.asarray(radii), axis=1)
    outer = (1.0 - scaled) * min(radii)  # about the signed distance inside the surface
    inner = np.linalg.norm(points, axis=1) - ventricle
    ramp = np.asarray(zooms).mean()
    parenchyma = np.clip(0.5 + outer / ramp, 0, 1) * np.clip(0.5 + inner / ramp, 0, 1)
    parenchyma = parenchyma.reshape(shape)
    rng = np.random.default_rng(seed)
    intensity = 200.0 - 100.0 * parenchyma + rng.normal(0.0, 3.0, shape)
    return VisitImage(intensity.astype(np.float32), parenchyma.astype(np.float32), affine)


def volume(radii: tuple[float, float, float], ventricle: float) -> float:
    return 4.0 / 3.0 * np.pi * (float(np.prod(radii)) - ventricle**3)


@pytest.mark.parametrize("zooms", [(1.5, 1.5, 1.5), (1.0, 1.0, 4.0)])
def test_boundary_shift_measures_a_known_loss_and_a_rescan(
    zooms: tuple[float, float, float],
) -> None:
    radii = (45.0, 55.0, 40.0)
    shrunk = tuple(r * 0.995 for r in radii)
    true_pbvc = 100.0 * (volume(shrunk, 12.0) / volume(radii, 12.0) - 1.0)  # about -1.7 %
    pose0, pose1 = rotation_z(2.0, (0.7, -0.4, 0.9)), rotation_z(-1.5, (-1.1, 0.6, -0.5))
    baseline = brain(zooms, radii, pose0, 1)
    to_followup = pose1 @ np.linalg.inv(pose0)
    slab = np.ones(baseline.parenchyma.shape)
    loss = boundary_shift(baseline, brain(zooms, shrunk, pose1, 2), to_followup, slab, PARAMS)
    rescan = boundary_shift(baseline, brain(zooms, radii, pose1, 3), to_followup, slab, PARAMS)
    assert loss.pbvc == pytest.approx(true_pbvc, abs=0.1)
    assert abs(rescan.pbvc) < 0.1
    # The slab is the whole volume: the PCF change is the brain's volume change.
    assert loss.pcf_change_pct == pytest.approx(true_pbvc, abs=0.25)
    assert 0.8 < loss.calibration_gain < 1.2
    assert loss.edge_points > PARAMS.min_edge_points


def test_thick_slices_measure_only_in_plane_normals() -> None:
    image = brain((1.0, 1.0, 5.0), (45.0, 55.0, 40.0), np.eye(4), 1)
    surface = brain_surface(image, PARAMS)
    tilt = np.degrees(np.arcsin(np.abs(surface.normals[surface.measurable, 2])))
    assert tilt.max() <= PARAMS.max_normal_tilt_deg + 1e-6
    assert 0.2 < surface.measurable.mean() < 0.9
    np.testing.assert_allclose(surface.directions[surface.measurable, 2], 0.0, atol=1e-9)
    isotropic = dataclasses.replace(PARAMS, thick_slice_ratio=10.0)
    assert brain_surface(image, isotropic).measurable.all()


def test_too_few_edge_points_give_nan_not_a_number() -> None:
    image = brain((1.5, 1.5, 1.5), (45.0, 55.0, 40.0), np.eye(4), 1)
    strict = dataclasses.replace(PARAMS, min_edge_points=10_000_000)
    result = boundary_shift(image, image, np.eye(4), np.ones(image.parenchyma.shape), strict)
    assert np.isnan(result.pbvc) and np.isnan(result.pcf_change_pct)
    assert "too few edge points" in (result.distrust() or "")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"min_calibration_gain": 1.5, "max_calibration_gain": 2.0}, "self-calibration"),
        ({"max_direction_difference_pct": 0.0}, "forward"),
        ({}, None),
    ],
)
def test_values_that_cannot_be_trusted_say_why(
    change: dict[str, float], reason: str | None
) -> None:
    radii = (45.0, 55.0, 40.0)
    baseline = brain((1.5, 1.5, 1.5), radii, np.eye(4), 1)
    followup = brain((1.5, 1.5, 1.5), tuple(r * 0.995 for r in radii), np.eye(4), 2)
    params = dataclasses.replace(PARAMS, **change)
    result = boundary_shift(
        baseline, followup, np.eye(4), np.ones(baseline.parenchyma.shape), params
    )
    if reason is None:
        assert result.distrust() is None
        assert "calibration gain" in result.note()
    else:
        assert reason in (result.distrust() or "")


def test_jacobian_change_weights_by_parenchyma() -> None:
    jacobian = np.ones((4, 4, 4))
    jacobian[:2] = 0.98
    parenchyma = np.zeros((4, 4, 4))
    parenchyma[:2] = 1.0
    assert jacobian_change(jacobian, parenchyma) == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="no parenchyma"):
        jacobian_change(jacobian, np.zeros((4, 4, 4)))


@pytest.fixture(scope="module")
def loss_pair() -> tuple[VisitImage, VisitImage]:
    radii = (45.0, 55.0, 40.0)
    pose = rotation_z(1.0, (0.4, -0.3, 0.2))
    baseline = brain((2.0, 2.0, 2.0), radii, np.eye(4), 1)
    return baseline, brain((2.0, 2.0, 2.0), tuple(r * 0.99 for r in radii), pose, 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("surface_smoothing_mm", 2.0),
        ("profile_half_length_mm", 2.0),
        ("profile_step_mm", 0.5),
        ("profile_window_mm", 0.5),
        ("profile_smoothing_mm", 2.0),
        ("search_mm", 1.0),
        ("min_profile_correlation", 0.99),
        ("calibration_scale_pct", 3.0),
        ("thick_slice_ratio", 0.5),
    ],
)
def test_every_boundary_shift_parameter_is_used(
    loss_pair: tuple[VisitImage, VisitImage], name: str, value: float
) -> None:
    baseline, followup = loss_pair
    pose = rotation_z(1.0, (0.4, -0.3, 0.2))
    slab = np.ones(baseline.parenchyma.shape)
    default = boundary_shift(baseline, followup, pose, slab, PARAMS)
    changed = boundary_shift(
        baseline, followup, pose, slab, dataclasses.replace(PARAMS, **{name: value})
    )
    assert (changed.pbvc, changed.edge_points) != (default.pbvc, default.edge_points)


def test_the_normal_tilt_limit_is_used_on_thick_slices(
    loss_pair: tuple[VisitImage, VisitImage],
) -> None:
    baseline, followup = loss_pair
    pose = rotation_z(1.0, (0.4, -0.3, 0.2))
    slab = np.ones(baseline.parenchyma.shape)
    thick = dataclasses.replace(PARAMS, thick_slice_ratio=0.5)  # every grid counts as thick
    wide = boundary_shift(baseline, followup, pose, slab, thick)
    narrow = boundary_shift(
        baseline, followup, pose, slab, dataclasses.replace(thick, max_normal_tilt_deg=5.0)
    )
    assert narrow.edge_points < wide.edge_points


def test_jacobian_integration_measures_a_loss_on_its_own_grid(
    loss_pair: tuple[VisitImage, VisitImage], tmp_path: Path
) -> None:
    baseline, followup = loss_pair
    pose = rotation_z(1.0, (0.4, -0.3, 0.2))
    preset = dataclasses.replace(
        load_registration_preset("fast"), jacobian_voxel_mm=3.0, jacobian_syn_iterations=(20, 10)
    )
    slab = np.ones(baseline.parenchyma.shape)
    result = jacobian_integration(baseline, followup, pose, slab, preset, tmp_path)
    assert result.halfway_voxel_mm == 3.0
    assert -5.0 < result.pbvc < -0.5  # true about -3.3 %; a coarse, short SyN


@pytest.mark.parametrize(
    ("method", "note"), [("boundary_shift", "boundary shift"), ("jacobian", "Jacobian")]
)
def test_the_protocol_method_chooses_the_measurement(
    loss_pair: tuple[VisitImage, VisitImage], tmp_path: Path, method: str, note: str
) -> None:
    protocol = load_protocol("esims")
    protocol = dataclasses.replace(
        protocol,
        pbvc=dataclasses.replace(protocol.pbvc, method=method),
        registration=dataclasses.replace(
            protocol.registration, preset=load_registration_preset("fast")
        ),
    )
    bundles = []
    for name, visit in zip(("baseline", "followup"), loss_pair, strict=True):
        images = {
            "reading": visit.intensity,
            "GM": visit.parenchyma,
            "WM": np.zeros_like(visit.parenchyma),
            "CSF": 1.0 - visit.parenchyma,
            "slab": np.ones_like(visit.parenchyma),
        }
        bundle = {}
        for key, data in images.items():
            path = tmp_path / f"{name}_{key}.nii.gz"
            nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), visit.affine), path)
            bundle[key] = str(path)
        measures = tmp_path / f"{name}_record.json"  # the visit's record: PCF measured
        measures.write_text(json.dumps({"measures": {"pcf": 0.8}, "not_available": {}}))
        bundle["record"] = str(measures)
        bundles.append(bundle)
    record = {"earlier_to_later_ras": rotation_z(1.0, (0.4, -0.3, 0.2)).tolist()}
    outcome = FollowupOutcome()
    _brain_change(outcome, bundles[0], bundles[1], record, protocol, tmp_path / "work")
    assert outcome.notes["pbvc"].startswith(note), outcome.notes
    assert outcome.measures["pbvc"] < -0.5
