"""Per-visit workflow on the shared real data: brain masks and time per visit.

    python benchmarks/real_visits.py --work /tmp/real-visits

Builds a small BIDS dataset in ``--work`` from ``../shared/data/open_ms_data``
(``cross_sectional/patient07``: 1 mm 3-D FLAIR, T2w, T1w and post-contrast T1w,
already skull-stripped, as ``sub-p07``; ``longitudinal/patient01``: FLAIR, T2w and
T1w with skull, two studies, as ``sub-p01`` sessions ``01`` and ``02``), runs
``mriproc run ... participant --protocol flair`` (or ``--protocol``) one participant
at a time (timed:
patient07 is the 1 mm 3-D visit of the speed target) and scores the written masks:
patient01's brain mask against the provided one, mapped from common space as the
data's README explains; patient07's brain and intracranial masks by the share of the
provided (stripped) brain they keep, and its T2 lesion mask against the three-rater
consensus (voxel Dice, lesion-wise F1 for lesions of at least the protocol's minimum
in-plane diameter).
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
from scipy import ndimage

from mriproc.config import load_protocol
from mriproc.evaluation import DetectionScore, detection_score, dice, lesionwise_score
from mriproc.io.itk import read_itk_affine
from mriproc.registration import apply_linear

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "open_ms_data"
STRIPPED = SHARED / "cross_sectional" / "patient07"
LONGITUDINAL = SHARED / "longitudinal" / "patient01"


def build_bids(root: Path) -> None:
    """Link the shared scans into a BIDS layout (idempotent)."""
    layout = {
        ("p07", "01"): {
            "FLAIR": STRIPPED / "FLAIR.nii.gz",
            "T2w": STRIPPED / "T2W.nii.gz",
            "T1w": STRIPPED / "T1W.nii.gz",
            "ce-gadolinium_T1w": STRIPPED / "T1WKS.nii.gz",
        },
        **{
            ("p01", f"0{k}"): {
                "FLAIR": LONGITUDINAL / f"study{k}_FLAIR.nii.gz",
                "T2w": LONGITUDINAL / f"study{k}_T2W.nii.gz",
                "T1w": LONGITUDINAL / f"study{k}_T1W.nii.gz",
            }
            for k in (1, 2)
        },
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "open_ms_data subset", "BIDSVersion": "1.9.0"}) + "\n"
    )
    # patient01's studies are 203 days apart: the longitudinal stage needs their months.
    sessions = root / "sub-p01" / "sub-p01_sessions.tsv"
    sessions.parent.mkdir(parents=True, exist_ok=True)
    sessions.write_text(f"session_id\tvisit_month\nses-01\t0\nses-02\t{203 / 30.4375:.2f}\n")
    for (participant, session), files in layout.items():
        anat = root / f"sub-{participant}" / f"ses-{session}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            link = anat / f"sub-{participant}_ses-{session}_{name}.nii.gz"
            if not link.exists():
                link.symlink_to(source)


def mask(out: Path, participant: str, session: str, desc: str) -> np.ndarray:
    path = out / f"sub-{participant}" / f"ses-{session}" / "anat"
    loaded = nib.load(path / f"sub-{participant}_ses-{session}_desc-{desc}_mask.nii.gz")
    return np.asarray(loaded.dataobj) > 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--score-only", action="store_true", help="score an existing run")
    parser.add_argument(
        "--participant", action="append", choices=("p07", "p01"), help="run only these"
    )
    parser.add_argument("--protocol", default="flair", help="protocol name or file")
    args = parser.parse_args()
    if not STRIPPED.is_dir() or not LONGITUDINAL.is_dir():
        print(f"shared data not found under {SHARED}", file=sys.stderr)
        return 2
    bids, out = args.work / "bids", args.work / "out"
    build_bids(bids)
    print("| participant | sessions | wall s |")
    print("|---|---|---|")
    for participant in () if args.score_only else (args.participant or ("p07", "p01")):
        command = [
            *(sys.executable, "-m", "mriproc.cli", "run", str(bids), str(out), "participant"),
            *("--protocol", str(args.protocol), "--participant-label", participant),
            *("--nprocs", str(args.nprocs), "-w", str(args.work / "work")),
        ]
        start = time.perf_counter()
        with (args.work / f"run-{participant}.log").open("w") as log:
            code = subprocess.run(command, stdout=log, stderr=log, check=False).returncode
        seconds = time.perf_counter() - start
        sessions = 1 if participant == "p07" else 2
        print(f"| {participant} | {sessions} | {seconds:.0f} (exit {code}) |")
    derivatives = out / "mriproc"

    print("\n| scan | measure | value |")
    print("|---|---|---|")
    provided = nib.load(LONGITUDINAL / "brainmask_common_space.nii.gz")
    provided = nib.Nifti1Image(np.asarray(provided.dataobj, dtype=np.float32), provided.affine)
    for k in (1, 2):
        flair = nib.load(LONGITUDINAL / f"study{k}_FLAIR.nii.gz")
        common_to_raw = read_itk_affine(LONGITUDINAL / f"study{k}_FLAIR_to_common_space.txt")
        reference = (
            np.asarray(apply_linear(provided, flair, np.linalg.inv(common_to_raw)).dataobj) > 0.5
        )
        ours = np.asarray(mask(derivatives, "p01", f"0{k}", "brain"))
        score = dice(ours, reference)
        print(f"| patient01 study{k} (with skull) | brain-mask Dice | {score:.4f} |")
    brain = np.asarray(nib.load(STRIPPED / "FLAIR.nii.gz").dataobj) > 0
    for desc in ("brain", "icv"):
        ours = mask(derivatives, "p07", "01", desc)
        kept = 100.0 * float(ours[brain].mean())
        print(f"| patient07 (stripped) | {desc} mask keeps of the provided brain | {kept:.2f} % |")
    consensus_image = nib.load(STRIPPED / "consensus_gt.nii.gz")
    consensus = np.asarray(consensus_image.dataobj) > 0
    lesions = mask(derivatives, "p07", "01", "t2lesion")
    labelling = load_protocol(args.protocol).labelling
    score = lesionwise_score(
        consensus,
        lesions,
        consensus_image.header.get_zooms()[:3],
        connectivity=labelling.connectivity,
        min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
    )
    print(f"| patient07 | T2 lesion Dice vs consensus | {dice(consensus, lesions):.3f} |")
    print(
        f"| patient07 | lesion-wise F1 | {score.f1:.3f} (recall {score.recall:.2f}, "
        f"precision {score.precision:.2f}; {score.n_truth} true, {score.n_predicted} found) |"
    )
    zooms = consensus_image.header.get_zooms()[:3]
    print_detection(
        "patient07 T2 lesions", detection_score(consensus, lesions, zooms, connectivity=26)
    )
    changed = [
        derivatives / "sub-p01" / "ses-02" / "anat" / f"sub-p01_ses-02_desc-{k}lesion_mask.nii.gz"
        for k in ("new", "enlarging")
    ]
    if all(path.is_file() for path in changed):
        truth, grid, split = brighter_changes()
        ours = np.zeros(grid.shape[:3], dtype=bool)
        for path in changed:
            ours |= np.asarray(nib.load(path).dataobj) > 0
        print(f"| patient01 | expert change components (26-connected, common space) | {split} |")
        print_detection(
            "patient01 new/enlarging vs the brighter expert changes",
            detection_score(truth, ours, grid.header.get_zooms()[:3], connectivity=26),
        )
    return 0


def print_detection(what: str, score: DetectionScore) -> None:
    """Lesion-wise detection (MSSEG convention) overall and per size class, as table rows."""
    for name, found in (("all sizes", score.overall), *score.by_size.items()):
        print(
            f"| {what} | detection F1, MSSEG convention, {name} | {found.f1:.3f} "
            f"(recall {found.recall:.2f} of {found.n_truth}, precision {found.precision:.2f} "
            f"of {found.n_predicted}) |"
        )


def brighter_changes() -> tuple[np.ndarray, nib.Nifti1Image, str]:
    """The expert change mask's components brighter on FLAIR at study 2, on study 2's raw
    FLAIR grid (the follow-up's reading space), its image, and how the components split.

    Each 26-connected component of ``gt_change_common_space`` is brighter or dimmer by
    the mean, inside it, of study 2's FLAIR minus study 1's, both mapped into the common
    space and divided by their median over the brain mask outside the changes.
    """
    change_image = nib.load(LONGITUDINAL / "gt_change_common_space.nii.gz")
    common = nib.Nifti1Image(np.asarray(change_image.dataobj, np.float32), change_image.affine)
    change = np.asarray(change_image.dataobj) > 0
    brain = np.asarray(nib.load(LONGITUDINAL / "brainmask_common_space.nii.gz").dataobj) > 0
    flair = []
    for k in (1, 2):
        raw = nib.load(LONGITUDINAL / f"study{k}_FLAIR.nii.gz")
        raw = nib.Nifti1Image(np.asarray(raw.dataobj, np.float32), raw.affine)
        common_to_raw = read_itk_affine(LONGITUDINAL / f"study{k}_FLAIR_to_common_space.txt")
        data = np.asarray(apply_linear(raw, common, common_to_raw).dataobj, dtype=np.float64)
        flair.append(data / np.median(data[brain & ~change]))
    labels, count = ndimage.label(change, structure=np.ones((3, 3, 3), dtype=bool))
    brighter = np.zeros(change.shape, dtype=np.float32)
    means = [float((flair[1] - flair[0])[labels == i].mean()) for i in range(1, count + 1)]
    for i, mean in enumerate(means, start=1):
        if mean > 0:
            brighter[labels == i] = 1.0
    grid = nib.load(LONGITUDINAL / "study2_FLAIR.nii.gz")
    common_to_raw = read_itk_affine(LONGITUDINAL / "study2_FLAIR_to_common_space.txt")
    mapped = apply_linear(
        nib.Nifti1Image(brighter, change_image.affine), grid, np.linalg.inv(common_to_raw)
    )
    split = (
        f"{count}: {sum(m > 0 for m in means)} brighter, {sum(m <= 0 for m in means)} dimmer "
        f"(mean normalised change {', '.join(f'{m:+.2f}' for m in sorted(means))})"
    )
    return np.asarray(mapped.dataobj) > 0.5, grid, split


if __name__ == "__main__":
    sys.exit(main())
