"""ITK transform files: parsed to RAS, checked against antspyx and the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mriproc.io.itk import read_itk_affine

SHARED = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "open_ms_data"
    / "longitudinal"
    / "patient01"
)


def test_rotation_about_a_centre(tmp_path: Path) -> None:
    # 90 degrees about z (LPS) around centre (10, 0, 0): the centre stays put.
    path = tmp_path / "t.txt"
    path.write_text(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
        "Parameters: 0 -1 0 1 0 0 0 0 1 0 0 0\nFixedParameters: 10 0 0\n"
    )
    matrix = read_itk_affine(path)
    centre_ras = np.array([-10.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(matrix @ centre_ras, centre_ras, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(matrix[:3, :3]), 1.0)


def test_agrees_with_antspyx_on_a_written_transform(tmp_path: Path) -> None:
    import ants  # only to write a reference file; mriproc itself reads it without ants

    transform = ants.create_ants_transform(
        transform_type="AffineTransform",
        dimension=3,
        matrix=np.array([[1.0, 0.1, 0.0], [-0.1, 1.0, 0.05], [0.0, -0.05, 1.0]]),
        center=(5.0, -3.0, 2.0),
        translation=(1.0, 2.0, -3.0),
    )
    path = tmp_path / "affine.txt"
    ants.write_transform(transform, str(path))
    matrix = read_itk_affine(path)
    point_lps = np.array([12.0, -7.0, 30.0])
    expected_lps = np.asarray(transform.apply_to_point(tuple(point_lps)))
    point_ras = point_lps * [-1, -1, 1]
    np.testing.assert_allclose(
        (matrix @ np.append(point_ras, 1.0))[:3], expected_lps * [-1, -1, 1], atol=1e-6
    )


def test_rejects_non_linear_files(tmp_path: Path) -> None:
    path = tmp_path / "warp.txt"
    path.write_text(
        "#Insight Transform File V1.0\nTransform: DisplacementFieldTransform_double_3_3\n"
    )
    with pytest.raises(ValueError, match="not a linear 3-D ITK transform"):
        read_itk_affine(path)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")
def test_reads_the_open_ms_data_transforms() -> None:
    matrix = read_itk_affine(SHARED / "study1_FLAIR_to_common_space.txt")
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0, abs=0.01)  # near-rigid
    assert np.abs(matrix[:3, 3]).max() < 50.0
