"""Endpoint tables with a known arm effect, for validating the statistics.

No images: the values are drawn directly, in the schema of ``endpoints.tsv`` and
``participants.tsv``, so thousands of trials take seconds.  The model is ESIMS-like
(Fazekas et al. 2005: PCF change over 24 months -0.88 ± 0.91 % with placebo):

* brain volume change: each participant's true change is linear in time, with a
  mean of ``atrophy_pct`` at the last visit in the reference arm, ``atrophy_pct +
  pcf_effect`` in the other arms, a between-participant SD of ``atrophy_sd_pct``, and
  a shift of ``cel_slope_pct`` per baseline CEL above the mean (inflammation goes with
  atrophy, so adjusting for baseline CEL helps); PCF change and PBVC are that change
  plus measurement error (SD 0.25 % and 0.15 %);
* lesion activity: a per-participant gamma frailty (shape ``dispersion_shape``) times
  a rate per follow-up visit (CEL ``cel_rate``, new ``new_rate``, enlarging
  ``enlarging_rate``), multiplied by ``rate_ratio`` outside the reference arm; the
  counts are Poisson given the frailty, so the cumulative counts are negative
  binomial;
* active scan: at least one CEL or at least one new or enlarging lesion.

The true effects are exact: the difference in mean PCF change (and PBVC) at the last
visit is ``pcf_effect``, and the ratio of mean counts is ``rate_ratio``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mriproc.endpoints import ENDPOINTS
from mriproc.io.atomic import atomic_write_text
from mriproc.tables import EndpointRow, write_endpoints

__all__ = ["TrialModel", "simulate_endpoint_table", "write_simulated_tables"]

_UNIT = {e.name: e.unit for e in ENDPOINTS}


@dataclass(frozen=True)
class TrialModel:
    """Parameters of the simulated trial's reference arm (see the module docstring)."""

    atrophy_pct: float = -0.88
    atrophy_sd_pct: float = 0.85
    pcf_error_sd_pct: float = 0.25
    pbvc_error_sd_pct: float = 0.15
    cel_slope_pct: float = -0.15
    baseline_cel_rate: float = 0.8
    cel_rate: float = 0.6
    new_rate: float = 1.5
    enlarging_rate: float = 0.5
    dispersion_shape: float = 0.7


def simulate_endpoint_table(
    n_per_arm: int,
    *,
    pcf_effect: float = 0.0,
    rate_ratio: float = 1.0,
    seed: int = 0,
    arms: Sequence[str] = ("placebo", "ivig"),
    months: Sequence[int] = (0, 12, 24),
    model: TrialModel | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw ``(endpoints, participants)`` of a trial with a known arm effect.

    ``endpoints`` has the columns of ``endpoints.tsv`` (as :func:`mriproc.tables.read_table`
    returns it); ``participants`` those of ``participants.tsv`` (``participant_id, arm,
    sex, age, edss, relapses_2y``).  The first arm is the reference; the others get
    ``pcf_effect`` (difference in mean PCF change at the last visit, %) and
    ``rate_ratio`` (on every lesion count).  Same seed, same tables.

    >>> endpoints, participants = simulate_endpoint_table(2, seed=1)
    >>> len(participants), sorted(set(endpoints["session"]))
    (4, ['ses-M00', 'ses-M12', 'ses-M24'])
    """
    if n_per_arm < 1:
        raise ValueError("n_per_arm must be at least 1")
    if not (len(months) >= 2 and months[0] == 0 and list(months) == sorted(set(months))):
        raise ValueError(f"months must start at 0 and increase, got {list(months)}")
    if rate_ratio <= 0:
        raise ValueError("rate_ratio must be positive")
    m = model or TrialModel()
    rng = np.random.default_rng(seed)
    last = float(months[-1])
    endpoint_rows: list[tuple[str, str, float, str, str, float]] = []
    participant_rows: list[dict[str, object]] = []
    for a, arm in enumerate(arms):
        treated = a > 0
        for i in range(n_per_arm):
            pid = f"sub-{a + 1}{i + 1:04d}"
            participant_rows.append(
                {
                    "participant_id": pid,
                    "arm": arm,
                    "sex": str(rng.choice(["F", "M"], p=[0.6, 0.4])),
                    "age": int(rng.integers(30, 61)),
                    "edss": float(np.clip(np.round(rng.normal(5.0, 1.0) * 2) / 2, 3.0, 6.5)),
                    "relapses_2y": int(rng.poisson(0.8)),
                }
            )
            frailty = rng.gamma(m.dispersion_shape, 1.0 / m.dispersion_shape)
            rate = frailty * (rate_ratio if treated else 1.0)
            cel0 = int(rng.poisson(m.baseline_cel_rate * frailty))
            # Centred on the population mean of baseline CEL, so the arm means stay exact.
            true_change = (
                m.atrophy_pct
                + (pcf_effect if treated else 0.0)
                + m.cel_slope_pct * (cel0 - m.baseline_cel_rate)
                + rng.normal(0.0, m.atrophy_sd_pct)
            )
            pcf0 = float(rng.normal(0.80, 0.03))
            bpf0 = float(rng.normal(0.82, 0.02))
            t2_count = int(rng.negative_binomial(2, 2 / (2 + 20)))
            t2_volume = float(rng.lognormal(np.log(12.0), 0.8))
            new_total = enlarging_total = 0
            for month in months:
                session = f"ses-M{month:02d}"
                fraction = month / last
                scan: dict[str, float] = {}
                if month == 0:
                    cel = cel0
                else:
                    cel = int(rng.poisson(m.cel_rate * rate))
                    new = int(rng.poisson(m.new_rate * rate))
                    enlarging = int(rng.poisson(m.enlarging_rate * rate))
                    new_total += new
                    enlarging_total += enlarging
                    change = true_change * fraction
                    pcf_change = change + rng.normal(0.0, m.pcf_error_sd_pct)
                    scan |= {
                        "new_t2_count": new,
                        "enlarging_t2_count": enlarging,
                        "new_t2_count_vs_baseline": new_total,
                        "enlarging_t2_count_vs_baseline": enlarging_total,
                        "active_scan": int(cel > 0 or new + enlarging > 0),
                        "pcf_change_pct": pcf_change,
                        "pbvc": change + rng.normal(0.0, m.pbvc_error_sd_pct),
                    }
                    t2_count += new
                    t2_volume += 0.3 * new + 0.2 * enlarging
                black_holes = int(rng.binomial(t2_count, 0.3))
                scan |= {
                    "t2_lesion_volume": t2_volume,
                    "t2_lesion_count": t2_count,
                    "black_hole_volume": 0.2 * t2_volume * float(rng.uniform(0.5, 1.5)),
                    "black_hole_count": black_holes,
                    "cel_count": cel,
                    "cel_volume": 0.08 * cel * float(rng.lognormal(0.0, 0.3)),
                    "pcf": pcf0 * (1.0 + scan.get("pcf_change_pct", 0.0) / 100.0),
                    "bpf": bpf0 * (1.0 + scan.get("pbvc", 0.0) / 100.0),
                }
                endpoint_rows.extend(
                    (pid, session, float(month), arm, e.name, float(scan[e.name]))
                    for e in ENDPOINTS
                    if e.name in scan
                )
    endpoints = pd.DataFrame(
        endpoint_rows,
        columns=["participant_id", "session", "visit_month", "arm", "endpoint", "value"],
    )
    endpoints["unit"] = endpoints["endpoint"].map(_UNIT)
    endpoints["status"] = "ok"
    endpoints["note"] = "simulated"
    return endpoints, pd.DataFrame(participant_rows)


def write_simulated_tables(
    out_dir: Path,
    n_per_arm: int,
    *,
    pcf_effect: float = 0.0,
    rate_ratio: float = 1.0,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write a simulated trial's tables as ``mriproc run`` would: ``OUT_DIR/mriproc/
    endpoints.tsv`` (with its data dictionary and wide table) and ``OUT_DIR/participants.tsv``.

    Returns the two paths; ``mriproc stats OUT_DIR`` then analyses them.
    """
    endpoints, participants = simulate_endpoint_table(
        n_per_arm, pcf_effect=pcf_effect, rate_ratio=rate_ratio, seed=seed
    )
    rows = [
        EndpointRow(
            r["participant_id"],
            r["session"],
            r["visit_month"],
            r["arm"],
            r["endpoint"],
            r["value"],
            note=r["note"],
        )
        for r in endpoints.to_dict(orient="records")
    ]
    long_path, _ = write_endpoints(rows, out_dir / "mriproc", protocol_name="simulated")
    participants_path = out_dir / "participants.tsv"
    atomic_write_text(
        participants_path, participants.to_csv(sep="\t", index=False, lineterminator="\n")
    )
    return long_path, participants_path
