"""The lesion stage alone on a real visit already processed: fast iteration on lesions.

    python benchmarks/real_visits.py --work /tmp/rv --participant p07   # once
    python benchmarks/lesion_stage.py --work /tmp/rv [--protocol FILE]

Reruns :func:`mriproc.visit_lesions.visit_lesions` with the code and protocol as they
are now, on the inputs Nipype recorded for patient07's lesion node (its reading-space
images, tissue model and template maps, from ``real_visits.py``'s work folder), and
scores the T2 lesion mask against the three-rater consensus: voxel Dice, the
protocol's lesion-wise F1 and detection by the MSSEG convention per size class. The
visit's other stages are not rerun (about 10 s instead of 160 s), so a change to the
lesion method or its protocol parameters is measured in seconds. Defaults are judged
on scans you do not have: use this to understand, not to tune to patient07.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.utils.filemanip import loadpkl
from real_visits import STRIPPED, print_detection

from mriproc.config import load_protocol
from mriproc.evaluation import detection_score, dice, lesionwise_score
from mriproc.visit_lesions import visit_lesions

NODE = Path("mriproc_wf", "visit_sub_p07_ses_01", "fit_wf", "lesions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="real_visits.py's --work")
    parser.add_argument("--protocol", default="flair", help="protocol name or file")
    parser.add_argument("--out", type=Path, help="where the masks go (default WORK/lesion_stage)")
    args = parser.parse_args()
    recorded = args.work / "work" / NODE / "_inputs.pklz"
    if not recorded.is_file():
        print(f"{recorded}: not found; run benchmarks/real_visits.py first", file=sys.stderr)
        return 2
    inputs = loadpkl(str(recorded))
    protocol = load_protocol(args.protocol)
    images = dict(zip(inputs["roles"], inputs["images"], strict=True))
    start = time.perf_counter()
    outcome = visit_lesions(
        {role: path for role, path in images.items() if path},
        dict(inputs["tissue_outputs"]),
        dict(inputs["template_maps"]),
        protocol=protocol,
        out_dir=args.out or args.work / "lesion_stage",
    )
    seconds = time.perf_counter() - start
    consensus_image = nib.load(STRIPPED / "consensus_gt.nii.gz")
    consensus = np.asarray(consensus_image.dataobj) > 0
    found = np.asarray(nib.load(outcome.images["t2lesion"]).dataobj) > 0
    zooms = consensus_image.header.get_zooms()[:3]
    labelling = protocol.labelling
    score = lesionwise_score(
        consensus,
        found,
        zooms,
        connectivity=labelling.connectivity,
        min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
    )
    print("| scan | measure | value |")
    print("|---|---|---|")
    print(f"| patient07 | lesion stage wall time | {seconds:.1f} s |")
    print(f"| patient07 | T2 lesion Dice vs consensus | {dice(consensus, found):.3f} |")
    print(
        f"| patient07 | lesion-wise F1 | {score.f1:.3f} (recall {score.recall:.2f}, "
        f"precision {score.precision:.2f}; {score.n_truth} true, {score.n_predicted} found) |"
    )
    print_detection(
        "patient07 T2 lesions", detection_score(consensus, found, zooms, connectivity=26)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
