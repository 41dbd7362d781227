"""The container image's rules, without a container engine (issue 10).

Static: ``docker/Dockerfile`` parsed and held to the image rules, and each rule shown
to fail on a deliberately broken copy.  Also here: the BIDS-Apps argument form the
image's entry point relies on, and the lock-file hash recorded in provenance.  The image
itself is built and run by ``tests/e2e/test_container.py``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from dockerfile_checks import (
    DockerfileError,
    check_dockerfile,
    parse_dockerfile,
    read_lock,
)

from mriproc import __version__
from mriproc.cli import EXIT_USAGE, bids_apps_argv, main
from mriproc.io.provenance import generated_by, lock_file_sha256
from mriproc.tables import write_dataset_description

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
LOCK = read_lock(ROOT / "requirements.lock")
PACKAGE_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TEXT = DOCKERFILE.read_text()


def check(text: str) -> list[str]:
    return check_dockerfile(text, lock=LOCK, package_version=PACKAGE_VERSION)


def test_the_dockerfile_follows_the_image_rules() -> None:
    assert check(TEXT) == []
    dockerfile = parse_dockerfile(TEXT)
    assert [s.name for s in dockerfile.stages] == ["base", "build", "slim", "test", "runtime"]
    assert dockerfile.stages[-1].name == "runtime"  # `docker build` without --target


def _replace(old: str, new: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        assert old in text, f"the Dockerfile no longer holds {old!r}: update this test"
        return text.replace(old, new)

    return mutate


def _drop_lines(pattern: str) -> Callable[[str], str]:
    def mutate(text: str) -> str:
        kept = [line for line in text.splitlines() if not re.match(pattern, line)]
        assert len(kept) < len(text.splitlines()), f"no line matches {pattern!r}"
        return "\n".join(kept) + "\n"

    return mutate


def _add_after(anchor: str, lines: str) -> Callable[[str], str]:
    return _replace(anchor, anchor + lines)


BROKEN: dict[str, tuple[Callable[[str], str], str]] = {
    "unpinned base": (
        lambda t: re.sub(r"ARG PYTHON_IMAGE=\S+", "ARG PYTHON_IMAGE=python:3.11-slim", t),
        "pinned neither by digest",
    ),
    "digest truncated": (
        lambda t: re.sub(r"(@sha256:[0-9a-f]{20})[0-9a-f]+", r"\1", t),
        "pinned neither by digest",
    ),
    "not python 3.11 slim": (
        lambda t: t.replace("python:3.11.10-slim-bookworm@", "python:3.12.7-bookworm@"),
        "is not python:3.11-slim",
    ),
    "lock not used for the dependencies": (
        _replace(
            "/opt/venv/bin/pip install -c requirements.lock -r /tmp/dependencies.txt",
            "/opt/venv/bin/pip install -r /tmp/dependencies.txt",
        ),
        "does not install from requirements.lock",
    ),
    "a pin that disagrees with the lock": (
        _add_after(
            "COPY README.md ./\n",
            "RUN /opt/venv/bin/pip install -c requirements.lock numpy==1.26.4\n",
        ),
        "installs 'numpy==1.26.4' but requirements.lock pins numpy==",
    ),
    "a package the lock does not pin": (
        _add_after(
            "COPY README.md ./\n", "RUN /opt/venv/bin/pip install -c requirements.lock torch\n"
        ),
        "installs 'torch', which requirements.lock does not pin",
    ),
    "pip upgraded outside the lock": (
        _add_after("FROM base AS build\n", "RUN python -m pip install --upgrade pip\n"),
        "does not install from requirements.lock",
    ),
    "source copied before the dependencies": (
        _replace("COPY pyproject.toml requirements.lock ./", "COPY . ./"),
        "before the dependencies are installed",
    ),
    "package installed with its dependencies": (
        _replace(
            "pip install --no-deps -c requirements.lock .", "pip install -c requirements.lock ."
        ),
        "without --no-deps",
    ),
    "no USER": (_drop_lines(r"USER "), "sets no USER"),
    "USER root": (
        _replace("WORKDIR /work\nENTRYPOINT", "USER root\nWORKDIR /work\nENTRYPOINT"),
        "runs as root",
    ),
    "relative ENTRYPOINT": (
        _replace('ENTRYPOINT ["/opt/venv/bin/mriproc"]', 'ENTRYPOINT ["mriproc"]'),
        "is not an absolute path",
    ),
    "shell-form ENTRYPOINT": (
        _replace('ENTRYPOINT ["/opt/venv/bin/mriproc"]', "ENTRYPOINT /opt/venv/bin/mriproc"),
        "not in exec (JSON) form",
    ),
    "no ENTRYPOINT": (_drop_lines(r"ENTRYPOINT "), "has no ENTRYPOINT"),
    "no revision label": (
        _drop_lines(r"\s+org\.opencontainers\.image\.revision="),
        "lacks the OCI label org.opencontainers.image.revision",
    ),
    "version label not from a build argument": (
        _replace('image.version="${VERSION}"', 'image.version="latest"'),
        "image.version is not set from a build argument",
    ),
    "VERSION default drifted from pyproject": (
        _replace(f"ARG VERSION={PACKAGE_VERSION}", "ARG VERSION=9.9.9"),
        "build argument VERSION defaults to '9.9.9'",
    ),
    "ITK threads not limited": (
        _drop_lines(r"\s+ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1"),
        "does not set ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1",
    ),
    "OpenMP threads not limited": (
        _replace("OMP_NUM_THREADS=1", "OMP_NUM_THREADS=4"),
        "does not set OMP_NUM_THREADS=1",
    ),
    "no test stage": (
        _replace("FROM build AS test", "FROM build AS checks"),
        "no 'test' stage",
    ),
    "unpinned syntax frontend": (
        lambda t: "# syntax=docker/dockerfile:1\n" + t,
        "the syntax directive pulls 'docker/dockerfile:1', not pinned by digest",
    ),
    "single stage": (
        lambda t: "FROM python:3.11.10-slim-bookworm@sha256:" + "0" * 64 + "\nUSER 1000\n",
        "not a multi-stage build",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_checker_reports_a_broken_dockerfile(case: str) -> None:
    mutate, expected = BROKEN[case]
    broken = mutate(TEXT)
    assert broken != TEXT
    problems = check(broken)
    assert any(expected in problem for problem in problems), problems


def test_parser_reads_continuations_stages_and_forms() -> None:
    dockerfile = parse_dockerfile(
        "# syntax=docker/dockerfile:1\n"
        "ARG IMG=python:3.11.10-slim-bookworm\n"
        "FROM ${IMG} AS one\n"
        "ENV A=1 \\\n"
        "    # a comment inside a continuation is dropped\n"
        '    B="two words"\n'
        "FROM one AS two\n"
        'ENTRYPOINT ["/bin/x", "y"]\n'
        "CMD echo hi\n"
    )
    one, two = dockerfile.stages
    assert one.base == "python:3.11.10-slim-bookworm" and one.name == "one"
    assert dockerfile.parent(two) is one
    assert dockerfile.environment(two) == {"A": "1", "B": "two words"}
    assert two.all("ENTRYPOINT")[0].exec_form() == ["/bin/x", "y"]
    assert two.all("CMD")[0].exec_form() is None
    for bad in ("FROM a\nRUN x \\\n", "RUN x\n", "# escape=`\nFROM a\n", "FROM a\nRUN <<EOF\n"):
        with pytest.raises(DockerfileError):
            parse_dockerfile(bad)


def test_the_build_context_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    needed = ["pyproject.toml", "requirements.lock", "README.md", "mriproc/cli.py"]
    needed += ["docker/pip-env.sh", "docker/build.sh"]
    needed += ["pipelines/esims.yaml", "tests/conftest.py", ".ci/run", "benchmarks/accuracy.py"]
    for path in needed:
        assert (ROOT / path).exists(), path
        assert not any(fnmatch.fnmatch(path, p) or path.startswith(p + "/") for p in patterns)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bids", "out", "participant"], ["run", "bids", "out", "participant"]),
        (["bids", "out", "group", "-v"], ["run", "bids", "out", "group", "-v"]),
        (["-vv", "bids", "out", "participant"], ["-vv", "run", "bids", "out", "participant"]),
        (["run", "bids", "out", "participant"], ["run", "bids", "out", "participant"]),
        (["validate", "bids", "--json"], ["validate", "bids", "--json"]),
        (["stats", "out"], ["stats", "out"]),
        (["bids", "out", "everything"], ["bids", "out", "everything"]),
        (["--version"], ["--version"]),
    ],
)
def test_bids_apps_form_is_the_run_command(argv: list[str], expected: list[str]) -> None:
    assert bids_apps_argv(argv) == expected


def test_bids_apps_form_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    assert main([str(folder), str(tmp_path / "out"), "participant", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: mriproc run")
    # Mapped to ``run ... group``, the folder is read as a BIDS dataset and refused for
    # what it is (without the mapping argparse would refuse the arguments themselves).
    assert main([str(folder), str(tmp_path / "out"), "group", "-v"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "not a BIDS dataset" in err and "usage:" not in err


def _lock_sha256() -> str:
    return hashlib.sha256((ROOT / "requirements.lock").read_bytes()).hexdigest()


def test_provenance_records_the_lock_file_hash(tmp_path: Path) -> None:
    assert lock_file_sha256() == _lock_sha256()
    (entry,) = generated_by(protocol_name="esims")
    assert entry["RequirementsLockSHA256"] == _lock_sha256()
    assert entry["Version"] == __version__ == PACKAGE_VERSION
    write_dataset_description(tmp_path, source_datasets=["bids"], protocol_name="esims")
    description = json.loads((tmp_path / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["RequirementsLockSHA256"] == _lock_sha256()
    assert description["GeneratedBy"][0]["Protocol"] == "esims"
