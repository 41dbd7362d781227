"""Co-registration accuracy of the registration adapter on simulated scans.

    python benchmarks/bench_coregistration.py --subjects 2 --visits 0,12 --seed 11 --preset fast

Simulates a trial (or reuses ``--work``), registers T1w onto T2w and T1w-Gd onto T1w
with :func:`mriproc.registration.register_linear`, and compares each estimate with the
map implied by the simulator's true head poses: the error is the mean displacement
over ground-truth brain voxels.  Raw images (no N4, no masks): a check of the adapter,
not of the per-visit workflow.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from simulated import simulated_trial  # benchmarks/simulated.py

from mriproc.config import load_registration_preset
from mriproc.registration import mean_displacement_mm, register_linear


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--visits", default="0,12")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    months = tuple(int(m) for m in args.visits.split(","))
    work = args.work or Path(tempfile.mkdtemp()) / "sim"
    scans = simulated_trial(work, subjects=args.subjects, months=months, seed=args.seed)
    preset = load_registration_preset(args.preset)
    print("| scan | T1w -> T2w (mm) | s | T1w-Gd -> T1w (mm) | s | start (mm) |")
    print("|---|---|---|---|---|---|")
    for record in scans:
        p, s = record["participant_id"], record["session"]
        pose = {k: np.asarray(v) for k, v in record["poses"].items()}
        anat = work / p / s / "anat"
        t2, t1, t1gd = (
            nib.load(anat / f"{p}_{s}_{suffix}.nii.gz")
            for suffix in ("T2w", "T1w", "ce-gadolinium_T1w")
        )
        brain = nib.load(
            work
            / "derivatives"
            / "groundtruth"
            / p
            / s
            / "anat"
            / f"{p}_{s}_desc-brain_mask.nii.gz"
        )
        voxels = np.argwhere(np.asarray(brain.dataobj) > 0)[::10]
        in_t2 = (np.c_[voxels, np.ones(len(voxels))] @ t2.affine.T)[:, :3]
        to_t1 = pose["T1w"] @ np.linalg.inv(pose["dual_echo"])
        in_t1 = (np.c_[in_t2, np.ones(len(in_t2))] @ to_t1.T)[:, :3]
        out = Path(tempfile.mkdtemp())
        start = time.perf_counter()
        t1_to_t2 = register_linear(t2, t1, transform="rigid", preset=preset, out_dir=out)
        middle = time.perf_counter()
        gd_to_t1 = register_linear(t1, t1gd, transform="rigid", preset=preset, out_dir=out)
        end = time.perf_counter()
        error_t1 = mean_displacement_mm(t1_to_t2.fixed_to_moving, to_t1, in_t2)
        truth_gd = pose["T1w_gad"] @ np.linalg.inv(pose["T1w"])
        error_gd = mean_displacement_mm(gd_to_t1.fixed_to_moving, truth_gd, in_t1)
        initial = mean_displacement_mm(np.eye(4), to_t1, in_t2)
        cells = [
            f"{error_t1:.3f}",
            f"{middle - start:.1f}",
            f"{error_gd:.3f}",
            f"{end - middle:.1f}",
        ]
        print(f"| {p} {s} | " + " | ".join(cells) + f" | {initial:.1f} |")


if __name__ == "__main__":
    main()
