"""Shared test helpers: ``tests/`` on ``sys.path`` so that test modules import them.

(pytest runs with ``--import-mode=importlib``, which does not add test folders to
the path itself.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
