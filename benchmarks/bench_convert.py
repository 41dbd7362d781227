"""Speed of ``mriproc convert`` per series against dcm2niix alone; real-DICOM reference check.

Two inputs: the simulator's DICOM trial at ESIMS resolution (written here unless
``--dicom`` names one) and the real scanner series in ``../shared/data/dicom``
(skipped when absent).  For each:

* dcm2niix alone: the exact command ``mriproc convert`` runs
  (``mriproc.io.dcm2niix.dcm2niix_command``) on a ready folder of links to one
  series' files, timed per series (median of ``--repeats``);
* ``convert_dicom`` in-process into a fresh BIDS folder (median of ``--repeats``):
  wall time per converted series, and the part of it spent in dcm2niix;
* the ``mriproc convert`` command once, as a user runs it (Python start-up included).

On the real data it also checks each series' role (all three are pre-contrast T1w)
and that the Philips image equals dcm2niix's reference (data and affine), and
compares the acquisition fields of every sidecar with the reference JSON.

    python benchmarks/bench_convert.py --subjects 2 --visits 0,12,24 --work /tmp/bench-convert
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from mriproc.config import load_protocol
from mriproc.convert import ConvertResult, convert_dicom
from mriproc.io.dcm2niix import dcm2niix_command
from mriproc.io.dicom import scan_dicom_tree
from mriproc.series_roles import classify_series, load_heuristics
from mriproc.simulate import TrialSpec, simulate_trial

SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
REFERENCE_FIELDS = (
    "EchoTime",
    "RepetitionTime",
    "InversionTime",
    "SliceThickness",
    "SpacingBetweenSlices",
    "SeriesNumber",
    "ImageOrientationPatientDICOM",
    "MRAcquisitionType",
)


def dcm2niix_alone(dicom: Path, work: Path, repeats: int) -> list[float]:
    """Median wall time of dcm2niix per converted series (links prepared beforehand)."""
    rules = load_heuristics()
    scan = scan_dicom_tree(dicom, identifying_attributes=rules.identifying_attributes)
    times = []
    for index, series in enumerate(scan.series):
        if not classify_series(series, rules).converted:
            continue
        in_dir = work / f"alone-{index:03d}" / "in"
        in_dir.mkdir(parents=True)
        for number, path in enumerate(series.files, start=1):
            (in_dir / f"{number:05d}.dcm").symlink_to(path.resolve())
        runs = []
        for repeat in range(repeats):
            out_dir = in_dir.parent / f"out{repeat}"
            out_dir.mkdir()
            start = time.perf_counter()
            subprocess.run(dcm2niix_command(in_dir, out_dir), capture_output=True, check=True)
            runs.append(time.perf_counter() - start)
        times.append(statistics.median(runs))
    return times


def convert_in_process(dicom: Path, work: Path, repeats: int) -> tuple[float, ConvertResult]:
    """Median wall time of convert_dicom into a fresh dataset, and the last result."""
    rules = load_heuristics()
    walls = []
    result = None
    for repeat in range(repeats):
        start = time.perf_counter()
        result = convert_dicom(dicom, work / f"bids{repeat}", rules=rules)
        walls.append(time.perf_counter() - start)
    assert result is not None
    return statistics.median(walls), result


def convert_command(dicom: Path, bids: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mriproc.cli", "convert", str(dicom), str(bids)],
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - start


def measure(name: str, dicom: Path, work: Path, repeats: int) -> str:
    alone = dcm2niix_alone(dicom, work / "alone", repeats)
    wall, result = convert_in_process(dicom, work / "convert", repeats)
    command = convert_command(dicom, work / "command")
    n = len(result.timings)
    files = statistics.median(t.files for t in result.timings)
    inside = sum(t.dcm2niix_s for t in result.timings) / n  # of the last repeat
    per_series = wall / n
    return (
        f"| {name} | {n} | {files:g} | {statistics.median(alone):.3f} s | "
        f"{per_series:.3f} s | {inside:.3f} s ({100 * inside / per_series:.0f} %) | "
        f"{per_series - inside:.3f} s | {command:.1f} s |"
    )


def check_real(result: ConvertResult, bids: Path) -> list[str]:
    lines = []
    roles = sorted(",".join(r.roles) for r in result.rows if r.status == "converted")
    lines.append(f"real DICOM roles: {roles} (expected three T1w)")
    for image in sorted(bids.glob("sub-*/ses-*/anat/*.nii.gz")):
        sidecar = json.loads(image.with_name(image.name.replace(".nii.gz", ".json")).read_text())
        folder = next(
            d for d in SHARED_DICOM.iterdir() if d.is_dir() and _reference(d)["SeriesNumber"]
            == sidecar["SeriesNumber"]
        )  # fmt: skip
        reference = _reference(folder)
        differing = [k for k in REFERENCE_FIELDS if not _close(sidecar.get(k), reference.get(k))]
        lines.append(f"{folder.name}: sidecar fields differing from the reference: {differing}")
        nifti = folder / "reference_dcm2niix.nii.gz"
        if nifti.is_file():
            ours, ref = nib.load(image), nib.load(nifti)
            same = np.array_equal(np.asarray(ours.dataobj), np.asarray(ref.dataobj))
            affine = float(np.abs(ours.affine - ref.affine).max())
            lines.append(f"{folder.name}: data identical {same}, affine max difference {affine:g}")
    return lines


def _reference(folder: Path) -> dict[str, object]:
    plain = folder / "reference_dcm2niix.json"
    if plain.is_file():
        return dict(json.loads(plain.read_text()))
    return dict(json.loads(gzip.decompress((folder / "reference_dcm2niix.json.gz").read_bytes())))


def _close(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--visits", default="0,12,24")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dicom", type=Path, help="an existing simulated DICOM tree")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (emptied)")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    dicom = args.dicom
    if dicom is None:
        months = tuple(int(m) for m in args.visits.split(","))
        spec = TrialSpec(
            n_subjects=args.subjects, months=months, write_bids=False, write_dicom=True,
            seed=args.seed,
        )  # fmt: skip
        start = time.perf_counter()
        simulate_trial(args.work / "sim", spec, load_protocol("esims"))
        print(f"simulated {args.subjects} subject(s) x {len(months)} visit(s) in "
              f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        dicom = args.work / "sim" / "sourcedata" / "dicom"
    print(
        "| data | series converted | files per series (median) | dcm2niix alone per series "
        "(median) | convert per series (wall / series) | of which dcm2niix (mean) | "
        "mriproc's own time per series | `mriproc convert` command (whole run) |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    print(measure("simulated ESIMS trial", dicom, args.work / "simulated", args.repeats))
    if SHARED_DICOM.is_dir():
        print(measure("../shared/data/dicom", SHARED_DICOM, args.work / "real", args.repeats))
        result = convert_dicom(SHARED_DICOM, args.work / "real-check", rules=load_heuristics())
        print("\n".join(check_real(result, args.work / "real-check")))
    else:
        print("../shared/data/dicom is not present: real-DICOM figures skipped")


if __name__ == "__main__":
    main()
