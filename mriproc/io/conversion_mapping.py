"""The mapping file of ``mriproc convert``: labels and roles chosen by the user.

A tab-separated file with the columns ``field``, ``value``, ``set``, ``to`` (and an
optional ``note``).  Each row says: the DICOM series whose ``field`` equals
``value`` get ``set`` = ``to``.  Allowed rows:

=================  ===============  =========================================
field              set              to
=================  ===============  =========================================
PatientID          participant      participant label (letters and digits)
PatientID          baseline_date    YYYYMMDD: sessions are months from it
StudyInstanceUID   session          session label (letters and digits)
SeriesInstanceUID  role             PDw_T2w, PDw, T2w, T1w, T1w_gad, FLAIR, skip
SeriesDescription  role             (as above; SeriesInstanceUID rows win)
=================  ===============  =========================================

``--mapping-out`` writes the same format (every patient, study and series of the
run), so that the next run given it as ``--mapping`` keeps every label.  The file
holds PatientIDs: it is identifying and is never written inside the BIDS dataset.
Errors name the line, never the identifying value.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mriproc.io.atomic import atomic_write_text

__all__ = ["MAPPING_COLUMNS", "ConversionMapping", "MappingError", "read_mapping", "write_mapping"]

MAPPING_COLUMNS = ("field", "value", "set", "to", "note")
_TARGETS = {
    ("PatientID", "participant"): "participants",
    ("PatientID", "baseline_date"): "baseline_dates",
    ("StudyInstanceUID", "session"): "sessions",
    ("SeriesInstanceUID", "role"): "series_roles",
    ("SeriesDescription", "role"): "description_roles",
}


class MappingError(ValueError):
    """A mapping file that cannot be used (the message names file and line)."""


@dataclass
class ConversionMapping:
    """What a mapping file sets, by the DICOM value it matches."""

    participants: dict[str, str] = field(default_factory=dict)
    baseline_dates: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)
    series_roles: dict[str, str] = field(default_factory=dict)
    description_roles: dict[str, str] = field(default_factory=dict)
    notes: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def role_of(self, series_uid: str, description: str) -> str | None:
        """The role the mapping gives a series, if any."""
        return self.series_roles.get(series_uid) or self.description_roles.get(description.strip())


def _check_value(setting: str, value: str, roles: set[str], where: str) -> None:
    if setting in ("participant", "session") and not value.isalnum():
        raise MappingError(f"{where}: the {setting} label {value!r} must be letters and digits")
    if setting == "role" and value not in roles:
        raise MappingError(f"{where}: role {value!r} is not one of {', '.join(sorted(roles))}")
    if setting == "baseline_date":
        try:
            dt.datetime.strptime(value, "%Y%m%d")
        except ValueError:
            raise MappingError(f"{where}: baseline_date must be a date YYYYMMDD") from None


def read_mapping(path: str | os.PathLike[str], *, roles: Iterable[str]) -> ConversionMapping:
    """Read and check a mapping file; ``roles`` are the roles a series may be given."""
    path = Path(path)
    allowed = set(roles)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise MappingError(f"{path}: cannot read mapping file ({type(err).__name__})") from err
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0][:4]] != list(MAPPING_COLUMNS[:4]):
        raise MappingError(
            f"{path}: the first line must be the header {' '.join(MAPPING_COLUMNS[:4])} [note]"
        )
    mapping = ConversionMapping()
    for number, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row] + [""] * 5
        if not any(cells):
            continue
        where = f"{path} line {number}"
        key_field, value, setting, target, note = cells[:5]
        attribute = _TARGETS.get((key_field, setting))
        if attribute is None:
            raise MappingError(
                f"{where}: cannot set {setting!r} by {key_field!r} (allowed: "
                + ", ".join(f"{f} -> {s}" for f, s in _TARGETS)
                + ")"
            )
        if not value or not target:
            raise MappingError(f"{where}: value and to must not be empty")
        _check_value(setting, target, allowed, where)
        table: dict[str, str] = getattr(mapping, attribute)
        if table.get(value, target) != target:
            raise MappingError(f"{where}: this {key_field} was already given another {setting}")
        table[value] = target
        if note:
            mapping.notes[(key_field, value, setting)] = note
    taken: dict[str, int] = {}
    for label in mapping.participants.values():
        taken[label] = taken.get(label, 0) + 1
    doubled = sorted(label for label, n in taken.items() if n > 1)
    if doubled:
        raise MappingError(f"{path}: participant label(s) given to two PatientIDs: {doubled}")
    return mapping


def write_mapping(path: str | os.PathLike[str], mapping: ConversionMapping) -> Path:
    """Write ``mapping`` in the mapping-file format (sorted rows), atomically."""
    lines = ["\t".join(MAPPING_COLUMNS)]
    for (key_field, setting), attribute in _TARGETS.items():
        table: dict[str, str] = getattr(mapping, attribute)
        for value, target in sorted(table.items()):
            note = mapping.notes.get((key_field, value, setting), "")
            cells = [key_field, value, setting, target, note]
            lines.append("\t".join(c.replace("\t", " ").replace("\n", " ") for c in cells))
    return atomic_write_text(path, "\n".join(lines) + "\n")
