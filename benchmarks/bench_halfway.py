"""The halfway (between-visit) rigid registration on real anatomy with known poses.

    python benchmarks/bench_halfway.py --rates 0.1,0.05

Two visits of one development scan (:mod:`inject_change`: ``patient01`` study 1 with
its skull, ``patient07`` stripped; ESIMS or native geometry), each with its own pose,
gain, bias and noise, and a known 1 % parenchyma loss at the second; their reading
images (FLAIR, N4-corrected as the pipeline does) are registered with
:func:`mriproc.registration.register_halfway` at each sampling rate of ``--rates``
(the rest of the protocol's preset unchanged).  Error: the mean distance between
where the estimated and the true earlier-to-later maps send the brain's 1 mm grid
points.  Time: wall seconds of the two rigid fits.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from inject_change import load_anatomy, make_visit

from mriproc.config import load_protocol
from mriproc.registration import mean_displacement_mm, n4_bias_correct, register_halfway


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", default="patient01,patient07")
    parser.add_argument("--geometries", default="esims,native")
    parser.add_argument("--rates", default="0.1,0.05")
    parser.add_argument("--pairs", type=int, default=3, help="pairs (poses) per scan/geometry")
    parser.add_argument("--seed", type=int, default=3301)
    parser.add_argument("--protocol", default="flair")
    args = parser.parse_args()
    protocol = load_protocol(args.protocol)
    preset = protocol.registration.preset
    reading = protocol.reading_space
    rates = [float(r) for r in args.rates.split(",")]
    errors: dict[float, list[float]] = {r: [] for r in rates}
    seconds: dict[float, list[float]] = {r: [] for r in rates}
    print(f"{'pair':<22}" + "".join(f"  err@{r:<5g} s@{r:<5g}" for r in rates), flush=True)
    for scan_index, scan in enumerate(args.scans.split(",")):
        anatomy = load_anatomy(scan)
        field = anatomy.field_for(-1.0)
        brain = np.argwhere(anatomy.parenchyma > 0.5)
        points_anatomy = (anatomy.grid_affine[:3, :3] @ brain.T + anatomy.grid_affine[:3, 3:]).T
        for geometry_index, geometry in enumerate(args.geometries.split(",")):
            for pair in range(args.pairs):
                rng = np.random.default_rng([args.seed, scan_index, geometry_index, pair])
                earlier, pose_earlier = make_visit(anatomy, None, geometry=geometry, rng=rng)
                later, pose_later = make_visit(anatomy, field, geometry=geometry, rng=rng)
                fixed = n4_bias_correct(earlier[reading], preset=preset)
                moving = n4_bias_correct(later[reading], preset=preset)
                truth = pose_later @ np.linalg.inv(pose_earlier)  # earlier RAS -> later RAS
                points = (pose_earlier[:3, :3] @ points_anatomy.T + pose_earlier[:3, 3:]).T
                row = f"{scan}/{geometry}/{pair}"
                line = f"{row:<22}"
                for rate in rates:
                    with tempfile.TemporaryDirectory() as work:
                        start = time.perf_counter()
                        result = register_halfway(
                            fixed,
                            moving,
                            preset=replace(preset, sampling_rate=rate),
                            out_dir=Path(work),
                        )
                        elapsed = time.perf_counter() - start
                    error = mean_displacement_mm(result.fixed_to_moving, truth, points)
                    errors[rate].append(error)
                    seconds[rate].append(elapsed)
                    line += f"  {error:9.3f} {elapsed:8.1f}"
                print(line, flush=True)
    for rate in rates:
        values = np.array(errors[rate])
        print(
            f"sampling {rate:g}: mean error {values.mean():.3f} mm, max {values.max():.3f} mm, "
            f"mean time {np.mean(seconds[rate]):.1f} s ({len(values)} pairs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
