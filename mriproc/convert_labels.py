"""Participant and session labels for converted DICOM studies.

Participants: the mapping file's label for a PatientID, else the participant whose
images a study reproduces exactly (a repeated conversion), else the next free
three-digit number (``001``, ``002``... in PatientID order; PatientIDs never appear
in labels).  Into a dataset that already has participants, a patient that is
neither in the mapping file nor recognised by its images is refused unless a
mapping file is given: it may be an earlier participant, and a new label would
duplicate it.

Sessions: the mapping file's label for a StudyInstanceUID, else the session whose
images a study reproduces, else ``M<months>`` with months = round(days since the
participant's first study / 30.4375), ``M00`` for the first.  The first study's
date is the mapping file's ``baseline_date``, else is derived from a reproduced
session's ``days_from_baseline``, else (a new participant) is the earliest study
date of the run.  Two studies on the same day share a session; a study whose
month label is taken by another day gets ``M<months>d<days>``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mriproc.io.conversion_mapping import ConversionMapping

__all__ = ["DAYS_PER_MONTH", "LabelPlan", "Study", "StudyLabel", "plan_labels", "visit_label"]

DAYS_PER_MONTH = 30.4375  # 365.25 / 12


@dataclass(frozen=True)
class Study:
    """One DICOM study of one patient (StudyDate YYYYMMDD, or empty when unknown)."""

    patient_id: str
    study_uid: str
    study_date: str


@dataclass(frozen=True)
class StudyLabel:
    """Where a study goes: its session label and days from baseline, or why it cannot."""

    session: str | None
    days: int | None
    problem: str | None = None

    @property
    def visit_month(self) -> int | None:
        """Whole months from baseline (the month of the label)."""
        return None if self.days is None else round(self.days / DAYS_PER_MONTH)


@dataclass(frozen=True)
class LabelPlan:
    """Participant label per PatientID, session per StudyInstanceUID, baseline per PatientID."""

    participants: dict[str, str]
    studies: dict[str, StudyLabel]
    baselines: dict[str, str]


def visit_label(days: int) -> str:
    """Session label of a study ``days`` after baseline.

    >>> visit_label(0), visit_label(365), visit_label(731)
    ('M00', 'M12', 'M24')
    """
    return f"M{round(days / DAYS_PER_MONTH):02d}"


def _date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def plan_labels(
    studies: Sequence[Study],
    *,
    mapping: ConversionMapping,
    reproduced: Mapping[str, tuple[str, str]],
    existing_sessions: Mapping[str, Mapping[str, int | None]],
    new_participants_allowed: bool,
) -> LabelPlan:
    """Label every study (see the module docstring).

    ``reproduced`` maps a StudyInstanceUID to the (participant, session) of the
    dataset whose images it reproduces; ``existing_sessions`` maps each participant
    already in the dataset to its sessions and their days from baseline.  Without
    ``new_participants_allowed`` (no mapping file, a dataset with participants), a
    patient recognised neither way gets a problem instead of a label: it might be an
    earlier participant, and a second label would duplicate it.
    """
    patients = sorted({s.patient_id for s in studies})
    participants = {p: mapping.participants[p] for p in patients if p in mapping.participants}
    problems: dict[str, str] = {}
    for patient in patients:
        found = sorted(
            {
                reproduced[s.study_uid][0]
                for s in studies
                if s.patient_id == patient and s.study_uid in reproduced
            }
        )
        if len(found) > 1 or (
            found and patient in participants and found[0] != participants[patient]
        ):
            places = ", ".join(
                f"sub-{p}" for p in sorted({*found, participants.get(patient, found[0])})
            )
            problems[patient] = f"this patient's images are already in the dataset under {places}"
        elif found:
            participants.setdefault(patient, found[0])
        elif patient not in participants and not new_participants_allowed:
            problems[patient] = (
                "the dataset already has participants and this patient is neither in a "
                "mapping file nor recognised by its images (it may be one of them): pass "
                "--mapping (the --mapping-out file of the earlier run; one with only its "
                "header line makes every unlisted patient a new participant)"
            )
    taken = set(existing_sessions) | set(participants.values()) | set(mapping.participants.values())
    number = 1
    for patient in patients:
        if patient not in participants and patient not in problems:
            while f"{number:03d}" in taken:
                number += 1
            participants[patient] = f"{number:03d}"
            taken.add(participants[patient])

    baselines: dict[str, str] = {}
    labels: dict[str, StudyLabel] = {}
    for patient in patients:
        if patient in problems:
            labels.update(
                {
                    s.study_uid: StudyLabel(None, None, problems[patient])
                    for s in studies
                    if s.patient_id == patient
                }
            )
            continue
        own = sorted(
            (s for s in studies if s.patient_id == patient),
            key=lambda s: (s.study_date, s.study_uid),
        )
        participant = participants[patient]
        known = dict(existing_sessions.get(participant, {}))
        baseline = _baseline(patient, own, mapping, reproduced, known)
        if baseline is not None:
            baselines[patient] = baseline.strftime("%Y%m%d")
        for study in own:
            label = _study_label(study, baseline, mapping, reproduced, known, participant)
            labels[study.study_uid] = label
            if label.session is not None and label.session not in known:
                known[label.session] = label.days
    return LabelPlan(participants=participants, studies=labels, baselines=baselines)


def _baseline(
    patient: str,
    studies: Sequence[Study],
    mapping: ConversionMapping,
    reproduced: Mapping[str, tuple[str, str]],
    known: Mapping[str, int | None],
) -> dt.date | None:
    if patient in mapping.baseline_dates:
        return _date(mapping.baseline_dates[patient])
    for study in studies:
        date = _date(study.study_date)
        if study.study_uid in reproduced and date is not None:
            days = known.get(reproduced[study.study_uid][1])
            if days is not None:
                return date - dt.timedelta(days=days)
    if known:  # the participant has sessions, none of them dated by this run
        return None
    dates = [d for d in (_date(s.study_date) for s in studies) if d is not None]
    return min(dates) if dates else None


def _study_label(
    study: Study,
    baseline: dt.date | None,
    mapping: ConversionMapping,
    reproduced: Mapping[str, tuple[str, str]],
    known: Mapping[str, int | None],
    participant: str,
) -> StudyLabel:
    date = _date(study.study_date)
    days = (date - baseline).days if date is not None and baseline is not None else None
    if study.study_uid in mapping.sessions:
        return StudyLabel(mapping.sessions[study.study_uid], days)
    if study.study_uid in reproduced:
        session = reproduced[study.study_uid][1]
        return StudyLabel(session, known.get(session, days))
    if date is None:
        return StudyLabel(None, None, "the study has no date: give its session in a mapping file")
    if days is None:
        return StudyLabel(
            None,
            None,
            f"sub-{participant} already has sessions and none of them is in this DICOM folder, "
            "so its first study's date is unknown: give baseline_date (or the session) "
            "in a mapping file, e.g. the --mapping-out file of the earlier run",
        )
    if days < 0:
        return StudyLabel(
            None, days, f"the study is {-days} days before sub-{participant}'s baseline"
        )
    label = visit_label(days)
    if label in known and known[label] not in (None, days):
        label = f"{label}d{days}"
    return StudyLabel(label, days)
