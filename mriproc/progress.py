"""Progress on long work: a one-line counter on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = ["Progress"]

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
        line = f"{self.label}: {self.done}/{self.total} {what} ({elapsed:.0f} s)"
        if self.interactive:
            end = "\n" if self.done >= self.total else ""
            self.stream.write("\r\033[K" + line + end)
            self.stream.flush()
        else:
            logger.info("%s", line)
