"""Speed of the simulator at ESIMS resolution (issue targets: <= 10 s per visit with
four contrasts and ground truth; <= 60 s for a 2-subject x 3-visit trial).

    python benchmarks/bench_simulate.py --subjects 2 --visits 0,12,24 --seed 0

Prints the wall time of the whole trial, the time of each visit (from the progress
log) and the ground-truth lesion load, so that speed is read with the workload.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from mriproc.config import load_protocol
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--visits", default="0,12,24")
    parser.add_argument("--resolution", default="esims")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    months = tuple(int(m) for m in args.visits.split(","))
    stamps: list[float] = []

    class Stamp(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stamps.append(time.perf_counter())

    logging.getLogger("mriproc.progress").addHandler(Stamp())
    logging.getLogger("mriproc.progress").setLevel(logging.INFO)
    spec = TrialSpec(
        n_subjects=args.subjects, months=months, resolution=args.resolution, seed=args.seed
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = simulate_trial(Path(tmp) / "sim", spec, load_protocol("esims"))
        total = time.perf_counter() - start
        endpoints = read_table(out / "derivatives" / "groundtruth" / "endpoints.tsv")
    per_visit = [b - a for a, b in zip([start, *stamps[:-1]], stamps, strict=True)]
    load = endpoints[endpoints.endpoint == "t2_lesion_volume"]["value"]
    print(
        f"trial: {args.subjects} subject(s) x {len(months)} visit(s), "
        f"{args.resolution}: {total:.1f} s"
    )
    print(
        "per visit (s, first includes loading the template and drawing the subject): "
        + ", ".join(f"{t:.1f}" for t in per_visit)
    )
    print(
        f"ground-truth T2 lesion volume per scan: median {load.median():.2f} mL "
        f"(range {load.min():.2f}-{load.max():.2f})"
    )


if __name__ == "__main__":
    main()
