"""Static checks of ``docker/Dockerfile``.

``tests/e2e/test_docker.py`` reads the Dockerfile with the small parser below and checks
the rules of issue 10 (:func:`check_dockerfile`) on every machine; building and running
the image is ``tests/e2e/test_container.py``'s job.

The parser covers what a Dockerfile needs here: comments, ``\\`` line continuations
(comment lines inside them are dropped, as Docker does), global ``ARG`` defaults
substituted into ``FROM``, stages with ``AS`` names, exec (JSON) and shell forms, and
``ENV``/``LABEL``/``ARG`` key=value lists.  It does not support heredocs or a changed
escape character; :func:`parse_dockerfile` refuses both rather than misread them.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Dockerfile",
    "DockerfileError",
    "Instruction",
    "Stage",
    "check_dockerfile",
    "normalise",
    "parse_dockerfile",
    "read_lock",
]

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_DATED_TAG = re.compile(r":[^/@]*\b(19|20)\d{6}\b[^/@]*$")  # e.g. bookworm-20241016
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LOCK = re.compile(r"(?:^|\s)(?:-c|--constraint|-r|--requirement)[ =]?\S*requirements\.lock\b")
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(==|>=|<=|~=|!=|>|<)")
REQUIRED_LABELS = ("version", "source", "revision", "created")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
# What may reach the build context before the dependencies are installed: what they are
# read from, and the script that points pip at the build secrets (docker/pip-env.sh).
DEPENDENCY_INPUTS = {"pyproject.toml", "requirements.lock", "pip-env.sh"}


class DockerfileError(ValueError):
    """A Dockerfile this parser cannot read faithfully."""


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword (upper case), its text and first line number."""

    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, else None (shell form)."""
        if not self.value.startswith("["):
            return None
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError:
            return None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
        return None

    def pairs(self) -> dict[str, str]:
        """``KEY=value`` pairs of ENV, LABEL or ARG (legacy ``ENV KEY value`` too)."""
        tokens = shlex.split(self.value, posix=True)
        if self.keyword == "ENV" and tokens and "=" not in tokens[0]:
            return {tokens[0]: " ".join(tokens[1:])}
        return {k: v for k, _, v in (token.partition("=") for token in tokens)}


@dataclass
class Stage:
    """A build stage: ``FROM base [AS name]`` and its instructions."""

    base: str
    name: str | None
    index: int
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """The stage's instructions with this keyword, in order."""
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    """Global ARGs (with their defaults) and the stages, in order."""

    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage | None:
        """The stage called ``name``, if any."""
        return next((s for s in self.stages if s.name == name), None)

    def parent(self, stage: Stage) -> Stage | None:
        """The earlier stage this one is built ``FROM``, if it is one."""
        return next((s for s in self.stages[: stage.index] if s.name == stage.base), None)

    def lineage(self, stage: Stage) -> list[Stage]:
        """The stage and its ancestors, root first."""
        chain = [stage]
        while (parent := self.parent(chain[-1])) is not None:
            chain.append(parent)
        return chain[::-1]

    def environment(self, stage: Stage) -> dict[str, str]:
        """ENV in effect at the end of ``stage`` (inherited through FROM), unexpanded."""
        env: dict[str, str] = {}
        for ancestor in self.lineage(stage):
            for instruction in ancestor.all("ENV"):
                env.update(instruction.pairs())
        return env


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continuation lines, dropping comments and blank lines (Docker's rules)."""
    joined: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            if re.match(r"#\s*escape\s*=", stripped) and not joined and not parts:
                raise DockerfileError(f"line {number}: escape directives are not supported")
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        joined.append((start, " ".join(p for p in parts if p)))
        parts = []
    if parts:
        raise DockerfileError(f"line {start}: the file ends inside a line continuation")
    return joined


def _substitute(text: str, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def parse_dockerfile(text: str) -> Dockerfile:
    """Parse a Dockerfile's text into global ARGs and stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, logical in _logical_lines(text):
        keyword, _, value = logical.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if "<<" in value and keyword in ("RUN", "COPY", "ADD"):
            raise DockerfileError(f"line {line}: heredocs are not supported")
        if keyword == "FROM":
            words = value.split()
            name = None
            if len(words) >= 3 and words[-2].upper() == "AS":
                name, words = words[-1], words[:-2]
            image = [w for w in words if not w.startswith("--platform")]
            if len(image) != 1:
                raise DockerfileError(f"line {line}: cannot read FROM {value!r}")
            base = _substitute(image[0], global_args)
            stages.append(Stage(base=base, name=name, index=len(stages), line=line))
        elif not stages:
            if keyword != "ARG":
                raise DockerfileError(f"line {line}: only ARG may come before the first FROM")
            global_args.update(Instruction(keyword, value, line).pairs())
        else:
            stages[-1].instructions.append(Instruction(keyword, value, line))
    if not stages:
        raise DockerfileError("no FROM instruction")
    return Dockerfile(global_args=global_args, stages=stages)


def read_lock(path: Path) -> dict[str, str]:
    """``requirements.lock`` as {normalised name: version}."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, pinned = line.partition("==")
            pins[normalise(name)] = pinned.strip()
    return pins


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _pip_installs(command: str) -> list[str]:
    """The ``pip install ...`` commands inside one RUN's shell text."""
    found = []
    for piece in re.split(r"&&|\|\||;", command):
        words = piece.split()
        for i in range(len(words) - 1):
            if re.search(r"(^|/)pip3?(\.\d+)?$", words[i]) and words[i + 1] == "install":
                found.append(" ".join(words[i:]))
                break
            if words[i] == "pip" and words[i - 1 : i] == ["-m"] and words[i + 1] == "install":
                found.append(" ".join(words[i:]))
                break
    return found


def _check_pip_install(install: str, line: int, lock: dict[str, str]) -> list[str]:
    problems = []
    if not _LOCK.search(install):
        problems.append(f"line {line}: '{install}' does not install from requirements.lock")
    words = shlex.split(install)[2:]
    skip_next = {"-c", "--constraint", "-r", "--requirement", "-e", "--editable", "-t"}
    previous = ""
    for word in words:
        if previous in skip_next or word.startswith("-") or word in (".",) or "/" in word:
            previous = word
            continue
        previous = word
        match = _REQUIREMENT.match(word)
        name = normalise(match.group(1) if match else re.split(r"[\[;]", word)[0])
        if name not in lock:
            problems.append(f"line {line}: installs {word!r}, which requirements.lock does not pin")
            continue
        if match:
            operator, spec = match.group(2), word[match.end() :].strip()
            if operator != "==" or spec != lock[name]:
                problems.append(
                    f"line {line}: installs {word!r} but requirements.lock pins "
                    f"{name}=={lock[name]}"
                )
    return problems


def _copied_sources(instruction: Instruction) -> list[str]:
    words = [w for w in shlex.split(instruction.value) if not w.startswith("--")]
    exec_form = instruction.exec_form()
    if exec_form is not None:
        words = exec_form
    return words[:-1]


def check_dockerfile(
    text: str, *, lock: dict[str, str], package_version: str | None = None
) -> list[str]:
    """Every way ``text`` breaks the image rules of issue 10; empty when it follows them.

    ``lock`` is :func:`read_lock` of ``requirements.lock``; ``package_version`` (from
    pyproject) is compared with the default of the ``VERSION`` build argument.
    """
    try:
        dockerfile = parse_dockerfile(text)
    except DockerfileError as err:
        return [f"cannot parse the Dockerfile: {err}"]
    problems: list[str] = []
    stages = dockerfile.stages
    final = stages[-1]
    names = {s.name for s in stages}
    if len(stages) < 2:
        problems.append("not a multi-stage build")

    # Parser directives are only read above any other line, comment or instruction.
    syntax = re.search(r"\A(?:#\s*\w+\s*=.*\n)*?#\s*syntax\s*=\s*(\S+)", text)
    if syntax and not _DIGEST.search(syntax.group(1)):
        problems.append(f"the syntax directive pulls {syntax.group(1)!r}, not pinned by digest")
    for stage in stages:
        if stage.base in names:
            continue
        if "$" in stage.base:
            problems.append(f"line {stage.line}: base image {stage.base!r} has no ARG default")
        elif not (_DIGEST.search(stage.base) or _DATED_TAG.search(stage.base)):
            problems.append(
                f"line {stage.line}: base image {stage.base!r} is pinned neither by digest "
                "(@sha256:...) nor by a dated tag"
            )
        if not re.match(r"^(docker\.io/)?(library/)?python:3\.11[.\d]*-slim", stage.base):
            problems.append(f"line {stage.line}: base image {stage.base!r} is not python:3.11-slim")

    installs_from_lock = False
    for stage in stages:
        for instruction in stage.all("RUN"):
            for install in _pip_installs(instruction.value):
                found = _check_pip_install(install, instruction.line, lock)
                problems.extend(found)
                installs_from_lock = installs_from_lock or not found
    if not installs_from_lock:
        problems.append("no pip install uses requirements.lock")

    build = dockerfile.stage("build")
    if build is None:
        problems.append("no 'build' stage (the install stage)")
    else:
        problems.extend(_check_layer_order(build, final, dockerfile))

    user = _effective(dockerfile, final, "USER")
    if user is None:
        problems.append("the final stage sets no USER: the image would run as root")
    elif user.value.split(":")[0] in ("root", "0"):
        problems.append(f"line {user.line}: the final stage runs as root (USER {user.value})")

    entrypoint = _effective(dockerfile, final, "ENTRYPOINT")
    if entrypoint is None:
        problems.append("the final stage has no ENTRYPOINT")
    else:
        argv = entrypoint.exec_form()
        if argv is None:
            problems.append(f"line {entrypoint.line}: ENTRYPOINT is not in exec (JSON) form")
        elif not argv or not argv[0].startswith("/"):
            problems.append(f"line {entrypoint.line}: ENTRYPOINT {argv} is not an absolute path")

    labels: dict[str, str] = {}
    for stage in dockerfile.lineage(final):
        for instruction in stage.all("LABEL"):
            labels.update(instruction.pairs())
    args = {k: v for i in final.all("ARG") for k, v in i.pairs().items()}
    for key in REQUIRED_LABELS:
        label = f"org.opencontainers.image.{key}"
        if label not in labels:
            problems.append(f"the final stage lacks the OCI label {label}")
        elif key != "source" and not _VARIABLE.search(labels[label]):
            problems.append(f"OCI label {label} is not set from a build argument")
    if package_version is not None and "VERSION" in args and args["VERSION"] != package_version:
        problems.append(
            f"build argument VERSION defaults to {args['VERSION']!r}, the package is "
            f"{package_version!r}"
        )

    env = dockerfile.environment(final)
    for variable in THREAD_VARIABLES:
        if env.get(variable) != "1":
            problems.append(f"the final stage does not set {variable}=1")

    test = dockerfile.stage("test")
    if test is None:
        problems.append("no 'test' stage")
    elif not any("pytest" in i.value for i in test.all("RUN")):
        problems.append("the 'test' stage does not run pytest")
    return problems


def _effective(dockerfile: Dockerfile, stage: Stage, keyword: str) -> Instruction | None:
    for ancestor in reversed(dockerfile.lineage(stage)):
        found = ancestor.all(keyword)
        if found:
            return found[-1]
    return None


def _check_layer_order(build: Stage, final: Stage, dockerfile: Dockerfile) -> list[str]:
    problems = []
    dependencies_at = None
    for position, instruction in enumerate(build.instructions):
        if instruction.keyword == "RUN" and any(
            "--no-deps" not in install for install in _pip_installs(instruction.value)
        ):
            dependencies_at = position
            break
    if dependencies_at is None:
        return ["the 'build' stage installs no dependencies (pip install without --no-deps)"]
    for instruction in build.instructions[:dependencies_at]:
        if instruction.keyword in ("COPY", "ADD"):
            extra = [
                s for s in _copied_sources(instruction) if Path(s).name not in DEPENDENCY_INPUTS
            ]
            if extra:
                problems.append(
                    f"line {instruction.line}: copies {extra} before the dependencies are "
                    "installed (a source change would reinstall them)"
                )
    package_installs = [
        install
        for instruction in build.instructions[dependencies_at + 1 :]
        if instruction.keyword == "RUN"
        for install in _pip_installs(instruction.value)
    ]
    if not package_installs:
        problems.append("the 'build' stage never installs the package after its dependencies")
    elif not all("--no-deps" in install for install in package_installs):
        problems.append("the package is installed after the dependencies without --no-deps")
    copied_from = [
        dockerfile.stage(m.group(1))
        for i in final.all("COPY")
        if (m := re.search(r"--from=(\S+)", i.value))
    ]
    if build not in dockerfile.lineage(final) and not any(
        source is not None and build in dockerfile.lineage(source) for source in copied_from
    ):
        problems.append("the final stage takes nothing from the 'build' stage")
    return problems
