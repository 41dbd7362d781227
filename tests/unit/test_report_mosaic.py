"""``mriproc report`` without a run: its missing endpoint table, and the visit mosaic drawn
from synthetic images."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.image
import nibabel as nib
import numpy as np
import pytest

from mriproc.cli import EXIT_USAGE, main
from mriproc.report.mosaic import draw_visit_mosaic


def test_report_needs_the_endpoint_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(tmp_path / "mriproc" / "endpoints.tsv") in err and "not found" in err
    assert not (tmp_path / "mriproc" / "report").exists()


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    zooms = np.diag([0.9375, 0.9375, 5.0, 1.0])
    nib.save(nib.Nifti1Image(data.astype(np.float32), zooms if affine is None else affine), path)
    return path


def test_mosaic_leaves_out_bad_masks_with_reasons_and_is_reproducible(tmp_path: Path) -> None:
    grid = np.indices((48, 48, 12)).astype(float)
    radius = np.sqrt((grid[0] - 24) ** 2 + (grid[1] - 24) ** 2 + ((grid[2] - 6) * 4) ** 2)
    head = np.where(radius < 20, 400.0, 0.0) + np.where(radius < 4, 300.0, 0.0)
    reading = _nifti(tmp_path / "reading.nii.gz", head)
    brain = _nifti(tmp_path / "brain.nii.gz", radius < 18)
    lesion = _nifti(tmp_path / "lesion.nii.gz", radius < 4)
    shifted = _nifti(tmp_path / "slab.nii.gz", radius < 18, np.diag([2.0, 2.0, 5.0, 1.0]))
    damaged = tmp_path / "cel.nii.gz"
    damaged.write_bytes(lesion.read_bytes()[:100])  # truncated gzip
    masks = {"brain": brain, "pcfslab": shifted, "t2lesion": lesion, "cel": damaged}

    def draw() -> tuple[bytes, dict[str, str]]:
        mosaic = draw_visit_mosaic(
            "sub-x ses-y",
            reading,
            masks,
            edge_image=("T1w", reading),
            labels={},
            reading_name="T2w",
        )
        return mosaic.png, mosaic.left_out

    png, left_out = draw()
    assert set(left_out) == {"pcfslab", "cel"}
    assert "not on the reading image's grid" in left_out["pcfslab"]
    assert "cel.nii.gz cannot be read" in left_out["cel"]
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 500
    assert (np.abs(pixels[..., 0] - pixels[..., 1]) > 0.3).any()  # coloured contours drawn
    assert b"Software" not in png and draw()[0] == png  # no metadata; same bytes again
