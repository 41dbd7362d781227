"""One visit's ``mriproc run`` against one default rigid registration, side by side.

    python benchmarks/bench_visit_speed.py --out /tmp/bench-visit --seed 7601 --repeats 3

Simulates one subject with one visit (``--resolution``: ESIMS by default, or ``1mm``
with FLAIR and ``--protocol flair``), then ``--repeats`` times, alternately:

* the yardstick: one ``ants.registration(type_of_transform="Rigid")`` of the visit's
  raw T1w onto its raw T2w with antspyx's defaults, in a fresh Python process (timed
  around the call: no import), as a user would run it;
* ``mriproc run BIDS OUT participant --nprocs N`` in a fresh output and work folder:
  the wall time of the whole command, start-up included.

The machine is shared and its speed varies: the figure is the ratio of the medians,
measured in one run.  Also reported: every node's duration (Nipype's node reports of
the last run) and the largest process (``/usr/bin/time -v``, maximum RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

YARDSTICK = """
import sys, time
import ants
fixed, moving = ants.image_read(sys.argv[1]), ants.image_read(sys.argv[2])
start = time.perf_counter()
ants.registration(fixed=fixed, moving=moving, type_of_transform="Rigid")
print(time.perf_counter() - start)
"""


def simulate(out: Path, seed: int, resolution: str) -> Path:
    bids = out / f"sim-{seed}-{resolution}"
    if not (bids / "participants.tsv").is_file():
        flair = ["--flair"] if resolution == "1mm" else []
        subprocess.run(
            [sys.executable, "-m", "mriproc.cli", "simulate", str(bids), "--subjects", "1",
             "--visits", "0", "--seed", str(seed), "--resolution", resolution, *flair],
            check=True,
        )  # fmt: skip
    return bids


def yardstick(bids: Path) -> float:
    """Seconds of one default antspyx rigid registration of T1w onto T2w."""
    anat = next(bids.glob("sub-*/ses-*/anat"))
    t2w = next(anat.glob("*_T2w.nii.gz"))
    t1w = next(p for p in anat.glob("*_T1w.nii.gz") if "ce-" not in p.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITK_")}
    result = subprocess.run(
        [sys.executable, "-c", YARDSTICK, str(t2w), str(t1w)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def pipeline(bids: Path, out: Path, protocol: str, nprocs: int) -> tuple[float, int]:
    """Wall seconds of ``mriproc run`` (fresh folders) and its largest process (bytes)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = out / "time.log"
    start = time.perf_counter()
    subprocess.run(
        ["/usr/bin/time", "-v", "-o", str(log), sys.executable, "-m", "mriproc.cli", "run",
         str(bids), str(out / "derivatives"), "participant", "--protocol", protocol,
         "--nprocs", str(nprocs), "--work-dir", str(out / "work")],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wall = time.perf_counter() - start
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log.read_text())[1])
    return wall, rss_kb * 1024


def node_durations(work: Path) -> dict[str, float]:
    """Each node's duration (s) from its Nipype report, by node path."""
    durations = {}
    for report in sorted(work.rglob("_report/report.rst")):
        found = re.search(r"\* duration : ([0-9.eE+-]+)", report.read_text())
        if found:
            node = report.parent.parent.relative_to(work)
            durations[str(node)] = float(found[1])
    return durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7601)
    parser.add_argument("--resolution", default="esims", choices=("esims", "1mm"))
    parser.add_argument("--protocol", default="esims")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bids = simulate(args.out, args.seed, args.resolution)
    load_before = os.getloadavg()
    rigid, runs, rss = [], [], []
    for _ in range(args.repeats):
        rigid.append(yardstick(bids))
        wall, peak = pipeline(bids, args.out / "run", args.protocol, args.nprocs)
        runs.append(wall)
        rss.append(peak)
        print(f"rigid {rigid[-1]:.1f} s, mriproc run {wall:.1f} s", flush=True)
    nodes = node_durations(args.out / "run" / "work")
    summary = {
        "command": " ".join(sys.argv),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "rigid_s": [round(v, 2) for v in rigid],
        "run_s": [round(v, 2) for v in runs],
        "ratio_of_medians": round(statistics.median(runs) / statistics.median(rigid), 2),
        "max_rss_gb": round(max(rss) / 1e9, 2),
        "node_s": {k: round(v, 2) for k, v in sorted(nodes.items(), key=lambda kv: -kv[1])},
        "node_sum_s": round(sum(nodes.values()), 1),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "node_s"}, indent=1))
    for name, seconds in list(summary["node_s"].items())[:15]:
        print(f"  {seconds:7.2f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
