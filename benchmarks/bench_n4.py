"""N4 settings against a simulated trial's ground truth: how much smooth bias is left.

    python benchmarks/bench_n4.py /tmp/d11

For every T2w and T1w scan of the simulated BIDS dataset, the N4 field is estimated
with several settings; the figure is the standard deviation of a quadratic fitted to
the log-intensity of the corrected image over true white matter (ground-truth WM
fraction > 0.9). White matter is one tissue in the simulator, so a smooth trend
there is bias left behind (or put in) by the correction; noise averages out of the
fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from mriproc.config import load_registration_preset
from mriproc.registration import n4_bias_field

SETTINGS = {
    "4x50 shrink 4": ((50, 50, 50, 50), 4),
    "3x50 shrink 4": ((50, 50, 50), 4),
    "3x50 shrink 8": ((50, 50, 50), 8),
    "4x50 shrink 8": ((50, 50, 50, 50), 8),
}


def smooth_sd(image: np.ndarray, white_matter: np.ndarray) -> float:
    """SD of the quadratic trend of log(image) over the white-matter voxels."""
    ijk = np.argwhere(white_matter).astype(float)
    u, v, w = ((ijk - ijk.mean(axis=0)) / ijk.std(axis=0)).T
    design = np.stack([np.ones_like(u), u, v, w, u * v, u * w, v * w, u * u, v * v, w * w], 1)
    values = np.log(np.maximum(image[white_matter], 1e-6))
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return float((design @ coefficients).std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bids", type=Path, help="a dataset written by `mriproc simulate`")
    args = parser.parse_args()
    base = load_registration_preset("precise")
    print("| scan | raw | " + " | ".join(SETTINGS) + " |")
    print("|---|---|" + "---|" * len(SETTINGS))
    seconds = {name: [] for name in SETTINGS}
    for scan in sorted(args.bids.glob("sub-*/ses-*/anat/*_T[12]w.nii.gz")):
        if "ce-" in scan.name:
            continue
        participant, session = scan.name.split("_")[:2]
        truth = args.bids / "derivatives" / "groundtruth" / participant / session / "anat"
        wm_file = truth / f"{participant}_{session}_label-WM_probseg.nii.gz"
        white_matter = np.asarray(nib.load(wm_file).dataobj) > 0.9
        loaded = nib.load(scan)
        raw = np.asarray(loaded.dataobj, dtype=np.float32)
        image = nib.Nifti1Image(raw, loaded.affine)
        row = [f"{smooth_sd(raw, white_matter):.4f}"]
        for name, (iterations, shrink) in SETTINGS.items():
            preset = dataclasses.replace(base, n4_iterations=iterations, n4_shrink_factor=shrink)
            start = time.perf_counter()
            field = n4_bias_field(image, preset=preset)
            seconds[name].append(time.perf_counter() - start)
            row.append(f"{smooth_sd(raw / field, white_matter):.4f}")
        print(f"| {scan.name.removesuffix('.nii.gz')} | " + " | ".join(row) + " |")
    print("| mean time (s) | | " + " | ".join(f"{np.mean(s):.1f}" for s in seconds.values()) + " |")


if __name__ == "__main__":
    main()
