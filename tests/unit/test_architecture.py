"""The layers of the package hold: checked on its import graph and its protocol schema.

The map is in the README ("Architecture"): the endpoint catalogue is the ground
floor; the simulator (ground truth) shares definitions with the measurement but no
measuring code; only the Nipype layer imports Nipype; folders do not import each
other in a loop; every key a protocol file accepts is read by the code.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from collections import defaultdict
from pathlib import Path

import pytest

import mriproc
from mriproc.config import Protocol

PACKAGE = Path(mriproc.__file__).parent

# Modules that measure (segment, fit, register, compare): the simulator must not
# import them, or its truth would share the errors of what it checks.
MEASURING = {
    "mriproc.atrophy",
    "mriproc.blackholes",
    "mriproc.brain",
    "mriproc.cohort",
    "mriproc.enhancing",
    "mriproc.evaluation",
    "mriproc.followup",
    "mriproc.lesion_candidates",
    "mriproc.longitudinal",
    "mriproc.outputs",
    "mriproc.plausibility",
    "mriproc.registration",
    "mriproc.run",
    "mriproc.t2lesions",
    "mriproc.tissues",
    "mriproc.visit",
    "mriproc.visit_lesions",
}
# Where Nipype may be imported: the thin wrappers, the graphs and the run that executes them.
NIPYPE_LAYER = ("mriproc.interfaces", "mriproc.workflows", "mriproc.run")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ("mriproc", *path.relative_to(PACKAGE).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (functions included)."""
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named.add(node.module)
            # ``from mriproc.io import bids`` imports the module mriproc.io.bids.
            named.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in MODULES
            )
    return named


IMPORTS = {name: _imports(path) for name, path in MODULES.items()}


def _internal(name: str) -> set[str]:
    return {m for m in IMPORTS[name] if m in MODULES and m != name}


def test_the_endpoint_catalogue_is_the_ground_floor() -> None:
    assert not _internal("mriproc.endpoints")


def test_the_simulator_imports_no_measuring_module() -> None:
    """Directly or through another module: ground truth shares no measuring code."""
    for name in (m for m in MODULES if m.startswith("mriproc.simulate")):
        reached: set[str] = set()
        todo = [name]
        while todo:
            for imported in _internal(todo.pop()):
                if imported not in reached:
                    reached.add(imported)
                    todo.append(imported)
        assert not reached & MEASURING, f"{name} reaches {sorted(reached & MEASURING)}"


def test_only_the_nipype_layer_imports_nipype_workflows_or_interfaces() -> None:
    for name, imported in IMPORTS.items():
        if name.startswith(NIPYPE_LAYER):
            continue
        nipype = sorted(
            m for m in imported if m.split(".")[0] == "nipype" or m.startswith(NIPYPE_LAYER[:2])
        )
        assert not nipype, f"{name} imports {nipype}"


def test_nothing_but_the_entry_point_imports_the_cli() -> None:
    users = sorted(n for n, imported in IMPORTS.items() if "mriproc.cli" in imported)
    assert users == []


def _unit(module: str) -> str:
    """A folder of the package (``io/``), or a top-level module by itself."""
    parts = module.split(".")
    if len(parts) == 1:
        return "mriproc"
    return parts[1] + "/" if (PACKAGE / parts[1]).is_dir() else parts[1]


def test_no_import_loop_between_folders() -> None:
    """Folders (and top-level modules) form an acyclic graph: no cycle through two of them."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name in MODULES:
        for imported in _internal(name):
            if imported == "mriproc":
                continue  # the package's own __init__ (its version)
            a, b = _unit(name), _unit(imported)
            if a != b:
                graph[a].add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for nxt in sorted(graph[unit]):
            if state.get(nxt) == 1:
                loop = [*path[path.index(nxt) :], nxt]
                pytest.fail("import loop: " + " -> ".join(loop))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    """Every key of a protocol file (nested sections, the registration preset's too)."""
    hints = typing.get_type_hints(cls)
    keys = []
    for spec in dataclasses.fields(cls):
        if not spec.metadata.get("yaml", True):
            continue
        hint = hints[spec.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            keys += _leaf_keys(hint, f"{prefix}{spec.name}.")
        else:
            keys.append(f"{prefix}{spec.name}")
    return keys


def test_every_protocol_key_is_read_by_the_code() -> None:
    """A parameter the protocol accepts but no code reads would do nothing: refused here.

    Read means an attribute access (``params.rim_mm``) somewhere in the package; the
    declarations (``rim_mm: float = ...``) are not.
    """
    code = "\n".join(path.read_text(encoding="utf-8") for path in MODULES.values())
    unread = [
        key
        for key in _leaf_keys(Protocol)
        if not re.search(rf"\.{re.escape(key.rsplit('.', 1)[-1])}\b", code)
    ]
    assert unread == []
