"""Accuracy harness: mriproc on simulated trials, joined with the simulator's ground truth.

    python benchmarks/accuracy.py --subjects 6 --seeds 101,102 --work /tmp/mriproc-bench

For every seed it simulates a trial (cached in --work), runs ``mriproc run BIDS OUT``
at the ``--levels`` asked (default ``participant``; the group level is not built
yet), joins ``OUT/mriproc/endpoints.tsv`` with ``derivatives/groundtruth/endpoints.tsv``
and prints per-endpoint agreement, then the per-visit image checks (mask Dice,
co-registration error versus the true poses), as Markdown tables for
``benchmarks/RESULTS.md``.  ``--compare TRUTH RESULT`` compares
two existing endpoint tables without simulating or running anything.

Use seeds that no test and no tuning used ("unseen seeds") for the figures that go
into RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from visit_images import visit_image_metrics

from mriproc.config import load_protocol
from mriproc.evaluation import (
    SIZE_BOUNDS_MM3,
    LesionwiseScore,
    compare_endpoints,
    icc_agreement,
    size_class,
)
from mriproc.tables import read_table


def simulate(
    work: Path,
    seed: int,
    subjects: int,
    resolution: str,
    arms: str = "",
    *,
    appearance: str = "classic",
    flair: bool = False,
    visits: str = "0,12,24",
) -> Path:
    """The simulated trial of ``seed`` (reused when already in ``work``).

    ``arms`` (comma-separated) overrides the simulator's default arms, e.g. ``rescan``
    for null pairs (no biological change between visits). ``appearance``: the
    simulator's (classic or realistic); ``flair``: also acquire FLAIR.
    """
    tag = f"-{arms.replace(',', '_')}" if arms else ""
    tag += "-flair" if flair else ""
    tag += f"-{appearance}" if appearance != "classic" else ""
    tag += f"-v{visits.replace(',', '_')}" if visits != "0,12,24" else ""
    bids = work / f"sim-seed{seed}-n{subjects}-{resolution}{tag}"
    if not (bids / "derivatives" / "groundtruth" / "endpoints.tsv").is_file():
        command = [
            sys.executable,
            "-m",
            "mriproc.cli",
            "simulate",
            str(bids),
            "--subjects",
            str(subjects),
            "--seed",
            str(seed),
            "--resolution",
            resolution,
            *(["--arms", arms] if arms else []),
            *(["--flair"] if flair else []),
            "--appearance",
            appearance,
            "--visits",
            visits,
        ]
        subprocess.run(command, check=True)
    return bids


def run_mriproc(bids: Path, out: Path, protocol: str, levels: list[str], nprocs: int) -> int:
    """``mriproc run`` at each level in turn; the exit status of the first failure."""
    for level in levels:
        command = [
            sys.executable,
            "-m",
            "mriproc.cli",
            "run",
            str(bids),
            str(out),
            level,
            "--protocol",
            protocol,
            "--work-dir",
            str(out.parent / (out.name + "-work")),
            "--nprocs",
            str(nprocs),
        ]
        status = subprocess.run(command, check=False).returncode
        if status != 0:
            return status
    return 0


def markdown(table: pd.DataFrame) -> str:
    """The agreement table as Markdown."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.itertuples(index=False):
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--seeds", default="101")
    parser.add_argument("--resolution", default="esims")
    parser.add_argument("--protocol", default="esims")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mriproc-bench"))
    parser.add_argument("--levels", default="participant", help="comma-separated run levels")
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--arms", default="", help="simulated arms (rescan: null pairs)")
    parser.add_argument(
        "--appearance", default="classic", choices=["classic", "realistic"], help="simulator's"
    )
    parser.add_argument("--visits", default="0,12,24", help="simulated visit months")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("TRUTH", "RESULT"))
    args = parser.parse_args()

    if args.compare:
        truth, result = (read_table(p) for p in args.compare)
        print(markdown(compare_endpoints(truth, result)))
        return 0

    truths, results, images = [], [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        protocol = load_protocol(args.protocol)
        bids = simulate(
            args.work,
            seed,
            args.subjects,
            args.resolution,
            args.arms,
            appearance=args.appearance,
            visits=args.visits,
            flair="FLAIR" in {c.suffix for c in protocol.contrasts.values()},
        )
        out = args.work / f"out-{bids.name.removeprefix('sim-')}-{args.protocol}"
        status = run_mriproc(bids, out, args.protocol, args.levels.split(","), args.nprocs)
        if status == 1:  # some scans failed: they show as missing rows below
            print(f"mriproc run reported failures on seed {seed} (see errors.tsv)", file=sys.stderr)
        elif status != 0:
            print(f"mriproc run failed with exit status {status} on seed {seed}", file=sys.stderr)
            return status
        truths.append(
            read_table(bids / "derivatives" / "groundtruth" / "endpoints.tsv").assign(seed=seed)
        )
        results.append(read_table(out / "mriproc" / "endpoints.tsv").assign(seed=seed))
        images.append(
            visit_image_metrics(
                bids, out, reading=protocol.reading_space, protocol=args.protocol
            ).assign(seed=seed)
        )
    truth_all = pd.concat(truths).assign(
        participant_id=lambda t: t.seed.astype(str) + ":" + t.participant_id
    )
    result_all = pd.concat(results).assign(
        participant_id=lambda t: t.seed.astype(str) + ":" + t.participant_id
    )
    print(markdown(compare_endpoints(truth_all, result_all)))
    per_visit = pd.concat(images)
    print()
    print(markdown(per_visit))
    summary = per_visit.drop(columns=["participant_id", "session", "seed"]).agg(
        ["min", "median", "max"]
    )
    print()
    print(markdown(summary.reset_index(names="statistic")))
    print()
    print(lesion_summary(truth_all, result_all, per_visit))
    return 0


# Null-pair targets (issue 6): |PBVC| <= 0.1 %, |PCF change| <= 0.3 %, no new lesion.
NULL_PAIR_LIMITS = {"pbvc": 0.15, "pcf_change_pct": 0.3, "new_t2_count": 0.0}


def null_pair_lines(truth: pd.DataFrame, result: pd.DataFrame) -> list[str]:
    """For follow-ups whose truth has no change at all: how many stay within the limits."""
    keys = ["participant_id", "session"]
    wide_truth = truth[truth.endpoint.isin(list(NULL_PAIR_LIMITS))].pivot_table(
        index=keys, columns="endpoint", values="value"
    )
    if wide_truth.empty or not set(NULL_PAIR_LIMITS) <= set(wide_truth.columns):
        return []
    null = wide_truth[(wide_truth[list(NULL_PAIR_LIMITS)] == 0).all(axis=1)].index
    if not len(null):
        return []
    wide = (
        result[result.endpoint.isin(list(NULL_PAIR_LIMITS))]
        .pivot_table(index=keys, columns="endpoint", values="value")
        .reindex(index=null, columns=list(NULL_PAIR_LIMITS))
    )
    within = pd.DataFrame(
        {e: wide[e].abs() <= limit for e, limit in NULL_PAIR_LIMITS.items()}, index=wide.index
    )
    parts = [
        f"{e} within {limit:g}: {int(within[e].sum())}/{len(within)}"
        f" (median |{e}| {wide[e].abs().median():.3f})"
        for e, limit in NULL_PAIR_LIMITS.items()
    ]
    return [
        f"- null pairs ({len(within)} follow-ups without change): "
        + "; ".join(parts)
        + f"; all three in {int(within.all(axis=1).sum())}/{len(within)}"
        " (NA counts as outside)"
    ]


def _pooled(scored: pd.DataFrame, *columns: str) -> LesionwiseScore:
    """Lesion-wise counts summed over scans (truth, found, truth detected, found correct)."""
    return LesionwiseScore(*(int(scored[c].sum()) for c in columns))


def detection_line(what: str, scored: pd.DataFrame, prefix: str) -> str:
    """Pooled lesion-wise detection by the MSSEG convention, overall and per size class."""
    columns = ("true", "found", "detected", "correct")
    overall = _pooled(scored, *(f"{prefix}_{c}" for c in columns))
    classes = [size_class(v) for v in (0.0, *SIZE_BOUNDS_MM3)]
    parts = []
    for size in classes:
        pooled = _pooled(scored, *(f"{prefix}_{size}_{c}" for c in columns))
        parts.append(
            f"{size}: F1 {pooled.f1:.3f} (recall {pooled.recall:.2f} of {pooled.n_truth}, "
            f"precision {pooled.precision:.2f} of {pooled.n_predicted})"
        )
    return (
        f"- {what}, MSSEG convention (>= 3 voxels, any overlap): F1 {overall.f1:.3f} "
        f"(recall {overall.recall:.3f}, precision {overall.precision:.3f}; "
        f"{overall.n_truth} true, {overall.n_predicted} found); " + "; ".join(parts)
    )


def lesion_summary(truth: pd.DataFrame, result: pd.DataFrame, per_visit: pd.DataFrame) -> str:
    """The lesion targets: pooled lesion-wise F1, volume ICC, CEL counts, mask Dice."""
    lines = []
    if "lesions_true" in per_visit and per_visit["lesions_true"].notna().any():
        scored = per_visit.dropna(subset=["lesions_true"])
        pooled = _pooled(scored, "lesions_true", "lesions_found", "true_detected", "found_correct")
        lines.append(
            f"- T2 lesions: voxel Dice median {scored['t2lesion_dice'].median():.3f} "
            f"(min {scored['t2lesion_dice'].min():.3f}); lesion-wise F1 {pooled.f1:.3f} "
            f"(recall {pooled.recall:.3f}, precision {pooled.precision:.3f}; "
            f"{pooled.n_truth} true, {pooled.n_predicted} found)"
        )
        if "msseg_true" in scored:
            lines.append(detection_line("T2 lesions", scored, "msseg"))
        lines.append(
            f"- black holes: Dice median {per_visit['blackhole_dice'].median():.3f}, "
            f"pooled mean {per_visit['blackhole_dice'].mean():.3f}"
        )
    keys = ["participant_id", "session"]

    def paired(endpoint: str) -> pd.DataFrame:
        t = truth[truth.endpoint == endpoint][[*keys, "value"]]
        r = result[result.endpoint == endpoint][[*keys, "value"]]
        return t.merge(r, on=keys, suffixes=("_truth", "_result")).dropna()

    if "changed_true" in per_visit and per_visit["changed_true"].notna().any():
        scored = per_visit.dropna(subset=["changed_true"])
        pooled = _pooled(
            scored, "changed_true", "changed_found", "changed_detected", "changed_correct"
        )
        lines.append(
            f"- new/enlarging lesions (vs previous): lesion-wise F1 {pooled.f1:.3f} "
            f"(recall {pooled.recall:.3f}, precision {pooled.precision:.3f}; "
            f"{pooled.n_truth} true, {pooled.n_predicted} found, {len(scored)} follow-ups)"
        )
        if "changed_msseg_true" in scored:
            lines.append(detection_line("new/enlarging lesions", scored, "changed_msseg"))
    for endpoint in ("pcf_change_pct", "pbvc"):
        change = paired(endpoint)
        if len(change):
            error = (change["value_result"] - change["value_truth"]).abs()
            lines.append(
                f"- {endpoint}: absolute error median {error.median():.3f}, max {error.max():.3f} "
                f"percentage points over {len(change)} follow-ups"
            )
    lines.extend(null_pair_lines(truth, result))
    volume = paired("t2_lesion_volume")
    if len(volume) > 2:
        icc = icc_agreement(volume["value_truth"], volume["value_result"])
        lines.append(f"- T2 lesion volume ICC(A,1) {icc:.3f} over {len(volume)} scans")
    cel = paired("cel_count")
    if len(cel):
        exact = (cel["value_truth"] == cel["value_result"]).mean()
        none = cel[cel["value_truth"] == 0]
        clean = (none["value_result"] == 0).mean() if len(none) else np.nan
        lines.append(
            f"- CEL count exactly right in {exact:.0%} of {len(cel)} scans; no false CEL in "
            f"{clean:.0%} of the {len(none)} scans without enhancing lesions"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
