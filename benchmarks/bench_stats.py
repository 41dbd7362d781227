"""Validation of ``mriproc stats``: bias, CI coverage and false-positive rates.

Draws simulated endpoint tables (``mriproc.stats.simulate_endpoint_table``, ESIMS-like:
PCF change over 24 months -0.88 ± 0.91 % with placebo) with a known arm effect and
with none, runs the between-arm comparisons ``mriproc stats`` runs on each, and prints
(Markdown) per test: the truth, the mean estimate, the bias with its standard error,
how often the 95 % CI covers the truth and how often P < 0.05, each rate with its
exact binomial 95 % interval.  Then runs ``mriproc stats`` itself once on a simulated
trial with the known effect, and (``--groundtruth DIR``) on the ground truth of a
trial written by ``mriproc simulate``.

    python benchmarks/bench_stats.py --repetitions 1000 --n-per-arm 150
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

from mriproc.stats import run_stats
from mriproc.stats.simulation import write_simulated_tables
from mriproc.stats.validation import operating_characteristics, repeat_comparisons


def _rate(value: float, low: float, high: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def _table(summary: pd.DataFrame) -> str:
    lines = [
        "| outcome | test | truth | mean estimate | bias (SE) | CI coverage [95 % CI] "
        "| P < 0.05 [95 % CI] | estimable |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.to_dict(orient="records"):
        scale = " (log)" if r["scale"] == "log ratio" else ""
        truth = "n/a" if math.isnan(r["truth"]) else f"{r['truth']:g}"
        bias = "n/a" if math.isnan(r["bias"]) else f"{r['bias']:+.4f}{scale} ({r['bias_se']:.4f})"
        lines.append(
            f"| {r['outcome']} | {r['test']} | {truth} | {r['mean_estimate']:.4f} | {bias} | "
            f"{_rate(r['coverage'], r['coverage_low'], r['coverage_high'])} | "
            f"{_rate(r['rejection_rate'], r['rejection_low'], r['rejection_high'])} | "
            f"{r['estimable']}/{r['repetitions']} |"
        )
    return "\n".join(lines)


def _rows(comparisons: pd.DataFrame, outcomes: tuple[str, ...]) -> str:
    rows = comparisons[comparisons["outcome"].isin(outcomes)]
    return "\n".join(
        f"- {r['outcome']} {r['visits']}, {r['test']}: {r['estimate']:.3f} "
        f"({r['ci_low']:.3f} to {r['ci_high']:.3f}), P = {r['p_value']:.4f}"
        + (f" ({r['note']})" if isinstance(r["note"], str) and r["note"] else "")
        for r in rows.to_dict(orient="records")
        if not math.isnan(r["ci_low"])
    )


def _simulator_truth(trial: Path) -> str:
    """The image simulator's arm models and each arm's realised mean annual atrophy."""
    simulation = json.loads(
        (trial / "derivatives" / "groundtruth" / "simulation.json").read_text(encoding="utf-8")
    )
    lines = []
    for arm, model in simulation["arm_models"].items():
        rates = [s["annual_atrophy_pct"] for s in simulation["subjects"] if s["arm"] == arm]
        lines.append(
            f"- {arm}: model atrophy {model['atrophy_pct_per_year']} %/year "
            f"(SD {model['atrophy_sd_pct_per_year']}), new lesions "
            f"{model['new_lesions_per_year']}/year; realised mean atrophy "
            f"{sum(rates) / len(rates):.3f} %/year over {len(rates)} subjects"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--n-per-arm", type=int, default=150)
    parser.add_argument("--pcf-effect", type=float, default=0.26, help="ESIMS: 0.26 %%")
    parser.add_argument("--rate-ratio", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=2005)
    parser.add_argument(
        "--groundtruth", type=Path, default=None, help="a trial written by mriproc simulate"
    )
    args = parser.parse_args()
    scenarios = {
        f"effect (PCF change +{args.pcf_effect} %, rate ratio {args.rate_ratio})": (
            args.pcf_effect,
            args.rate_ratio,
        ),
        "null (no effect)": (0.0, 1.0),
    }
    for index, (title, (effect, ratio)) in enumerate(scenarios.items()):
        start = time.perf_counter()
        draws = repeat_comparisons(
            args.repetitions,
            args.n_per_arm,
            pcf_effect=effect,
            rate_ratio=ratio,
            seed=args.seed + index,
        )
        seconds = time.perf_counter() - start
        summary = operating_characteristics(draws, pcf_effect=effect, rate_ratio=ratio)
        print(
            f"\n#### {title}: {args.repetitions} repetitions, {args.n_per_arm} per arm, "
            f"seed {args.seed + index} ({seconds:.0f} s)\n"
        )
        print(_table(summary))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_simulated_tables(
            out,
            args.n_per_arm,
            pcf_effect=args.pcf_effect,
            rate_ratio=args.rate_ratio,
            seed=args.seed,
        )
        result = run_stats(out)
        print(
            f"\n#### mriproc stats on one simulated trial ({args.n_per_arm} per arm, "
            f"true PCF-change difference {args.pcf_effect} %, rate ratio {args.rate_ratio})\n"
        )
        print(_rows(result.analysis.comparisons, ("pcf_change_pct", "cumulative_cel_count")))
    if args.groundtruth is not None:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_stats(
                Path(tmp),
                endpoints=args.groundtruth / "derivatives" / "groundtruth" / "endpoints.tsv",
                participants=args.groundtruth / "participants.tsv",
            )
            print(f"\n#### mriproc stats on the ground truth of {args.groundtruth}\n")
            print(_simulator_truth(args.groundtruth) + "\n")
            outcomes = ("pcf_change_pct", "pbvc", "cumulative_new_enlarging_t2_count")
            print(_rows(result.analysis.comparisons, outcomes))


if __name__ == "__main__":
    main()
