"""Same endpoints from the simulator's DICOM as from its own BIDS output?

    python benchmarks/convert_endpoints.py --seed 11 --work /tmp/convert-endpoints

Simulates one subject x one visit at ESIMS resolution with ``--format both``,
converts the DICOM with ``mriproc convert`` (covariates from the simulator's
``participants.tsv``), runs ``mriproc run ... participant`` on both BIDS datasets
(about a minute each on 2 cores) and compares the two ``endpoints.tsv``: the same
rows, statuses and notes, and every value within ``--tolerance`` (default 1e-6).
Before that it says how the converted images differ from the simulated ones
(voxel values, affine, data type), which is where any difference has to come from.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd


def mriproc(*args: str) -> float:
    """Run one mriproc command; its wall time."""
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "mriproc.cli", *args], check=False)
    if completed.returncode not in (0, 1):
        raise SystemExit(f"mriproc {args[0]} failed with exit status {completed.returncode}")
    return time.perf_counter() - start


def image_differences(simulated: Path, converted: Path) -> list[str]:
    lines = []
    for path in sorted(converted.glob("sub-*/ses-*/anat/*.nii.gz")):
        ours = nib.load(path)
        theirs = nib.load(simulated / path.relative_to(converted))
        same = np.array_equal(np.asarray(ours.dataobj), np.asarray(theirs.dataobj))
        affine = float(np.abs(ours.affine - theirs.affine).max())
        lines.append(
            f"{path.name}: voxel values identical {same}; affine max |difference| {affine:.2e} mm; "
            f"dtype {ours.get_data_dtype()} (simulated {theirs.get_data_dtype()})"
        )
    return lines


def compare(first: Path, second: Path, tolerance: float) -> list[str]:
    a = pd.read_csv(
        first, sep="\t", dtype={"value": float}, keep_default_na=False, na_values=["n/a"]
    )
    b = pd.read_csv(
        second, sep="\t", dtype={"value": float}, keep_default_na=False, na_values=["n/a"]
    )
    key = ["participant_id", "session", "endpoint"]
    joined = a.merge(b, on=key, how="outer", suffixes=("_bids", "_dicom"), indicator=True)
    lines = [f"rows: {len(a)} from the simulated BIDS, {len(b)} from the converted DICOM"]
    unmatched = joined[joined["_merge"] != "both"]
    if len(unmatched):
        lines.append(f"rows in one table only: {unmatched[key].values.tolist()}")
    both = joined[joined["_merge"] == "both"]
    for column in ("visit_month", "arm", "unit", "status", "note"):
        differing = both[both[f"{column}_bids"].astype(str) != both[f"{column}_dicom"].astype(str)]
        if len(differing):
            lines.append(f"{column} differs for: {differing['endpoint'].tolist()}")
    difference = (both["value_bids"] - both["value_dicom"]).abs()
    na_mismatch = both["value_bids"].isna() != both["value_dicom"].isna()
    worst = difference.max(skipna=True)
    lines.append(
        f"values: max |difference| {0.0 if pd.isna(worst) else worst:.3g}; "
        f"{int((difference > tolerance).sum())} above {tolerance:g}; "
        f"{int(na_mismatch.sum())} n/a in one table only"
    )
    for row in both[(difference > tolerance) | na_mismatch].itertuples():
        lines.append(f"  {row.session} {row.endpoint}: {row.value_bids!r} vs {row.value_dicom!r}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied)")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    simulated, converted = args.work / "simulated", args.work / "converted"
    seconds = mriproc("simulate", str(simulated), "--subjects", "1", "--visits", "0",
                      "--format", "both", "--seed", str(args.seed))  # fmt: skip
    print(f"simulate: {seconds:.0f} s")
    seconds = mriproc("convert", str(simulated / "sourcedata" / "dicom"), str(converted),
                      "--participants", str(simulated / "participants.tsv"))  # fmt: skip
    print(f"convert: {seconds:.1f} s")
    print("\n".join(image_differences(simulated, converted)))
    for name, bids in (("simulated BIDS", simulated), ("converted DICOM", converted)):
        out = args.work / f"out-{bids.name}"
        seconds = mriproc("run", str(bids), str(out), "participant", "--nprocs", str(args.nprocs),
                          "-w", str(args.work / f"work-{bids.name}"))  # fmt: skip
        print(f"mriproc run on the {name}: {seconds:.0f} s")
    lines = compare(
        args.work / "out-simulated" / "mriproc" / "endpoints.tsv",
        args.work / "out-converted" / "mriproc" / "endpoints.tsv",
        args.tolerance,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
