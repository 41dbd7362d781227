"""PCF and BPF when a visit lacks some of the tissue model's channels.

Simulates ``--subjects`` single-visit participants with every contrast (PD/T2, FLAIR,
T1w before and after gadolinium), then, for each shipped protocol, copies each one
into one participant per subset of the protocol's ``pcf.channels`` that holds the
reading space (the other contrasts of the protocol stay), runs ``mriproc run`` with
the protocol as shipped, and compares PCF and BPF with the ground truth.

    python benchmarks/bench_tissue_channels.py --subjects 3 --seed 701 --work /tmp/tc

Prints one line per protocol and channel subset (error median, mean and max over the
subjects) and writes ``tissue_channels.json`` into the work folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import time
from pathlib import Path

from mriproc.cli import main
from mriproc.config import load_protocol
from mriproc.io.bids import anat_path
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table


def _dataset(sim: Path, root: Path, protocol: str, subjects: list[str]) -> dict[str, tuple]:
    """One participant per subject and tissue-channel subset; label -> (subject, subset)."""
    spec = load_protocol(protocol)
    channels = [c for c in spec.pcf.channels if c != spec.reading_space]
    others = [r for r in spec.contrasts if r not in spec.pcf.channels]
    subsets = [
        (spec.reading_space, *combo)
        for n in range(len(channels), -1, -1)
        for combo in itertools.combinations(channels, n)
    ]
    root.mkdir(parents=True)
    shutil.copy(sim / "dataset_description.json", root)
    rows = ["participant_id\tarm"]
    labels: dict[str, tuple] = {}
    for subject in subjects:
        for index, subset in enumerate(subsets):
            label = f"{subject}c{index}"
            labels[label] = (subject, subset)
            for role in (*subset, *others):
                entities = {"suffix": spec.contrasts[role].suffix, "ce": spec.contrasts[role].ce}
                source = anat_path(sim, subject, "M00", **entities)
                target = anat_path(root, label, "M00", **entities)
                target.parent.mkdir(parents=True, exist_ok=True)
                for extension in (".nii.gz", ".json"):
                    shutil.copy(_with(source, extension), _with(target, extension))
            rows.append(f"sub-{label}\tplacebo")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return labels


def _with(image: Path, extension: str) -> Path:
    """The image's file (``.nii.gz``) or its sidecar (``.json``)."""
    return image.with_name(image.name.removesuffix(".nii.gz") + extension)


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--seed", type=int, default=701)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args(argv)
    sim = args.work / "sim"
    if not sim.is_dir():
        spec = TrialSpec(n_subjects=args.subjects, months=(0,), flair=True, seed=args.seed)
        simulate_trial(sim, spec, load_protocol("flair"))
    truth = read_table(sim / "derivatives" / "groundtruth" / "endpoints.tsv")
    true = {
        (str(r.participant_id).removeprefix("sub-"), str(r.endpoint)): float(r.value)
        for r in truth.itertuples()
        if r.endpoint in ("pcf", "bpf")
    }
    subjects = sorted({s for s, _ in true})
    results = []
    for protocol in ("esims", "flair"):
        root = args.work / protocol
        if root.exists():
            shutil.rmtree(root)
        labels = _dataset(sim, root / "bids", protocol, subjects)
        start = time.monotonic()
        argv_run = ["run", str(root / "bids"), str(root / "out"), "participant"]
        main([*argv_run, "--protocol", protocol, "--nprocs", str(args.nprocs)])
        seconds = time.monotonic() - start
        measured = read_table(root / "out" / "mriproc" / "endpoints.tsv")
        by_subset: dict[tuple, dict[str, list[float]]] = {}
        for row in measured.itertuples():
            if row.endpoint not in ("pcf", "bpf"):
                continue
            subject, subset = labels[str(row.participant_id).removeprefix("sub-")]
            errors = by_subset.setdefault(subset, {"pcf": [], "bpf": []})
            value = float(row.value) if str(row.status) == "ok" else float("nan")
            errors[str(row.endpoint)].append(value - true[(subject, str(row.endpoint))])
        for subset, errors in by_subset.items():
            line = {"protocol": protocol, "channels": "+".join(subset), "seconds": seconds}
            for endpoint, values in errors.items():
                line[endpoint] = {
                    "median_abs": statistics.median(abs(v) for v in values),
                    "mean": statistics.fmean(values),
                    "max_abs": max(abs(v) for v in values),
                    "errors": values,
                }
            results.append(line)
            print(
                f"{protocol:6s} {line['channels']:16s} "
                + "  ".join(
                    f"{e} error median |{line[e]['median_abs']:.4f}| "  # type: ignore[index]
                    f"mean {line[e]['mean']:+.4f} max |{line[e]['max_abs']:.4f}|"  # type: ignore[index]
                    for e in ("pcf", "bpf")
                ),
                flush=True,
            )
    (args.work / "tissue_channels.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
