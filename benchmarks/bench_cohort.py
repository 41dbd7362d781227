"""Cohort throughput: a simulated ESIMS trial through ``mriproc run`` with 1 and 2 processes.

    python benchmarks/bench_cohort.py --out /tmp/bench-cohort --subjects 4 --seed 420 --nprocs 1 2

For each ``--nprocs`` value the participant level runs in a fresh work folder under
``/usr/bin/time -v``; the script reports wall time, the largest single process
(``time``'s maximum RSS, which covers waited-for children one at a time), the peak
of the summed RSS of the whole process tree (sampled with psutil every 0.5 s), the
load average before and after, the speed-up, whether ``endpoints.tsv`` is identical
across process counts, the peak memory and time of every kind of node (Nipype's
resource monitor: needs psutil), and the projection to the ESIMS cohort
(318 participants x 3 visits) on one machine and on a cluster.  psutil is not a
dependency of mriproc: ``pip install psutil`` first.

The machine must be otherwise idle for the speed-up to mean anything: the script
prints the load average so that a busy machine shows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ESIMS_VISITS = 318 * 3


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def _run(argv: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``argv`` under /usr/bin/time -v; wall, max RSS, peak tree RSS."""
    log = cwd / "time.log"
    proc = subprocess.Popen(
        ["/usr/bin/time", "-v", "-o", str(log), *argv],
        cwd=cwd,
        stdout=(cwd / "stdout.log").open("w"),
        stderr=(cwd / "stderr.log").open("w"),
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    done.set()
    sampler.join()
    text = log.read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", text)
    assert wall, text
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    max_rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    assert max_rss, text
    return {
        "exit": code,
        "wall_s": hours * 3600 + minutes * 60 + seconds,
        "max_single_process_rss_gb": int(max_rss.group(1)) / 1024**2,
        "peak_tree_rss_gb": peak / 1024**3,
    }


def _node_resources(work: Path) -> dict[str, dict[str, float]]:
    """Node kind -> peak memory (GB) and median duration (s) from Nipype's result files."""
    from nipype.utils.filemanip import loadpkl

    kinds: dict[str, list[tuple[float, float]]] = {}
    for result_file in work.rglob("result_*.pklz"):
        result = loadpkl(str(result_file))
        runtime = getattr(result, "runtime", None)
        mem = getattr(runtime, "mem_peak_gb", None)
        if mem is None:
            continue
        name = result_file.parent.name
        kind = re.sub(r"_(m\d+|t1w(_gad)?|pdw_t2w)(_to_m\d+)?$", "_*", name)
        kinds.setdefault(kind, []).append((float(mem), float(runtime.duration)))
    return {
        kind: {
            "n": len(values),
            "peak_mem_gb": max(m for m, _ in values),
            "median_s": statistics.median(d for _, d in values),
        }
        for kind, values in sorted(kinds.items())
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--visits", default="0,12,24")
    parser.add_argument("--seed", type=int, default=420)
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--protocol", default="esims")
    parser.add_argument("--cluster-nodes", type=int, default=50)
    args = parser.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    mriproc = [sys.executable, "-m", "mriproc.cli"]
    bids = out / "bids"
    if not bids.is_dir():
        sim = [*mriproc, "simulate", str(bids), "--subjects", str(args.subjects)]
        sim += ["--visits", args.visits, "--seed", str(args.seed)]
        subprocess.run(sim, check=True, stdout=subprocess.DEVNULL)
    n_visits = args.subjects * len(args.visits.split(","))
    results: dict[int, dict[str, Any]] = {}
    for nprocs in args.nprocs:
        run_dir = out / f"nprocs-{nprocs}"
        run_dir.mkdir(exist_ok=True)
        # Nipype reads nipype.cfg from the working folder: its resource monitor
        # records every node's peak memory.
        (run_dir / "nipype.cfg").write_text("[monitoring]\nenabled = true\n")
        argv = [*mriproc, "run", str(bids), str(run_dir / "out"), "participant"]
        argv += ["--protocol", args.protocol, "--nprocs", str(nprocs), "-w", str(run_dir / "work")]
        before = _load()
        figures = _run(argv, run_dir)
        figures.update(
            load_before=before,
            load_after=_load(),
            nprocs=nprocs,
            visits=n_visits,
            s_per_visit=figures["wall_s"] / n_visits,
            nodes=_node_resources(run_dir / "work"),
        )
        results[nprocs] = figures
        print(json.dumps({k: v for k, v in figures.items() if k != "nodes"}), flush=True)
    tables = {
        n: (out / f"nprocs-{n}" / "out" / "mriproc" / "endpoints.tsv").read_bytes() for n in results
    }
    summary: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "endpoints_identical": len(set(tables.values())) == 1,
        "runs": results,
    }
    if 1 in results and 2 in results:
        summary["speedup_1_to_2"] = results[1]["wall_s"] / results[2]["wall_s"]
    best = min(results.values(), key=lambda r: r["s_per_visit"])
    one_machine_h = best["s_per_visit"] * ESIMS_VISITS / 3600
    summary["projection"] = {
        "esims_visits": ESIMS_VISITS,
        "s_per_visit": best["s_per_visit"],
        "one_machine_h": one_machine_h,
        f"cluster_{args.cluster_nodes}_nodes_h": one_machine_h / args.cluster_nodes,
        "assumes": "same per-visit throughput per machine as measured here with "
        f"--nprocs {best['nprocs']}; participants spread evenly over the nodes "
        "(ceil(318/50) = 7 participants per node: the cluster figure is rounded down)",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
