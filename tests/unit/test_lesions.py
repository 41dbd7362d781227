"""The one labelling function: connectivity and minimum size change the count as expected."""

from __future__ import annotations

import numpy as np
import pytest

from mriproc.lesions import connectivity_structure, label_lesions, mask_volume_ml, slice_axis

ISO = (1.0, 1.0, 1.0)


def blank(shape: tuple[int, int, int] = (20, 20, 10)) -> np.ndarray:
    return np.zeros(shape, dtype=bool)


def test_diagonal_neighbours_join_only_with_26_connectivity() -> None:
    mask = blank()
    mask[2:6, 2:6, 2:4] = True  # a 4 x 4 x 2 block
    mask[6:10, 6:10, 4:6] = True  # touches the first at one corner only
    counts = {
        c: label_lesions(mask, ISO, connectivity=c, min_in_plane_diameter_mm=0.0).count
        for c in (6, 18, 26)
    }
    assert counts == {6: 2, 18: 2, 26: 1}


def test_edge_neighbours_join_with_18_and_26() -> None:
    mask = blank()
    mask[2:6, 2:6, 3] = True
    mask[6:10, 6:10, 3] = True  # shares an edge (in-plane diagonal), same slice
    counts = {
        c: label_lesions(mask, ISO, connectivity=c, min_in_plane_diameter_mm=0.0).count
        for c in (6, 18, 26)
    }
    assert counts == {6: 2, 18: 1, 26: 1}


def test_minimum_diameter_drops_small_components() -> None:
    mask = blank()
    mask[1, 1, 1] = True  # 1 voxel: 1.13 mm
    mask[5:7, 5:7, 1] = True  # 2 x 2: 2.26 mm
    mask[10:14, 10:14, 1:4] = True  # 4 x 4: 4.51 mm

    def count(d: float) -> int:
        return label_lesions(mask, ISO, connectivity=26, min_in_plane_diameter_mm=d).count

    assert [count(d) for d in (0.0, 1.2, 3.0, 4.6)] == [3, 2, 1, 0]


def test_diameter_uses_in_plane_area_not_the_slice_thickness() -> None:
    # 3 x 3 voxels of 0.9375 mm in plane: area 7.9 mm^2 -> 3.17 mm; kept at 3 mm
    # whatever the slice thickness; 2 x 2 (1.5 mm) dropped even if 5 slices tall.
    mask = blank()
    mask[2:5, 2:5, 4] = True
    mask[10:12, 10:12, 2:7] = True
    lesions = label_lesions(
        mask, (0.9375, 0.9375, 5.0), connectivity=26, min_in_plane_diameter_mm=3.0
    )
    assert lesions.count == 1
    assert lesions.in_plane_diameters_mm[0] == pytest.approx(2 * np.sqrt(9 * 0.9375**2 / np.pi))
    assert lesions.volumes_ml[0] == pytest.approx(9 * 0.9375 * 0.9375 * 5.0 / 1000)


def test_slice_axis_follows_the_thickest_spacing() -> None:
    # Sagittal 2-D stack: slices along the first axis.
    mask = np.zeros((6, 20, 20), dtype=bool)
    mask[2, 5:8, 5:8] = True  # 3 x 3 in plane
    sagittal = label_lesions(mask, (5.0, 1.0, 1.0), connectivity=26, min_in_plane_diameter_mm=3.0)
    assert sagittal.count == 1
    assert slice_axis((5.0, 1.0, 1.0)) == 0


def test_labels_are_consecutive_and_deterministic() -> None:
    rng = np.random.default_rng(7)
    mask = rng.random((30, 30, 8)) > 0.93
    first = label_lesions(mask, ISO, connectivity=6, min_in_plane_diameter_mm=1.5)
    second = label_lesions(mask.copy(), ISO, connectivity=6, min_in_plane_diameter_mm=1.5)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert set(np.unique(first.labels)) == set(range(first.count + 1))
    assert first.labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(first.labels.ravel())[1:], first.voxel_counts)
    assert first.total_volume_ml == pytest.approx(mask_volume_ml(first.mask, ISO))


def test_empty_mask_has_no_lesions() -> None:
    lesions = label_lesions(blank(), ISO, connectivity=26, min_in_plane_diameter_mm=3.0)
    assert lesions.count == 0
    assert lesions.total_volume_ml == 0.0


@pytest.mark.parametrize("connectivity", [0, 4, 8, 27])
def test_connectivity_must_be_a_3d_neighbourhood(connectivity: int) -> None:
    with pytest.raises(ValueError, match="connectivity must be 6, 18 or 26"):
        connectivity_structure(connectivity)


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="3-D"):
        label_lesions(np.zeros((4, 4)), (1.0, 1.0), connectivity=26, min_in_plane_diameter_mm=0)
    with pytest.raises(ValueError, match="voxel_size_mm"):
        label_lesions(blank(), (1.0, 0.0, 1.0), connectivity=26, min_in_plane_diameter_mm=0)
