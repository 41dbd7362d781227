"""De-identification of what ``mriproc convert`` writes or says.

A :class:`Redactor` knows every identifying value of a DICOM tree (patient names and
their parts, IDs, birth and study dates in DICOM and ISO spelling, accession numbers,
institutions, ...; see ``identifying_attributes`` in ``pipelines/dicom/heuristics.yaml``)
and replaces each occurrence in a text, case-insensitively, by ``[redacted]``.
Every report cell, log line and error message built from DICOM-derived text goes
through it.  :func:`scrub_sidecar` removes from a dcm2niix sidecar the keys that
``-ba y`` keeps (institution, station, free-text descriptions) and any other key
whose value holds an identifier.

Values shorter than three characters are not redacted (they would erase ordinary
words and numbers; a site using two-character patient IDs must map them), values
shorter than six characters only where they stand as a whole word.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR

__all__ = ["REDACTED", "Redactor", "scrub_sidecar"]

REDACTED = "[redacted]"
_MIN_LENGTH = 3
_SUBSTRING_LENGTH = 6


class Redactor:
    """Replaces identifying values in text.

    >>> r = Redactor.from_attributes({"PatientName": ("ROSSI^ANNA",), "StudyDate": ("20200115",)})
    >>> r.text("folder Rossi_Anna/2020-01-15 of ANNA ROSSI")
    'folder [redacted]_[redacted]/[redacted] of [redacted] [redacted]'
    >>> r.found("plain text")
    False
    """

    def __init__(self, terms: Iterable[str]) -> None:
        unique = sorted({t for t in terms if len(t) >= _MIN_LENGTH}, key=lambda t: (-len(t), t))
        # Short values (a 3-letter name, "MRI" as a department) only as whole words, so
        # that they do not erase parts of ordinary words; longer ones anywhere.
        alternatives = [
            re.escape(t)
            if len(t) >= _SUBSTRING_LENGTH
            else rf"(?<![a-z0-9]){re.escape(t)}(?![a-z0-9])"
            for t in unique
        ]
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE) if unique else None

    @classmethod
    def from_attributes(cls, identifiers: Mapping[str, Sequence[str]]) -> Redactor:
        """A redactor for DICOM attribute values (names split into their parts)."""
        return cls(
            term for key, values in identifiers.items() for v in values for term in _terms(key, v)
        )

    def text(self, text: str) -> str:
        """``text`` with every identifying value replaced."""
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def found(self, text: str) -> bool:
        """True when ``text`` holds an identifying value."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def path(self, path: Path, root: Path) -> str:
        """``path`` relative to ``root`` (the DICOM folder the user named), redacted."""
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = Path(path.name)
        return self.text(relative.as_posix())


def _is_person_name(keyword: str) -> bool:
    try:
        return bool(dictionary_VR(keyword) == "PN")
    except KeyError:
        return False


def _terms(keyword: str, value: str) -> list[str]:
    terms = [value]
    if _is_person_name(keyword) or "^" in value:
        # Each part of a person's name on its own (an institution's words are not).
        terms += [part for part in re.split(r"[\^=\s,]+", value) if part]
    if len(value) == 8 and value.isdigit():  # a DICOM date YYYYMMDD
        y, m, d = value[:4], value[4:6], value[6:]
        terms += [f"{y}-{m}-{d}", f"{y}.{m}.{d}", f"{d}.{m}.{y}", f"{y}/{m}/{d}"]
    return terms


def scrub_sidecar(
    sidecar: Mapping[str, Any], redactor: Redactor, remove: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """The sidecar without ``remove`` keys and without keys whose value is identifying.

    Returns the cleaned sidecar and the keys dropped because of their value (the
    ``remove`` keys are dropped silently: they are always dropped).
    """
    removed = set(remove)
    clean: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in sidecar.items():
        if key in removed:
            continue
        if any(redactor.found(text) for text in _strings(value)):
            dropped.append(key)
            continue
        clean[key] = value
    return clean, dropped


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
