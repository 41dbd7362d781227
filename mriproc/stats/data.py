"""The analysis data set: endpoint values joined with ``participants.tsv``.

``endpoints.tsv`` gives one value per participant x session x endpoint, or ``n/a``
with a status saying why.  Statistics use only values with status ``ok``; every
other row is kept in :attr:`TrialData.excluded` so that each table can say how many
scans it left out and why.  A missing value never becomes a zero.

The arm comes from ``participants.tsv`` (it also carries the covariates of the
subgroup analyses); the arm column of ``endpoints.tsv`` must agree with it where
both are given.  The reference arm is ``placebo`` when there is one, else the first
arm in sorted order, unless chosen explicitly.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd

from mriproc.endpoints import ENDPOINTS
from mriproc.tables import ENDPOINT_COLUMNS, NA, read_table

__all__ = [
    "BASELINE_ENDPOINTS",
    "StatsInputError",
    "TrialData",
    "find_participants",
    "load_trial",
    "prepare_trial",
    "read_participants",
    "unit_of",
]

# Endpoints measured on one scan alone: summarised at baseline and as change from it.
BASELINE_ENDPOINTS = tuple(e.name for e in ENDPOINTS if e.compares_with == "none")
_UNIT = {e.name: e.unit for e in ENDPOINTS}
_SESSION_MONTH = re.compile(r"^ses-M(\d+)$")


class StatsInputError(ValueError):
    """An input of ``mriproc stats`` that is missing or unusable (names the file)."""


@dataclass(frozen=True)
class TrialData:
    """What the statistics work on.

    Attributes
    ----------
    values
        One row per usable value: ``participant_id, session, visit_month, arm,
        endpoint, value`` (status ``ok``, arm known).
    excluded
        One row per value left out: ``participant_id, session, visit_month, arm,
        endpoint, status`` (the reason).
    scans
        One row per scan listed in ``endpoints.tsv``: ``participant_id, session,
        visit_month, arm`` (arm may be missing).
    participants
        ``participants.tsv`` restricted to participants with an arm.
    arms
        Every arm, the reference first, then the others in sorted order.
    """

    values: pd.DataFrame
    excluded: pd.DataFrame
    scans: pd.DataFrame
    participants: pd.DataFrame
    arms: tuple[str, ...]
    baseline_month: float
    followup_months: tuple[float, ...]

    @property
    def reference_arm(self) -> str:
        """The arm every other arm is compared with."""
        return self.arms[0]

    def session_label(self, month: float) -> str:
        """The session label(s) of a visit month, e.g. ``ses-M12``."""
        labels = sorted(set(self.scans.loc[self.scans["visit_month"] == month, "session"]))
        return "/".join(labels) if labels else f"month {month:g}"

    def values_of(self, endpoint: str, month: float | None = None) -> pd.Series:
        """Usable values of ``endpoint`` (at ``month``), indexed by participant and month."""
        rows = self.values[self.values["endpoint"] == endpoint]
        if month is not None:
            rows = rows[rows["visit_month"] == month]
        return rows.set_index(["participant_id", "visit_month"])["value"]

    def restricted(self, participant_ids: Collection[str]) -> TrialData:
        """The same trial with only ``participant_ids`` (the arms stay as they are)."""

        def keep(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["participant_id"].isin(participant_ids)].reset_index(drop=True)

        return replace(
            self,
            values=keep(self.values),
            excluded=keep(self.excluded),
            scans=keep(self.scans),
            participants=keep(self.participants),
        )


def find_participants(out_dir: Path, participants: Path | None = None) -> Path:
    """The ``participants.tsv`` to use for the trial in ``out_dir``.

    In order: ``participants`` when given; ``OUT_DIR/mriproc/participants.tsv``;
    ``OUT_DIR/participants.tsv``; ``participants.tsv`` of the source dataset recorded
    in ``OUT_DIR/mriproc/dataset_description.json`` (``mriproc run`` records its
    BIDS folder there).
    """
    if participants is not None:
        if not participants.is_file():
            raise StatsInputError(f"{participants}: participants file not found")
        return participants
    candidates = [out_dir / "mriproc" / "participants.tsv", out_dir / "participants.tsv"]
    description = out_dir / "mriproc" / "dataset_description.json"
    if description.is_file():
        try:
            sources = json.loads(description.read_text(encoding="utf-8")).get("SourceDatasets", [])
        except (json.JSONDecodeError, AttributeError):
            sources = []
        for source in sources if isinstance(sources, list) else []:
            url = str(source.get("URL", "")) if isinstance(source, dict) else ""
            if url.startswith("file:"):
                candidates.append(Path(url2pathname(urlparse(url).path)) / "participants.tsv")
            elif url:
                candidates.append(Path(url) / "participants.tsv")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise StatsInputError(
        "no participants.tsv found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "); give it with --participants FILE"
    )


def read_participants(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``participants.tsv`` with ``participant_id`` (``sub-`` added) and ``arm`` as text."""
    path = Path(path)
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            na_values=[NA],
            keep_default_na=False,
            dtype={"participant_id": "string", "arm": "string", "sex": "string"},
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise StatsInputError(f"{path}: cannot read it as a TSV table ({err})") from err
    for column in ("participant_id", "arm"):
        if column not in frame.columns:
            raise StatsInputError(
                f"{path}: has no {column} column (columns: {', '.join(map(str, frame.columns))})"
            )
    frame["participant_id"] = [
        pid if pid.startswith("sub-") else f"sub-{pid}"
        for pid in frame["participant_id"].astype(str)
    ]
    if frame["participant_id"].duplicated().any():
        duplicated = sorted(set(frame.loc[frame["participant_id"].duplicated(), "participant_id"]))
        raise StatsInputError(f"{path}: participants listed twice: {', '.join(duplicated)}")
    return frame.sort_values("participant_id").reset_index(drop=True)


def _visit_months(scans: pd.DataFrame) -> pd.Series:
    """Visit month per row: the ``visit_month`` column, else the month of ``ses-M<nn>``."""
    parsed = scans["session"].astype(str).str.extract(_SESSION_MONTH, expand=False)
    from_label = pd.to_numeric(parsed, errors="coerce")
    months = pd.to_numeric(scans["visit_month"], errors="coerce")
    return months.fillna(from_label).astype(float)


def _reference(arms: Sequence[str], reference_arm: str | None) -> tuple[str, ...]:
    others = sorted(set(arms))
    if reference_arm is None:
        reference_arm = "placebo" if "placebo" in others else (others[0] if others else "")
    elif reference_arm not in others:
        raise StatsInputError(
            f"reference arm {reference_arm!r} is not an arm of the trial "
            f"(arms: {', '.join(others) or 'none'})"
        )
    return (reference_arm, *(a for a in others if a != reference_arm)) if others else ()


def prepare_trial(
    endpoints: pd.DataFrame,
    participants: pd.DataFrame,
    *,
    reference_arm: str | None = None,
    sources: tuple[str, str] = ("endpoints.tsv", "participants.tsv"),
) -> TrialData:
    """Join the endpoint table with the participants' arms; split usable from excluded.

    ``endpoints`` is ``endpoints.tsv`` as :func:`mriproc.tables.read_table` returns it;
    ``participants`` as :func:`read_participants` returns it.  ``sources`` names the two
    files in error messages.
    """
    lacking = [c for c in ENDPOINT_COLUMNS if c not in endpoints.columns]
    if lacking:
        raise StatsInputError(f"{sources[0]}: lacks the column(s) {', '.join(lacking)}")
    table = endpoints.copy()
    table["participant_id"] = table["participant_id"].astype(str)
    table["session"] = table["session"].astype(str)
    table["visit_month"] = _visit_months(table)
    arm_of = {
        str(pid): (None if pd.isna(arm) else str(arm))
        for pid, arm in zip(participants["participant_id"], participants["arm"], strict=True)
    }
    conflicts = sorted(
        f"{pid} ({arm} in {sources[0]}, {arm_of[pid]} in {sources[1]})"
        for pid, arm in zip(table["participant_id"], table["arm"], strict=True)
        if not pd.isna(arm) and arm_of.get(pid) not in (None, str(arm))
    )
    if conflicts:
        raise StatsInputError(
            "the arm differs between the endpoint table and the participants file for "
            + ", ".join(dict.fromkeys(conflicts))
        )
    table["arm"] = [arm_of.get(pid) for pid in table["participant_id"]]
    status = table["status"].astype(str)
    reason = pd.Series(
        [
            s if s != "ok" else ("" if math.isfinite(v) else "value missing with status ok")
            for s, v in zip(status, table["value"].astype(float), strict=True)
        ],
        index=table.index,
        dtype=object,
    )
    no_month = table["visit_month"].isna()
    reason[no_month] = "visit month unknown (no visit_month and no ses-M<nn> label)"
    no_arm = table["arm"].isna()
    reason[no_arm] = f"arm unknown (participant not in {sources[1]} or its arm is n/a)"
    usable = reason == ""
    columns = ["participant_id", "session", "visit_month", "arm", "endpoint"]
    values = table.loc[usable, [*columns, "value"]].astype({"value": float})
    excluded = table.loc[~usable, columns].assign(status=reason[~usable])
    scans = table[["participant_id", "session", "visit_month", "arm"]].drop_duplicates()
    order = ["participant_id", "visit_month", "session"]
    arms = _reference([a for a in arm_of.values() if a is not None], reference_arm)
    if not arms:
        raise StatsInputError(f"{sources[1]}: no participant has an arm")
    months = sorted(set(table["visit_month"].dropna()))
    baseline = 0.0 if 0.0 in months or not months else float(months[0])
    with_arm = participants[participants["arm"].notna()].copy()
    with_arm["arm"] = with_arm["arm"].astype(str)
    return TrialData(
        values=values.sort_values([*order, "endpoint"]).reset_index(drop=True),
        excluded=excluded.sort_values([*order, "endpoint"]).reset_index(drop=True),
        scans=scans.sort_values(order).reset_index(drop=True),
        participants=with_arm.reset_index(drop=True),
        arms=arms,
        baseline_month=baseline,
        followup_months=tuple(float(m) for m in months if m > baseline),
    )


def load_trial(
    endpoints_path: Path, participants_path: Path, *, reference_arm: str | None = None
) -> TrialData:
    """Read ``endpoints.tsv`` and ``participants.tsv`` and prepare the analysis data."""
    if not endpoints_path.is_file():
        raise StatsInputError(f"{endpoints_path}: endpoint table not found (run mriproc run first)")
    try:
        endpoints = read_table(endpoints_path)
    except (ValueError, OSError) as err:
        raise StatsInputError(f"{endpoints_path}: not a readable endpoint table ({err})") from err
    participants = read_participants(participants_path)
    return prepare_trial(
        endpoints,
        participants,
        reference_arm=reference_arm,
        sources=(str(endpoints_path), str(participants_path)),
    )


def unit_of(endpoint: str) -> str:
    """The unit of a catalogue endpoint."""
    return _UNIT[endpoint]
