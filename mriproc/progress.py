"""Progress on long work: a one-line counter on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = ["Progress", "WorkflowProgress", "owning_workflow"]

logger = logging.getLogger(__name__)


class Progress:
    """Count steps of a long task; redraws one line on a terminal, logs at INFO otherwise."""

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()

    def step(self, what: str) -> None:
        """One step finished; ``what`` says which."""
        self.done += 1
        elapsed = time.monotonic() - self.start
        line = f"{self.label}: {self.done}/{self.total} {what} ({_duration(elapsed)}"
        if 0 < self.done < self.total:
            line += f", ETA {_duration(elapsed / self.done * (self.total - self.done))}"
        line += ")"
        if self.interactive:
            end = "\n" if self.done >= self.total else ""
            self.stream.write("\r\033[K" + line + end)
            self.stream.flush()
        else:
            logger.info("%s", line)


# The visit and longitudinal workflows' names begin so
# (:func:`mriproc.workflows.visit.visit_wf_name`, ``longitudinal_wf_name``).
_WORKFLOW_PREFIXES = ("visit_", "longitudinal_")


def owning_workflow(fullname: str) -> str | None:
    """The visit or longitudinal workflow a node belongs to, at any depth of sub-workflows.

    >>> owning_workflow("mriproc_wf.visit_sub_01_ses_M00.outputs_wf.outputs")
    'visit_sub_01_ses_M00'
    """
    return next((p for p in fullname.split(".") if p.startswith(_WORKFLOW_PREFIXES)), None)


class WorkflowProgress:
    """A Nipype ``status_callback``: participants done / total with an ETA.

    ``final_workflows`` maps each participant to the names of its workflows (visits,
    longitudinal); a participant is done when the last node of each has ended, or
    failed at its first crash.  On a terminal one line is redrawn; otherwise each
    finished participant is logged at INFO (quiet at the default level).
    """

    def __init__(self, final_workflows: dict[str, list[str]], *, stream: TextIO | None = None):
        self.owner = {wf: p for p, wfs in final_workflows.items() for wf in wfs}
        self.pending = {p: set(wfs) for p, wfs in final_workflows.items()}
        self.failed: set[str] = set()
        self.progress = Progress(len(final_workflows), "participants", stream=stream)

    def __call__(self, node: object, status: str) -> None:
        """Called by Nipype with ``status`` start, end or exception."""
        if status not in ("end", "exception"):
            return
        parts = str(getattr(node, "fullname", "")).split(".")
        workflow = next((part for part in parts if part in self.owner), None)
        if workflow is None:
            return
        participant = self.owner[workflow]
        if participant not in self.pending:
            return  # already counted
        if status == "exception":
            self.failed.add(participant)
            del self.pending[participant]
            self.progress.step(f"sub-{participant} failed ({len(self.failed)} failed so far)")
        elif parts[-1] == "outputs":  # each workflow's last node writes its outputs
            self.pending[participant].discard(workflow)
            if not self.pending[participant]:
                del self.pending[participant]
                self.progress.step(f"sub-{participant} done")


def _duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``.

    >>> _duration(42.4), _duration(720), _duration(12600)
    ('42 s', '12 min', '3.5 h')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
