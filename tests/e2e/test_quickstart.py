"""The README's two quick-start commands and CI never drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"<!-- quickstart:begin -->\n(.*?)<!-- quickstart:end -->", readme, re.S)
    assert section, "README.md lost its quick-start markers"
    # One command per block, so that copying the first never also starts the tests.
    blocks = re.findall(r"```bash\n(.*?)```", section.group(1), re.S)
    assert all(len([c for c in b.splitlines() if c.strip()]) == 1 for b in blocks), blocks
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_commands_demo_then_tests() -> None:
    demo, tests = quickstart_commands()
    assert demo.endswith("mriproc demo")
    assert "pytest" in tests
    for command in (demo, tests):
        assert command.startswith("python3.11 -m venv .venv")
        assert "-c requirements.lock" in command, "installs must use the lock file"


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, tests = quickstart_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines


def test_lock_pins_every_runtime_dependency() -> None:
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    pyproject = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.S | re.M)
    assert deps
    names = re.findall(r'"([A-Za-z0-9_.-]+)', deps.group(1))
    assert names
    missing = [n for n in names if n.lower().replace("_", "-") not in pins]
    assert not missing, f"requirements.lock lacks {missing}; run .ci/update-lock"


def test_every_subpackage_is_packaged() -> None:
    """pyproject lists packages explicitly (pipelines/ is mapped in); none may be missed."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(mriproc(?:\.[a-z_]+)*)"', pyproject.split("[tool.setuptools]")[1]))
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mriproc").rglob("__init__.py")
    }
    assert found | {"mriproc.pipelines"} <= listed
