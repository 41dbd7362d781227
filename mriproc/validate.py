"""``mriproc validate``: what a dataset holds for a protocol, and what it cannot give.

The summary lists, per session, the contrasts present, those missing or unusable
(with the reason, naming the file), the files ignored, and the endpoints that
therefore cannot be computed.  Exit status: 0 when every session has every
contrast, 1 when the dataset is usable but some endpoints will be n/a, 2 when it
is unusable (not BIDS, no sessions, or no session with its reading-space image).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mriproc.config import Protocol
from mriproc.endpoints import ENDPOINTS
from mriproc.io.bids import BidsDataset, DatasetError, SessionInputs, discover_dataset

__all__ = ["EXIT_INCOMPLETE", "EXIT_OK", "EXIT_UNUSABLE", "ValidationReport", "validate_dataset"]

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_UNUSABLE = 2


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one dataset against one protocol."""

    protocol: Protocol
    dataset: BidsDataset | None
    fatal: str | None = None

    @property
    def usable_sessions(self) -> list[SessionInputs]:
        """Sessions whose reading-space image is usable."""
        if self.dataset is None:
            return []
        return [s for s in self.dataset.sessions if self.protocol.reading_space in s.files]

    @property
    def exit_code(self) -> int:
        """0 complete, 1 usable with gaps, 2 unusable."""
        if self.dataset is None or not self.usable_sessions:
            return EXIT_UNUSABLE
        complete = all(not s.problems for s in self.dataset.sessions)
        return EXIT_OK if complete and not self.dataset.problems else EXIT_INCOMPLETE

    def as_dict(self) -> dict[str, Any]:
        """Machine-readable form of the report (``--json``)."""
        out: dict[str, Any] = {
            "protocol": self.protocol.name,
            "exit_code": self.exit_code,
            "fatal": self.fatal,
        }
        if self.dataset is None:
            return out
        out["dataset"] = {"root": str(self.dataset.root), "name": self.dataset.name}
        out["problems"] = list(self.dataset.problems)
        out["sessions"] = [
            {
                "participant_id": s.participant_id,
                "session": s.session_id,
                "visit_month": s.visit_month,
                "arm": self.dataset.participants[s.participant].arm,
                "present": {role: str(path) for role, path in s.files.items()},
                "problems": s.problems,
                "ignored": {str(p): why for p, why in s.ignored},
                "notes": list(s.notes),
                "orientation": dict(s.orientations),
                "unavailable_endpoints": self.dataset.unavailable_endpoints(s, self.protocol),
                "tissue_model_without": self.tissue_model_without(s),
            }
            for s in self.dataset.sessions
        ]
        return out

    def tissue_model_without(self, session: SessionInputs) -> list[str]:
        """The protocol's tissue-model channels a processable session lacks, when it
        has enough of them (``pcf.min_channels``) for PCF.

        Its tissue model is then fitted on the others: PCF, BPF and the brain-volume
        changes are computed, less precisely, and say so in their note.
        """
        if self.protocol.reading_space not in session.files:
            return []
        if self.protocol.tissue_model_lacks(session.files):
            return []  # too few: those endpoints are n/a, said as such
        return [r for r in self.protocol.pcf.channels if r not in session.files]

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.as_dict(), indent=2)

    def lines(self) -> list[str]:
        """The human-readable summary."""
        if self.dataset is None:
            return [f"ERROR: {self.fatal}"]
        ds = self.dataset
        roles = list(self.protocol.contrasts)
        out = [
            f"Dataset {ds.name!r} at {ds.root}",
            f"Protocol {self.protocol.name!r}: contrasts {', '.join(roles)}; "
            f"reading space {self.protocol.reading_space}",
            f"{len(ds.participants)} participant(s), {len(ds.sessions)} session(s)",
        ]
        out.extend(f"PROBLEM: {p}" for p in ds.problems)
        for s in ds.sessions:
            arm = ds.participants[s.participant].arm or "n/a"
            month = "n/a" if s.visit_month is None else f"{s.visit_month:g}"
            out.append("")
            out.append(f"{s.participant_id} {s.session_id}  (month {month}, arm {arm})")
            present = [r for r in roles if r in s.files]
            out.append(f"  present:  {', '.join(present) if present else 'none'}")
            for role, why in s.problems.items():
                out.append(
                    f"  {'missing' if why == 'missing' else 'unusable'}:  {role}"
                    + ("" if why == "missing" else f": {why}")
                )
            for path, why in s.ignored:
                out.append(f"  ignored:  {path.name}: {why}")
            out.extend(f"  note:     {note}" for note in s.notes)
            unavailable = ds.unavailable_endpoints(s, self.protocol)
            if unavailable:
                by_reason: dict[str, list[str]] = {}
                for endpoint, why in unavailable.items():
                    by_reason.setdefault(why, []).append(endpoint)
                for why, endpoints in by_reason.items():
                    out.append(f"  cannot compute ({why}): {', '.join(endpoints)}")
            without = self.tissue_model_without(s)
            if without:
                brain = [e.name for e in ENDPOINTS if e.group in ("pcf", "pbvc")]
                out.append(
                    f"  less precise (tissue model without {', '.join(without)}): "
                    + ", ".join(brain)
                )
        out.append("")
        n_complete = sum(1 for s in ds.sessions if not s.problems)
        verdict = {
            EXIT_OK: "complete",
            EXIT_INCOMPLETE: "usable, with gaps (some endpoints will be n/a)",
            EXIT_UNUSABLE: "UNUSABLE (no session has a usable reading-space image)",
        }[self.exit_code]
        out.append(f"{n_complete} of {len(ds.sessions)} session(s) complete; dataset is {verdict}")
        return out


def validate_dataset(
    bids_dir: str | os.PathLike[str],
    protocol: Protocol,
    *,
    participant_labels: list[str] | None = None,
    session_labels: list[str] | None = None,
) -> ValidationReport:
    """Discover ``bids_dir`` for ``protocol`` and return the report (never raises on bad data)."""
    try:
        dataset = discover_dataset(
            Path(bids_dir),
            protocol,
            participant_labels=participant_labels,
            session_labels=session_labels,
        )
    except DatasetError as err:
        return ValidationReport(protocol=protocol, dataset=None, fatal=str(err))
    return ValidationReport(protocol=protocol, dataset=dataset)
