"""The antspyx adapter, with real (tiny) antspyx calls: transforms are checked, not mocked."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from mriproc.config import ProtocolError, load_registration_preset
from mriproc.registration import (
    apply_linear,
    from_ants,
    map_points,
    mean_displacement_mm,
    n4_bias_correct,
    register_halfway,
    register_linear,
    register_nonlinear,
    sample_linear,
    to_ants,
)

SHAPE = (48, 48, 40)
AFFINE = np.array([[-2.0, 0, 0, 48.0], [0, 2.0, 0, -48.0], [0, 0, 2.0, -40.0], [0, 0, 0, 1]])  # LAS


def blobs(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).random(SHAPE).astype(np.float32)
    smooth = ndimage.gaussian_filter(noise, 3)
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 1000).astype(np.float32)


def moved(data: np.ndarray, fixed_to_moving: np.ndarray) -> nib.Nifti1Image:
    """The image whose world content at y is ``data``'s at fixed_to_moving^-1 y."""
    voxel_map = np.linalg.inv(AFFINE) @ np.linalg.inv(fixed_to_moving) @ AFFINE
    return nib.Nifti1Image(
        ndimage.affine_transform(data, voxel_map, order=1).astype(np.float32), AFFINE
    )


def rigid(degrees: float, shift: tuple[float, float, float]) -> np.ndarray:
    a = np.radians(degrees)
    matrix = np.eye(4)
    matrix[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    matrix[:3, 3] = shift
    return matrix


@pytest.fixture(scope="module")
def fast() -> object:
    return load_registration_preset("fast")


def test_presets_are_data() -> None:
    precise, fast = load_registration_preset("precise"), load_registration_preset("fast")
    assert precise.name == "precise" and fast.name == "fast"
    assert len(precise.iterations) == len(precise.shrink_factors) == len(precise.smoothing_sigmas)
    assert sum(fast.iterations) < sum(precise.iterations)
    with pytest.raises(ProtocolError, match="no registration preset 'slow'"):
        load_registration_preset("slow")


def test_ants_round_trip_keeps_geometry() -> None:
    image = nib.Nifti1Image(blobs(), AFFINE)
    back = from_ants(to_ants(image))
    np.testing.assert_allclose(back.affine, AFFINE, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(image.dataobj))


def test_rigid_registration_recovers_a_known_transform(tmp_path: Path, fast: object) -> None:
    data = blobs()
    truth = rigid(5.0, (3.0, -2.0, 1.5))
    fixed = nib.Nifti1Image(data, AFFINE)
    result = register_linear(
        fixed, moved(data, truth), transform="rigid", preset=fast, out_dir=tmp_path
    )  # type: ignore[arg-type]
    inside = np.argwhere(data > 300)
    points = (np.c_[inside, np.ones(len(inside))] @ AFFINE.T)[:, :3]
    assert mean_displacement_mm(result.fixed_to_moving, truth, points) < 0.5  # voxels are 2 mm
    assert result.transform_file.is_file()
    # Resampling through the result brings the moving image back onto the fixed one.
    back = np.asarray(apply_linear(moved(data, truth), fixed, result.fixed_to_moving).dataobj)
    core = (slice(10, -10),) * 3
    assert np.corrcoef(back[core].ravel(), data[core].ravel())[0, 1] > 0.99


def test_halfway_registration_is_inverse_consistent(tmp_path: Path, fast: object) -> None:
    data = blobs(3)
    truth = rigid(4.0, (2.0, -1.0, 1.0))
    fixed, moving = nib.Nifti1Image(data, AFFINE), moved(data, truth)
    forward = register_halfway(fixed, moving, preset=fast, out_dir=tmp_path / "f")  # type: ignore[arg-type]
    backward = register_halfway(moving, fixed, preset=fast, out_dir=tmp_path / "b")  # type: ignore[arg-type]
    inside = np.argwhere(data > 300)
    points = (np.c_[inside, np.ones(len(inside))] @ AFFINE.T)[:, :3]
    assert mean_displacement_mm(forward.fixed_to_moving, truth, points) < 0.5
    # Swapping the images gives the inverse transform (up to the log/exp round trip).
    inverse = np.linalg.inv(backward.fixed_to_moving)
    assert mean_displacement_mm(forward.fixed_to_moving, inverse, points) < 1e-6
    # The halfway space is midway: each image moves by half of the transform.
    np.testing.assert_allclose(
        forward.halfway_to_moving @ forward.halfway_to_moving, forward.fixed_to_moving, atol=1e-8
    )
    np.testing.assert_allclose(
        forward.halfway_to_moving @ np.linalg.inv(forward.halfway_to_fixed),
        forward.fixed_to_moving,
        atol=1e-8,
    )


def test_registration_is_deterministic(tmp_path: Path, fast: object) -> None:
    data = blobs(1)
    fixed, moving = nib.Nifti1Image(data, AFFINE), moved(data, rigid(-3.0, (1.0, 2.0, -1.0)))
    first = register_linear(fixed, moving, transform="rigid", preset=fast, out_dir=tmp_path / "a")  # type: ignore[arg-type]
    second = register_linear(fixed, moving, transform="rigid", preset=fast, out_dir=tmp_path / "b")  # type: ignore[arg-type]
    np.testing.assert_array_equal(first.fixed_to_moving, second.fixed_to_moving)


def test_mapped_points_resample_as_ants_does(tmp_path: Path, fast: object) -> None:
    """Sampling the moving image where map_points sends the fixed grid = antsApplyTransforms."""
    import ants

    fixed = nib.Nifti1Image(blobs(3), AFFINE)
    moving_affine = AFFINE @ np.diag([1.25, 1.25, 1.0, 1.0])  # another grid, partly outside
    moving = nib.Nifti1Image(blobs(4), moving_affine)
    linear = register_linear(fixed, moving, transform="affine", preset=fast, out_dir=tmp_path)  # type: ignore[arg-type]
    syn = register_nonlinear(fixed, moving, initial=linear, preset=fast, out_dir=tmp_path)  # type: ignore[arg-type]
    assert any(p.name.endswith("Warp.nii.gz") for p in syn.transform_files)
    expected = from_ants(
        ants.apply_transforms(
            fixed=to_ants(fixed),
            moving=to_ants(moving),
            transformlist=[str(p) for p in syn.transform_files],
            interpolator="linear",
            defaultvalue=0,
        )
    ).get_fdata()
    indices = np.indices(SHAPE, dtype=np.float32).reshape(3, -1)
    points = (AFFINE[:3, :3] @ indices + AFFINE[:3, 3:]).astype(np.float32)
    to_voxel = np.linalg.inv(moving_affine)
    voxel = (to_voxel[:3, :3] @ map_points(points, syn.transform_files) + to_voxel[:3, 3:]).astype(
        np.float32
    )
    ours = sample_linear(np.asarray(moving.dataobj), voxel).reshape(SHAPE)
    assert (expected == 0).any() and (expected > 0).mean() > 0.5  # the edge is exercised
    np.testing.assert_allclose(ours, expected, atol=0.05)  # of values up to 1000


def test_rigid_registrations_sample_at_their_own_rate(tmp_path: Path, fast: object) -> None:
    """Co-registration and the halfway registration use the preset's rigid_sampling_rate."""
    from dataclasses import replace

    from mriproc.followup import earlier_to_later, halfway_registration
    from mriproc.io.itk import read_itk_affine
    from mriproc.visit import coregister

    preset = replace(fast, sampling_rate=0.3, rigid_sampling_rate=0.05)  # type: ignore[type-var]
    fixed = nib.Nifti1Image(blobs(5), AFFINE)
    moving = moved(blobs(5), rigid(6.0, (2.0, -3.0, 1.0)))
    nib.save(fixed, tmp_path / "fixed.nii.gz")
    nib.save(moving, tmp_path / "moving.nii.gz")
    done = coregister(
        tmp_path / "moving.nii.gz", tmp_path / "fixed.nii.gz", out_dir=tmp_path / "c", preset=preset
    )
    written = read_itk_affine(done.transform)
    at_rate = {
        rate: register_linear(
            fixed,
            moving,
            transform="rigid",
            preset=replace(preset, sampling_rate=rate),
            out_dir=tmp_path / str(rate),
        ).fixed_to_moving
        for rate in (0.05, 0.3)
    }
    assert not np.allclose(at_rate[0.05], at_rate[0.3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(written, at_rate[0.05], atol=1e-5)

    record = halfway_registration(
        tmp_path / "fixed.nii.gz", tmp_path / "moving.nii.gz", preset=preset, out_dir=tmp_path / "h"
    )
    halfway_at_rate = {
        rate: register_halfway(
            fixed, moving, preset=replace(preset, sampling_rate=rate), out_dir=tmp_path / f"h{rate}"
        ).fixed_to_moving
        for rate in (0.05, 0.3)
    }
    assert not np.allclose(halfway_at_rate[0.05], halfway_at_rate[0.3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(earlier_to_later(record), halfway_at_rate[0.05], atol=1e-5)


def test_n4_flattens_a_bias_field(fast: object) -> None:
    flat = np.full(SHAPE, 500.0, dtype=np.float32)
    flat += np.random.default_rng(2).normal(0, 5, SHAPE).astype(np.float32)
    x = np.linspace(-1, 1, SHAPE[0])[:, None, None]
    biased = flat * np.exp(0.3 * x).astype(np.float32)
    corrected = np.asarray(n4_bias_correct(nib.Nifti1Image(biased, AFFINE), preset=fast).dataobj)  # type: ignore[arg-type]

    def spread(volume: np.ndarray) -> float:
        return float(volume.std() / volume.mean())

    assert spread(corrected) < 0.5 * spread(biased)
