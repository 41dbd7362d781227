"""BIDS input layer: participants, sessions and the contrasts a protocol needs.

:func:`discover_dataset` indexes a BIDS dataset with pybids and sorts every
anatomical image of every session into the protocol's contrast roles (``PDw``,
``T2w``, ``FLAIR``, ``T1w``, ``T1w_gad``...).  Each role of each session ends up
either usable (one file that passed :func:`~mriproc.io.nifti.check_image`) or with
a reason why not (missing, ambiguous, corrupt, geometry of a dual echo differs);
files that fit no role are listed as ignored with the reason.  Nothing is dropped
silently.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from bids import BIDSLayout, BIDSLayoutIndexer

from mriproc.config import Protocol
from mriproc.endpoints import ENDPOINTS
from mriproc.io.nifti import ImageCheck, check_image, geometry_mismatch

__all__ = [
    "BidsDataset",
    "DatasetError",
    "Participant",
    "SessionInputs",
    "discover_dataset",
]

logger = logging.getLogger(__name__)

_NIFTI_EXTENSIONS = (".nii", ".nii.gz")


class DatasetError(ValueError):
    """A folder that cannot be read as a BIDS dataset at all."""


@dataclass(frozen=True)
class Participant:
    """One row of ``participants.tsv`` (label without the ``sub-`` prefix)."""

    label: str
    arm: str | None
    covariates: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionInputs:
    """The protocol's contrasts found in one session, and what is wrong with the rest."""

    participant: str
    session: str
    visit_month: float | None
    visit_month_source: str
    files: dict[str, Path]
    problems: dict[str, str]
    ignored: tuple[tuple[Path, str], ...] = ()
    notes: tuple[str, ...] = ()
    orientations: dict[str, str] = field(default_factory=dict)  # role -> voxel axis codes

    @property
    def participant_id(self) -> str:
        """Participant label with its ``sub-`` prefix."""
        return f"sub-{self.participant}"

    @property
    def session_id(self) -> str:
        """Session label with its ``ses-`` prefix."""
        return f"ses-{self.session}"


@dataclass(frozen=True)
class BidsDataset:
    """What :func:`discover_dataset` found."""

    root: Path
    name: str
    participants: dict[str, Participant]
    sessions: tuple[SessionInputs, ...]
    problems: tuple[str, ...] = ()
    # Listed in participants.tsv (and selected) but without a sub-<label> folder.
    without_data: tuple[str, ...] = ()

    def visits_of(self, participant: str) -> list[SessionInputs]:
        """The participant's sessions with a known visit month, earliest first."""
        dated = [
            s for s in self.sessions if s.participant == participant and s.visit_month is not None
        ]
        return sorted(dated, key=lambda s: (s.visit_month or 0.0, s.session))

    def baseline_session(self, participant: str) -> str | None:
        """The participant's earliest session with a known visit month."""
        visits = self.visits_of(participant)
        return visits[0].session if visits else None

    def unavailable_endpoints(self, session: SessionInputs, protocol: Protocol) -> dict[str, str]:
        """Endpoint name -> why it cannot be computed for ``session``.

        An endpoint needs the protocol's contrasts for its group in this session and,
        when it compares visits, in the baseline or previous visit too.  Comparisons
        do not apply at baseline and are not listed there.
        """
        visits = self.visits_of(session.participant)
        position = next((i for i, v in enumerate(visits) if v is session), None)
        missing: dict[str, str] = {}
        for endpoint in ENDPOINTS:
            needs = protocol.required_contrasts(endpoint.group)
            lacking = [role for role in needs if role not in session.files]
            if endpoint.compares_with != "none" and position != 0:
                if position is None:
                    missing[endpoint.name] = "visit month unknown"
                    continue
                other = visits[0] if endpoint.compares_with == "baseline" else visits[position - 1]
                lacking += [
                    f"{role} at {other.session_id}"
                    for role in protocol.compared_contrasts(endpoint.group)
                    if role not in other.files
                ]
            elif endpoint.compares_with != "none":
                continue  # a comparison does not apply at baseline
            if lacking:
                missing[endpoint.name] = "needs " + ", ".join(lacking)
            elif endpoint.group in ("pcf", "pbvc"):
                # The tissue model needs enough of its channels (at both visits).
                compared = [session] if endpoint.compares_with == "none" else [visits[0], session]
                for visit in compared:
                    reason = protocol.tissue_model_lacks(visit.files)
                    if reason:
                        at = "" if visit is session else f" at {visit.session_id}"
                        missing[endpoint.name] = reason + at
                        break
        return missing


def discover_dataset(
    bids_dir: str | os.PathLike[str],
    protocol: Protocol,
    *,
    participant_labels: Sequence[str] | None = None,
    session_labels: Sequence[str] | None = None,
    check_images: bool = True,
) -> BidsDataset:
    """Index ``bids_dir`` and sort its anatomical images into the protocol's roles.

    Parameters
    ----------
    bids_dir
        Root of a BIDS dataset (holding ``dataset_description.json``).
    protocol
        Decides which contrasts are looked for and how visits map to months.
    participant_labels, session_labels
        Restrict to these labels (with or without the ``sub-``/``ses-`` prefix).
    check_images
        Read every image fully and report corrupt ones (see ``check_image``).
    """
    root = Path(bids_dir).resolve()
    if not root.is_dir():
        raise DatasetError(f"{bids_dir}: no such folder")
    description_path = root / "dataset_description.json"
    if not description_path.is_file():
        raise DatasetError(f"{root}: not a BIDS dataset (dataset_description.json is missing)")
    try:
        description = json.loads(description_path.read_text(encoding="utf-8"))
        name = str(description.get("Name", root.name))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise DatasetError(f"{description_path}: not valid JSON ({err})") from err

    layout = BIDSLayout(
        root,
        validate=False,
        indexer=BIDSLayoutIndexer(validate=False, index_metadata=False),
    )
    wanted_subjects = _strip(participant_labels, "sub-")
    wanted_sessions = _strip(session_labels, "ses-")
    subjects = sorted(layout.get_subjects())
    problems: list[str] = []
    if wanted_subjects is not None:
        unknown = sorted(set(wanted_subjects) - set(subjects))
        if unknown:
            problems.append("participant(s) not found: " + ", ".join(f"sub-{s}" for s in unknown))
        subjects = [s for s in subjects if s in wanted_subjects]
    participants, listed = _read_participants(root, subjects, problems)
    without_data = sorted(
        label
        for label in listed - set(layout.get_subjects())
        if wanted_subjects is None or label in wanted_subjects
    )
    problems += [
        f"sub-{label}: listed in participants.tsv but has no data (no sub-{label} folder "
        "with images)"
        for label in without_data
    ]

    sessions: list[SessionInputs] = []
    all_sessions: set[str] = set()
    for subject in subjects:
        images = layout.get(subject=subject, datatype="anat", extension=list(_NIFTI_EXTENSIONS))
        by_session: dict[str | None, list[Any]] = {}
        for image in images:
            by_session.setdefault(image.entities.get("session"), []).append(image)
        session_dirs = sorted(
            p.name.removeprefix("ses-")
            for p in (root / f"sub-{subject}").glob("ses-*")
            if p.is_dir()
        )
        if None in by_session:
            names = ", ".join(Path(i.path).name for i in by_session.pop(None))
            problems.append(
                f"sub-{subject}: images without a session ({names}); mriproc needs one "
                "ses-<label> folder per visit"
            )
        months = _read_session_months(root, subject, problems)
        subject_sessions = sorted(set(session_dirs) | {s for s in by_session if s is not None})
        all_sessions.update(subject_sessions)
        for session in subject_sessions:
            if wanted_sessions is not None and session not in wanted_sessions:
                continue
            sessions.append(
                _sort_session(
                    subject,
                    session,
                    by_session.get(session, []),
                    protocol,
                    months,
                    check_images=check_images,
                )
            )
    if not subjects:
        problems.append("no participants (sub-<label> folders) found")
    if wanted_sessions is not None and subjects:
        unknown = sorted(wanted_sessions - all_sessions)
        if unknown:
            problems.append("session(s) not found: " + ", ".join(f"ses-{s}" for s in unknown))
    return BidsDataset(
        root=root,
        name=name,
        participants=participants,
        sessions=tuple(sessions),
        problems=tuple(problems),
        without_data=tuple(without_data),
    )


def _strip(labels: Sequence[str] | None, prefix: str) -> set[str] | None:
    if labels is None:
        return None
    return {label.removeprefix(prefix) for label in labels}


def _read_participants(
    root: Path, subjects: Iterable[str], problems: list[str]
) -> tuple[dict[str, Participant], set[str]]:
    """The subjects' rows of ``participants.tsv``, and every label the table lists."""
    path = root / "participants.tsv"
    table: pd.DataFrame | None = None
    if path.is_file():
        table = _read_tsv(path, problems)
        if table is not None:
            if "participant_id" not in table.columns:
                problems.append("participants.tsv: has no participant_id column")
                table = None
            elif "arm" not in table.columns:
                problems.append("participants.tsv: has no arm column; arm is n/a for everyone")
    else:
        problems.append("participants.tsv is missing; arm and covariates are n/a")

    rows: dict[str, dict[str, Any]] = {}
    if table is not None:
        for record in table.to_dict(orient="records"):
            label = str(record["participant_id"]).removeprefix("sub-")
            rows[label] = {
                str(k): (None if pd.isna(v) else v)
                for k, v in record.items()
                if k != "participant_id"
            }
    participants: dict[str, Participant] = {}
    for subject in subjects:
        covariates = dict(rows.get(subject, {}))
        if table is not None and subject not in rows:
            problems.append(f"sub-{subject}: not listed in participants.tsv; arm is n/a")
        arm = covariates.pop("arm", None)
        participants[subject] = Participant(label=subject, arm=arm, covariates=covariates)
    return participants, set(rows)


def _read_session_months(root: Path, subject: str, problems: list[str]) -> dict[str, float]:
    path = root / f"sub-{subject}" / f"sub-{subject}_sessions.tsv"
    if not path.is_file():
        return {}
    table = _read_tsv(path, problems)
    if table is None or "session_id" not in table.columns or "visit_month" not in table.columns:
        return {}
    months: dict[str, float] = {}
    for session_id, month in zip(table["session_id"], table["visit_month"], strict=True):
        session = str(session_id).removeprefix("ses-")
        if session in months:
            problems.append(f"{path.name}: {session_id} is listed twice; its months are not used")
            months[session] = math.nan
            continue
        if pd.isna(month):
            continue
        try:
            value = float(month)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            problems.append(f"{path.name}: visit_month {month!r} of {session_id} is not a number")
            continue
        months[session] = value
    return {session: value for session, value in months.items() if math.isfinite(value)}


def _read_tsv(path: Path, problems: list[str]) -> pd.DataFrame | None:
    """A BIDS TSV as strings (``n/a`` missing), or None with the reason added to ``problems``."""
    try:
        # index_col=False plus ParserWarning as an error: a row with more cells than
        # the header is reported instead of silently becoming an index or dropped.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                path,
                sep="\t",
                dtype=str,
                na_values=["n/a"],
                keep_default_na=False,
                index_col=False,
            )
    except (
        pd.errors.ParserError,
        pd.errors.ParserWarning,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
    ) as err:
        problems.append(f"{path.name}: cannot be read ({err})".replace("\n", " "))
        return None


def _sort_session(
    subject: str,
    session: str,
    images: list[Any],
    protocol: Protocol,
    months: dict[str, float],
    *,
    check_images: bool,
) -> SessionInputs:
    role_of = {(spec.suffix, spec.ce): role for role, spec in protocol.contrasts.items()}
    candidates: dict[str, list[Path]] = {}
    ignored: list[tuple[Path, str]] = []
    prefix = f"sub-{subject}_ses-{session}_"
    for image in sorted(images, key=lambda i: i.path):
        path = Path(image.path)
        entities = image.entities
        if not path.name.startswith(prefix):
            ignored.append((path, f"not a BIDS file name (expected {prefix}..._<suffix>.nii.gz)"))
            continue
        key = (entities.get("suffix"), entities.get("ceagent"))
        role = role_of.get(key)
        if role is None:
            what = f"suffix {key[0]!r}" + (f" with ce-{key[1]}" if key[1] else "")
            ignored.append((path, f"{what} is not a contrast of protocol {protocol.name!r}"))
            continue
        candidates.setdefault(role, []).append(path)

    files: dict[str, Path] = {}
    problems: dict[str, str] = {}
    checks: dict[str, ImageCheck] = {}
    notes: list[str] = []
    orientations: dict[str, str] = {}
    for role in protocol.contrasts:
        found = candidates.get(role, [])
        if not found:
            problems[role] = "missing"
        elif len(found) > 1:
            names = ", ".join(p.name for p in found)
            problems[role] = f"{len(found)} files match ({names}); keep one or remove the others"
        elif check_images:
            check = check_image(found[0])
            checks[role] = check
            notes.extend(f"{found[0].name}: {note}" for note in check.notes)
            if check.orientation:
                orientations[role] = check.orientation
            if check.ok:
                files[role] = found[0]
            else:
                problems[role] = check.reason()
        else:
            files[role] = found[0]

    if protocol.dual_echo and all(role in checks and role in files for role in protocol.dual_echo):
        first, second = protocol.dual_echo
        mismatch = geometry_mismatch(
            checks[first], checks[second], tolerance_mm=protocol.geometry_tolerance_mm
        )
        if mismatch:
            # The reading-space echo stays usable; its partner cannot be paired with it.
            partner = second if first == protocol.reading_space else first
            problems[partner] = (
                f"{files[first].name} and {files[second].name} should share one dual-echo "
                f"geometry but {mismatch}"
            )
            del files[partner]

    if session in months:
        month: float | None = months[session]
        source = "sessions.tsv"
    elif session in protocol.visits.months:
        month, source = protocol.visits.months[session], f"protocol {protocol.name}"
    else:
        month, source = None, "unknown"
        notes.append(
            f"visit month unknown: add visit_month to sub-{subject}_sessions.tsv or ses-{session} "
            "to the protocol's visits.months"
        )
    logger.debug("sub-%s ses-%s: found %s, problems %s", subject, session, sorted(files), problems)
    return SessionInputs(
        participant=subject,
        session=session,
        visit_month=month,
        visit_month_source=source,
        files=files,
        problems=problems,
        ignored=tuple(ignored),
        notes=tuple(notes),
        orientations=orientations,
    )


# --------------------------------------------------------------------------- writing


# BIDS entity order in file names (the subset mriproc writes).
_ENTITY_ORDER = ("acq", "ce", "rec", "run", "echo", "from", "to", "mode", "space", "label", "desc")


def bids_path(
    root: str | os.PathLike[str],
    participant: str,
    session: str,
    *,
    suffix: str,
    datatype: str = "anat",
    extension: str = ".nii.gz",
    **entities: str | None,
) -> Path:
    """BIDS path from labels without prefixes; entities in BIDS order, None ones left out.

    >>> bids_path("/d", "01", "M00", suffix="mask", desc="brain", space="T2w").as_posix()
    '/d/sub-01/ses-M00/anat/sub-01_ses-M00_space-T2w_desc-brain_mask.nii.gz'
    """
    unknown = set(entities) - set(_ENTITY_ORDER)
    if unknown:
        raise ValueError(f"unsupported BIDS entities: {sorted(unknown)}")
    parts = [f"sub-{participant}", f"ses-{session}"]
    parts += [f"{key}-{entities[key]}" for key in _ENTITY_ORDER if entities.get(key)]
    name = "_".join([*parts, suffix]) + extension
    return Path(root) / f"sub-{participant}" / f"ses-{session}" / datatype / name


def anat_path(
    root: str | os.PathLike[str],
    participant: str,
    session: str,
    *,
    suffix: str,
    ce: str | None = None,
) -> Path:
    """BIDS path of a raw anatomical image.

    >>> anat_path("/d", "01", "M00", suffix="T1w", ce="gadolinium").as_posix()
    '/d/sub-01/ses-M00/anat/sub-01_ses-M00_ce-gadolinium_T1w.nii.gz'
    """
    return bids_path(root, participant, session, suffix=suffix, ce=ce)


def write_raw_dataset_files(
    root: str | os.PathLike[str],
    *,
    name: str,
    participants: pd.DataFrame,
    session_months: dict[str, dict[str, float]],
    authors: Sequence[str],
    readme: str,
) -> None:
    """Write the dataset-level files of a raw dataset mriproc makes up.

    ``dataset_description.json`` (with ``authors``), ``README`` (``readme``),
    ``participants.tsv`` and per-subject ``sessions.tsv``, and the data dictionaries
    of their columns (:mod:`mriproc.io.bids_metadata`).  ``participants`` needs a
    ``participant_id`` column (with ``sub-``); ``session_months`` maps participant
    label -> session label -> visit month.
    """
    from mriproc.io.atomic import atomic_write_text
    from mriproc.io.bids_metadata import ensure_readme, write_column_dictionaries

    root = Path(root)
    description = {
        "Name": name,
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "Authors": list(authors),
    }
    atomic_write_text(root / "dataset_description.json", json.dumps(description, indent=2) + "\n")
    atomic_write_text(
        root / "participants.tsv",
        participants.to_csv(sep="\t", index=False, na_rep="n/a", lineterminator="\n"),
    )
    for participant, months in session_months.items():
        table = pd.DataFrame(
            {"session_id": [f"ses-{s}" for s in months], "visit_month": list(months.values())}
        )
        atomic_write_text(
            root / f"sub-{participant}" / f"sub-{participant}_sessions.tsv",
            table.to_csv(sep="\t", index=False, lineterminator="\n"),
        )
    ensure_readme(root, readme)
    write_column_dictionaries(root)
