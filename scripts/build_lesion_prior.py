"""Build the lesion-frequency prior shipped as ``mriproc/data/lesion_prior.nii.gz``.

    python scripts/build_lesion_prior.py [--masks DIR] [--out FILE]

Where MS lesions occur, in template space: the share of patients with a lesion at each
place, from the three-rater consensus lesion masks of the open_ms_data
cross-sectional database (Lesjak et al. 2017, CC-BY 4.0; the 27 masks of
``../shared/data/open_ms_data/lesion_masks_mni/``, FSL MNI152 1 mm grid). Each mask
is sampled (linear interpolation, world coordinates) on a 2 mm grid covering
mriproc's template (the MNI152 2009 grid of :mod:`mriproc.template`), the masks are
averaged and the average is smoothed with a Gaussian of ``SMOOTHING_MM`` (it absorbs
the few millimetres between the two MNI152 templates and the sampling of 27
patients). Stored as 8-bit (value / 255, header scaling). Deterministic: the same
masks give the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from mriproc.template import LESION_PRIOR_VOXEL_MM, load_template

ROOT = Path(__file__).resolve().parents[1]
MASKS = ROOT.parent / "shared" / "data" / "open_ms_data" / "lesion_masks_mni"
OUT = ROOT / "mriproc" / "data" / "lesion_prior.nii.gz"
SMOOTHING_MM = 3.0


def prior_grid() -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the prior's grid: the template's, at ``LESION_PRIOR_VOXEL_MM``."""
    template = load_template()
    step = LESION_PRIOR_VOXEL_MM
    affine = template.affine.copy()
    affine[:3, :3] = np.diag(np.sign(np.diag(template.affine[:3, :3])) * step)
    shape = tuple(int(np.ceil(n / step)) for n in template.shape)
    return (shape[0], shape[1], shape[2]), affine


def build(masks: list[Path]) -> nib.Nifti1Image:
    shape, affine = prior_grid()
    voxels = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ voxels + affine[:3, 3:4]
    total = np.zeros(shape, dtype=np.float64)
    for path in masks:
        image = nib.load(path)
        data = (np.asarray(image.dataobj) > 0).astype(np.float32)
        inside = np.linalg.inv(image.affine)
        where = inside[:3, :3] @ world + inside[:3, 3:4]
        sampled = ndimage.map_coordinates(data, where, order=1, mode="constant", cval=0.0)
        total += sampled.reshape(shape)
    frequency = ndimage.gaussian_filter(total / len(masks), SMOOTHING_MM / LESION_PRIOR_VOXEL_MM)
    stored = np.round(np.clip(frequency, 0.0, 1.0) * 255).astype(np.uint8)
    image = nib.Nifti1Image(stored, affine)
    image.header.set_slope_inter(1.0 / 255.0, 0.0)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = b"mriproc lesion-frequency prior (open_ms_data, CC-BY)"
    return image


def write_deterministic(image: nib.Nifti1Image, out: Path) -> None:
    """gzip with no time stamp or file name: the same image gives the same bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as handle,
        gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0, compresslevel=9) as zipped,
    ):
        zipped.write(image.to_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=Path, default=MASKS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    masks = sorted(args.masks.glob("patient*.nii.gz"))
    if not masks:
        print(f"no patient*.nii.gz lesion masks in {args.masks}", file=sys.stderr)
        return 2
    image = build(masks)
    write_deterministic(image, args.out)
    frequency = np.asarray(nib.load(args.out).dataobj, dtype=np.float64)
    print(
        f"{args.out}: {len(masks)} masks, grid {image.shape} at {LESION_PRIOR_VOXEL_MM} mm, "
        f"max frequency {frequency.max():.3f}, voxels >= 0.1: {(frequency >= 0.1).sum()}, "
        f"{args.out.stat().st_size} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
