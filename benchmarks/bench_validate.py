"""Speed of dataset discovery and validation (``mriproc validate``) at ESIMS geometry.

Writes a skeleton ESIMS dataset (256 x 256 x 24 voxels of 0.94 x 0.94 x 5 mm, four
contrasts per session) and times ``validate_dataset`` on it, which indexes the
dataset with pybids and reads every image in full.

    python benchmarks/bench_validate.py --participants 20 --sessions 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mriproc.config import load_protocol
from mriproc.skeleton import write_skeleton_dataset
from mriproc.validate import validate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args()
    protocol = load_protocol("esims")
    sessions = list(protocol.visits.months)[: args.sessions]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bids"
        start = time.perf_counter()
        write_skeleton_dataset(
            root,
            protocol,
            arms={f"{i:03d}": "placebo" for i in range(args.participants)},
            sessions=sessions,
            shape=(256, 256, 24),
        )
        written = time.perf_counter() - start
        start = time.perf_counter()
        report = validate_dataset(root, protocol)
        elapsed = time.perf_counter() - start
    n_sessions = args.participants * len(sessions)
    print(f"skeleton written in {written:.1f} s")
    print(
        f"validate: {n_sessions} sessions ({4 * n_sessions} images) in {elapsed:.1f} s "
        f"= {elapsed / n_sessions:.3f} s per session; exit code {report.exit_code}"
    )


if __name__ == "__main__":
    main()
