"""PBVC and PCF change on real anatomy with known change injected (:mod:`inject_change`).

    python benchmarks/bench_atrophy_real.py --work /tmp/atrophy-real

For each development scan (``patient07``: 1 mm 3-D, skull-stripped; ``patient01``
study 1: 0.72 x 0.72 x 4 mm FLAIR with skull) and each geometry (``native``: the
scan's own grids; ``esims``: 0.94 x 0.94 x 5 mm slices, each the mean of five 1 mm
sub-slices), it writes two participants into one BIDS dataset: a pair with a known
1 % parenchyma loss and a null pair (the same anatomy twice), each visit with its own
pose, gain, bias and noise.  It runs ``mriproc run ... participant --protocol flair``
once over all of them and prints measured against true PBVC and PCF change (the PCF
truth uses mriproc's own baseline slab, carried into the anatomy by the baseline's
known pose), with the quality figures of each value.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from inject_change import SHARED, Anatomy, load_anatomy, make_visit
from scipy import ndimage

from mriproc.simulate.deformation import CoarseField
from mriproc.tables import read_table

SCANS = {"patient07": "p07", "patient01": "p01"}
GEOMETRIES = {"native": "nat", "esims": "esi"}
SESSIONS = ("M00", "M12")


def participant_label(scan: str, geometry: str, loss: float) -> str:
    """BIDS label of one pair, e.g. ``p07esi1`` (1 % loss) or ``p07esinull``."""
    change = "null" if loss == 0 else f"{loss:g}".replace(".", "p")
    return f"{SCANS[scan]}{GEOMETRIES[geometry]}{change}"


def build(work: Path, scans: list[str], geometries: list[str], loss: float, seed: int) -> Path:
    """The BIDS dataset and ``truth.json`` (idempotent: existing participants are kept)."""
    bids = work / "bids"
    bids.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "open_ms_data with injected change", "BIDSVersion": "1.9.0"}) + "\n"
    )
    truth_path = work / "truth.json"
    truth = json.loads(truth_path.read_text()) if truth_path.is_file() else {}
    rows = ["participant_id\tarm"]
    for scan_index, scan in enumerate(scans):
        anatomy: Anatomy | None = None
        for geometry_index, geometry in enumerate(geometries):
            for change in (loss, 0.0):
                label = participant_label(scan, geometry, change)
                rows.append(f"sub-{label}\t{'null' if change == 0 else 'loss'}")
                if label in truth:
                    continue
                anatomy = anatomy or load_anatomy(scan)
                field = anatomy.field_for(-change)
                rng = np.random.default_rng([seed, scan_index, geometry_index, int(change * 100)])
                poses = {}
                for session, visit_field in zip(SESSIONS, (None, field), strict=True):
                    visit, pose = make_visit(anatomy, visit_field, geometry=geometry, rng=rng)
                    poses[session] = pose.tolist()
                    anat = bids / f"sub-{label}" / f"ses-{session}" / "anat"
                    anat.mkdir(parents=True, exist_ok=True)
                    for role, image in visit.items():
                        nib.save(image, str(anat / f"sub-{label}_ses-{session}_{role}.nii.gz"))
                if field is not None:
                    np.save(work / f"field-{label}.npy", field.displacement)
                truth[label] = {
                    "scan": scan,
                    "geometry": geometry,
                    "pbvc": anatomy.pbvc(field),
                    "field_step": None if field is None else field.step,
                    "poses": poses,
                }
                truth_path.write_text(json.dumps(truth, indent=2) + "\n")
                print(f"built sub-{label}: true PBVC {truth[label]['pbvc']:+.4f} %", flush=True)
    (bids / "participants.tsv").write_text("\n".join(rows) + "\n")
    return bids


def true_pcf_change(work: Path, out: Path, label: str, entry: dict, anatomy: Anatomy) -> float:
    """True PCF change over mriproc's baseline slab, carried into the anatomy."""
    slab_path = (
        out
        / "mriproc"
        / f"sub-{label}"
        / "ses-M00"
        / "anat"
        / f"sub-{label}_ses-M00_desc-pcfslab_mask.nii.gz"
    )
    slab_image = nib.load(str(slab_path))
    pose = np.asarray(entry["poses"]["M00"])
    # anatomy grid voxel -> anatomy mm -> scanner (baseline) mm -> slab voxel
    to_voxel = np.linalg.inv(slab_image.affine) @ pose @ anatomy.grid_affine
    grid = np.indices(anatomy.parenchyma.shape, dtype=np.float64).reshape(3, -1)
    where = to_voxel[:3, :3] @ grid + to_voxel[:3, 3:4]
    slab = ndimage.map_coordinates(
        np.asarray(slab_image.dataobj, dtype=np.float32), where, order=1, mode="constant"
    ).reshape(anatomy.parenchyma.shape)
    field = None
    field_path = work / f"field-{label}.npy"
    if field_path.is_file():
        field = CoarseField(np.load(field_path), int(entry["field_step"]))
    values = []
    for visit_field in (None, field):
        parenchyma = anatomy.pulled_back(anatomy.parenchyma, visit_field)
        csf = anatomy.pulled_back(anatomy.csf, visit_field)
        values.append(float((slab * parenchyma).sum() / (slab * (parenchyma + csf)).sum()))
    return 100.0 * (values[1] / values[0] - 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--scans", default="patient07,patient01")
    parser.add_argument("--geometries", default="native,esims")
    parser.add_argument("--loss-pct", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--score-only", action="store_true", help="score an existing run")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"shared data not found under {SHARED}", file=sys.stderr)
        return 2
    scans, geometries = args.scans.split(","), args.geometries.split(",")
    bids = build(args.work, scans, geometries, args.loss_pct, args.seed)
    out = args.work / "out"
    if not args.score_only:
        command = [
            *(sys.executable, "-m", "mriproc.cli", "run", str(bids), str(out), "participant"),
            *("--protocol", "flair", "--nprocs", str(args.nprocs), "-w", str(args.work / "work")),
        ]
        start = time.perf_counter()
        with (args.work / "run.log").open("w") as log:
            code = subprocess.run(command, stdout=log, stderr=log, check=False).returncode
        print(f"mriproc run: exit {code}, {time.perf_counter() - start:.0f} s wall")
    endpoints = read_table(out / "mriproc" / "endpoints.tsv")
    truth = json.loads((args.work / "truth.json").read_text())
    anatomies: dict[str, Anatomy] = {}
    print(
        "\n| pair | geometry | true PBVC | PBVC | error | true PCF change | PCF change | error "
        "| true / measured change (mL) | true / measured parenchyma (mL) | quality |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    truth_rows = ["participant_id\tsession\tendpoint\tvalue"]
    for label, entry in sorted(truth.items()):
        if entry["scan"] not in scans or entry["geometry"] not in geometries:
            continue
        rows = endpoints[
            (endpoints.participant_id == f"sub-{label}") & (endpoints.session == "ses-M12")
        ].set_index("endpoint")
        anatomy = anatomies.setdefault(entry["scan"], load_anatomy(entry["scan"]))
        pcf_truth = true_pcf_change(args.work, out, label, entry, anatomy)
        truth_rows += [
            f"sub-{label}\tses-M12\tpbvc\t{entry['pbvc']!r}",
            f"sub-{label}\tses-M12\tpcf_change_pct\t{pcf_truth!r}",
        ]
        record = (
            out
            / "mriproc"
            / f"sub-{label}"
            / "ses-M12"
            / "anat"
            / f"sub-{label}_ses-M12_desc-longitudinal_measures.json"
        )
        quality = json.loads(record.read_text()).get("atrophy", {}) if record.is_file() else {}
        cells = [f"sub-{label}", entry["geometry"], f"{entry['pbvc']:+.3f}"]
        for endpoint, true_value in (("pbvc", entry["pbvc"]), ("pcf_change_pct", pcf_truth)):
            value = rows.loc[endpoint, "value"] if endpoint in rows.index else np.nan
            if endpoint == "pcf_change_pct":
                cells.append(f"{true_value:+.3f}")
            if np.isfinite(value):
                cells += [f"{value:+.3f}", f"{value - true_value:+.3f}"]
            else:
                cells += [str(rows.loc[endpoint, "status"]) if endpoint in rows.index else "-", "-"]
        # The injected change is exact in mL; a percentage also depends on what each
        # side calls parenchyma (the truth: a T1w Gaussian mixture; mriproc: its model).
        true_ml = float(anatomy.parenchyma.sum()) * abs(np.linalg.det(anatomy.grid_affine[:3, :3]))
        true_ml /= 1000.0
        measured_ml = float(quality.get("parenchyma_ml") or np.nan)
        value = rows.loc["pbvc", "value"] if "pbvc" in rows.index else np.nan
        cells += [
            f"{entry['pbvc'] / 100 * true_ml:+.2f} / {value / 100 * measured_ml:+.2f}",
            f"{true_ml:.0f} / {measured_ml:.0f}",
        ]
        shown = ", ".join(
            f"{k} {v:.3g}"
            for k, v in sorted(quality.items())
            if isinstance(v, int | float) and k != "parenchyma_ml"
        )
        print("| " + " | ".join([*cells, shown]) + " |")
    (args.work / "truth_endpoints.tsv").write_text("\n".join(truth_rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
