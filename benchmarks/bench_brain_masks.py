"""Brain-mask accuracy on simulated scans and on the shared real data.

    python benchmarks/bench_brain_masks.py --sim-work /tmp/s11 --preset fast

Simulated: Dice of the carried template masks (brain envelope, intracranial) with
the ground truth on every reading-space (T2w) scan of the trial in ``--sim-work``
(simulated first if absent).  Real: ``open_ms_data/longitudinal/patient01`` raw FLAIR
with skull, Dice with the provided brain mask mapped from common space as the data's
README explains; ``cross_sectional/patient07`` (stripped), share of the provided
brain (non-zero FLAIR voxels) kept.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from simulated import simulated_trial  # benchmarks/simulated.py

from mriproc.brain import carry_template_maps, fit_template, template_maps
from mriproc.config import load_protocol, load_registration_preset
from mriproc.evaluation import dice
from mriproc.io.itk import read_itk_affine
from mriproc.registration import apply_linear

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_ms_data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-work", type=Path, default=None)
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()
    preset = load_registration_preset(args.preset)
    maps = {
        k: v for k, v in template_maps(load_protocol("esims").pcf).items() if k in ("brain", "icv")
    }
    work = args.sim_work or Path(tempfile.mkdtemp()) / "sim"
    scans = simulated_trial(work, subjects=args.subjects, months=(0, 12), seed=args.seed)
    print("| data | scan | brain Dice | ICV Dice | s |")
    print("|---|---|---|---|---|")
    for record in scans:
        p, s = record["participant_id"], record["session"]
        t2 = nib.load(work / p / s / "anat" / f"{p}_{s}_T2w.nii.gz")
        truth = work / "derivatives" / "groundtruth" / p / s / "anat"
        start = time.perf_counter()
        masks = carry_template_maps(
            t2, fit_template(t2, "T2w", preset=preset, work_dir=Path(tempfile.mkdtemp())), maps
        )
        seconds = time.perf_counter() - start
        scores = [
            dice(
                masks[name] >= 0.5,
                np.asarray(nib.load(truth / f"{p}_{s}_desc-{name}_mask.nii.gz").dataobj) > 0,
            )
            for name in ("brain", "icv")
        ]
        print(f"| simulated | {p} {s} | {scores[0]:.4f} | {scores[1]:.4f} | {seconds:.1f} |")

    longitudinal = SHARED / "longitudinal" / "patient01"
    if longitudinal.is_dir():
        provided = nib.load(longitudinal / "brainmask_common_space.nii.gz")
        provided = nib.Nifti1Image(np.asarray(provided.dataobj, dtype=np.float32), provided.affine)
        for study in ("study1", "study2"):
            flair = nib.load(longitudinal / f"{study}_FLAIR.nii.gz")
            common_to_raw = read_itk_affine(longitudinal / f"{study}_FLAIR_to_common_space.txt")
            reference = (
                np.asarray(apply_linear(provided, flair, np.linalg.inv(common_to_raw)).dataobj)
                > 0.5
            )
            start = time.perf_counter()
            masks = carry_template_maps(
                flair,
                fit_template(flair, "FLAIR", preset=preset, work_dir=Path(tempfile.mkdtemp())),
                maps,
            )
            seconds = time.perf_counter() - start
            scores = [dice(masks[name] >= 0.5, reference) for name in ("brain", "icv")]
            row = f"{scores[0]:.4f} | {scores[1]:.4f} | {seconds:.1f}"
            print(f"| open_ms_data (with skull) | patient01 {study} FLAIR | {row} |")
    stripped = SHARED / "cross_sectional" / "patient07"
    if stripped.is_dir():
        flair = nib.load(stripped / "FLAIR.nii.gz")
        provided_brain = np.asarray(flair.dataobj) > 0
        start = time.perf_counter()
        fit = fit_template(flair, "FLAIR", preset=preset, work_dir=Path(tempfile.mkdtemp()))
        masks = carry_template_maps(flair, fit, maps)
        seconds = time.perf_counter() - start
        kept = float((masks["icv"] >= 0.5)[provided_brain].mean())
        label = f"open_ms_data (stripped: {fit.skull_stripped})"
        share = f"ICV keeps {100 * kept:.2f} % of the brain"
        print(f"| {label} | patient07 FLAIR | {share} | | {seconds:.1f} |")


if __name__ == "__main__":
    main()
