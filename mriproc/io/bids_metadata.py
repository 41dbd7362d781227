"""Dataset-level metadata of the raw BIDS datasets mriproc writes (simulated, converted).

What the official BIDS validator asks of a dataset beyond its images: a ``README``,
``Authors`` in ``dataset_description.json`` (more than one: a single entry is warned
about), and a data dictionary for every column of ``participants.tsv`` and of each
``sessions.tsv`` (``participants.json``, ``sub-*/sub-*_sessions.json``).
The columns mriproc writes are described here, once; a column it does not know (a
covariate a user gave ``mriproc convert``) gets a description saying where it came
from.  Entries already in a dictionary (written by a user) are kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mriproc.io.atomic import atomic_write_text

__all__ = [
    "COLUMN_DESCRIPTIONS",
    "README_NAMES",
    "ensure_readme",
    "write_column_dictionaries",
]

# Every column of participants.tsv and sessions.tsv that mriproc writes.
COLUMN_DESCRIPTIONS: dict[str, dict[str, Any]] = {
    "participant_id": {"Description": "Participant label: sub-<label>."},
    "arm": {"Description": "Treatment arm the participant was allocated to."},
    "sex": {
        "Description": "Sex (DICOM PatientSex of the participant's first scan, or given).",
        "Levels": {"M": "male", "F": "female", "O": "other"},
    },
    "age": {"Description": "Age at the participant's first scan.", "Units": "year"},
    "edss": {
        "Description": "Expanded Disability Status Scale (Kurtzke) score at baseline, 0-10.",
    },
    "relapses_2y": {"Description": "Number of clinical relapses in the 2 years before baseline."},
    "session_id": {"Description": "Session label: ses-<label>."},
    "visit_month": {
        "Description": "Scheduled visit: months since the baseline visit.",
        "Units": "month",
    },
    "days_from_baseline": {
        "Description": "Days from the baseline session's acquisition date to this session's.",
        "Units": "day",
    },
}
_GIVEN = {
    "Description": "A covariate given with the data (not described further by mriproc).",
}
# The names the BIDS specification accepts for the dataset's README.
README_NAMES = ("README", "README.md", "README.rst", "README.txt")


def write_column_dictionaries(root: str | os.PathLike[str]) -> list[Path]:
    """``participants.json`` and every ``sub-*/sub-*_sessions.json`` for their tables' columns.

    (The validator refuses a top-level ``sessions.json``: each participant's sessions
    table gets its own.)  Returns the files written.
    """
    root = Path(root)
    written = []
    tables = [root / "participants.tsv", *sorted(root.glob("sub-*/sub-*_sessions.tsv"))]
    for table in tables:
        if not table.is_file():
            continue
        header = table.read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
        target = table.with_suffix(".json")
        dictionary = json.loads(target.read_text(encoding="utf-8")) if target.is_file() else {}
        for column in header:
            if column:
                dictionary.setdefault(column, COLUMN_DESCRIPTIONS.get(column, _GIVEN))
        atomic_write_text(target, json.dumps(dictionary, indent=2) + "\n")
        written.append(target)
    return written


def ensure_readme(root: str | os.PathLike[str], text: str) -> Path:
    """The dataset's README: ``text`` written as ``README`` unless it has one already."""
    root = Path(root)
    for name in README_NAMES:
        if (root / name).is_file():
            return root / name
    return atomic_write_text(root / "README", text.rstrip("\n") + "\n")
