"""The container image, built and run (issue 25).

``docker/build.sh`` builds the image with the engine this machine has (on CI machines:
podman, installed and configured by ``docker/podman-setup.sh``, with a Debian 12 base
bootstrapped locally because no registry is reachable).  The image then runs offline
(``--network none``) as a user id it has never seen: ``--version``, and the BIDS-Apps
form on a simulated ESIMS visit whose tables must be identical to the same run on the
host.  Also checked: the size target, the installed versions against the lock, the
labels, that no build secret reached the image, and the OCI archive Apptainer builds from.

Without an engine and without root (to install podman) the module is skipped, except
under ``CI=true``, where the image must be built.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from dockerfile_checks import normalise, read_lock

from mriproc.config import load_protocol
from mriproc.demo import protocol_with_preset
from mriproc.simulate import TrialSpec, simulate_trial

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TAG = "localhost/mriproc:ci-test"
MAX_IMAGE_BYTES = 800_000_000  # issue 25's target
USER = "4321:4321"  # no account of the image's: any user id must work


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must build the image, but {reason}")
    pytest.skip(reason)


def _engine() -> str:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return "docker"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        # Installs podman, runc and mmdebstrap if missing and writes their configuration;
        # quick when all is in place.
        setup = subprocess.run(
            ["bash", str(ROOT / "docker" / "podman-setup.sh")], capture_output=True, text=True
        )
        assert setup.returncode == 0, f"docker/podman-setup.sh failed:\n{setup.stderr}"
        return "podman"
    if shutil.which("podman"):
        return "podman"
    _unavailable("no container engine runs here and podman cannot be installed (not root)")


@dataclass(frozen=True)
class Built:
    engine: str
    archive: Path  # the image saved as an OCI archive (podman) or docker archive
    log: str

    def command(
        self, *argv: str, entrypoint: str | None = None, mounts: tuple[str, ...] = ()
    ) -> list[str]:
        """``ENGINE run`` of the image, offline and as a stranger's user id."""
        command = [self.engine, "run", "--rm", "--network", "none", "--user", USER]
        for mount in mounts:
            command += ["--volume", mount]
        if entrypoint:
            command += ["--entrypoint", entrypoint]
        return [*command, TAG, *argv]

    def run(self, *argv: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*argv, entrypoint=entrypoint),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def inspect(self, template: str) -> str:
        shown = subprocess.run(
            [self.engine, "image", "inspect", "--format", template, TAG],
            capture_output=True,
            text=True,
            check=True,
        )
        return shown.stdout.strip()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    engine = _engine()
    archive = tmp_path_factory.mktemp("image") / "mriproc.oci.tar"
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(ROOT / "docker" / "build.sh"), "--engine", engine, "--tag", TAG,
         "--oci-archive", str(archive)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"docker/build.sh failed:\n{log[-6000:]}"
    print(f"image built in {time.perf_counter() - started:.0f} s")  # seen with -s / -rA
    return Built(engine, archive, log)


def test_the_image_is_small_non_root_and_labelled(built: Built) -> None:
    size = int(built.inspect("{{.Size}}"))
    assert size <= MAX_IMAGE_BYTES, f"the image is {size / 1e6:.0f} MB"
    assert built.inspect("{{.Config.User}}") == "mriproc"
    assert json.loads(built.inspect("{{json .Config.Entrypoint}}")) == ["/opt/venv/bin/mriproc"]
    labels = json.loads(built.inspect("{{json .Config.Labels}}"))
    assert labels["org.opencontainers.image.version"] == PACKAGE_VERSION
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True)
    if revision.returncode == 0:
        assert labels["org.opencontainers.image.revision"] == revision.stdout.decode().strip()


def test_the_image_holds_exactly_the_locked_versions(built: Built) -> None:
    listing = built.run(
        "-c",
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))",
        entrypoint="/opt/venv/bin/python",
    )
    assert listing.returncode == 0, listing.stderr
    installed = {normalise(name): v for name, v in json.loads(listing.stdout).items()}
    assert installed.pop("mriproc") == PACKAGE_VERSION
    assert "pip" not in installed and "setuptools" not in installed  # nothing installs at run time
    lock = read_lock(ROOT / "requirements.lock")
    off_lock = {name: version for name, version in installed.items() if lock.get(name) != version}
    assert not off_lock, f"installed but not as requirements.lock pins: {off_lock}"


def test_no_build_secret_reaches_the_image(built: Built) -> None:
    history = subprocess.run(
        [built.engine, "history", "--no-trunc", "--format", "{{.CreatedBy}}", TAG],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "BEGIN CERTIFICATE" not in history and "index-url" not in history
    env = json.loads(built.inspect("{{json .Config.Env}}"))
    assert not [v for v in env if v.startswith(("PIP_CERT=", "PIP_CONFIG_FILE=", "PIP_INDEX"))]
    listed = built.run("-c", "ls -A /run/secrets 2>/dev/null | wc -l", entrypoint="/bin/sh")
    assert listed.stdout.strip() == "0"


def test_version_offline_as_another_user(built: Built) -> None:
    shown = built.run("--version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"mriproc {PACKAGE_VERSION}"


def test_bids_app_run_in_the_image_matches_the_host(
    built: Built, tmp_path: Path, run_fast: RunFast
) -> None:
    """``IMAGE /data /out participant`` on a simulated ESIMS visit = the host's run."""
    root = tmp_path / "sim"
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0,), seed=31), load_protocol("esims"))
    protocol = protocol_with_preset("esims", "fast", tmp_path / "esims_fast.yaml")
    image_out = tmp_path / "image_out"
    image_out.mkdir()
    image_out.chmod(0o777)  # the container's user id is not ours
    mounts = (f"{root}:/data:ro", f"{protocol}:/protocol.yaml:ro", f"{image_out}:/out")
    argv = ["/data", "/out", "participant", "--protocol", "/protocol.yaml", "--nprocs", "1"]
    log = tmp_path / "image_run.log"
    with log.open("w") as stream:  # the image and the host run side by side
        in_image = subprocess.Popen(
            built.command(*argv, mounts=mounts), stdout=stream, stderr=subprocess.STDOUT
        )
        host = tmp_path / "host"
        host.mkdir()
        code, host_out = run_fast(root, host, "--nprocs", "1")
        in_image.wait(timeout=900)
    assert in_image.returncode == 0, log.read_text()[-4000:]
    assert code == 0
    image_tables = image_out / "mriproc"
    for table in ("endpoints.tsv", "lesions.tsv"):
        assert (image_tables / table).read_bytes() == (host_out / table).read_bytes(), table
    assert "t2_lesion_volume" in (host_out / "endpoints.tsv").read_text()
    owner = (image_tables / "endpoints.tsv").stat()
    assert f"{owner.st_uid}:{owner.st_gid}" == USER


def test_oci_archive_for_apptainer(built: Built) -> None:
    """What ``apptainer build mriproc.sif oci-archive://mriproc.oci.tar`` reads."""
    if built.engine != "podman":
        pytest.skip("docker save writes a docker archive (apptainer: docker-archive://)")
    with tarfile.open(built.archive) as archive:
        names = set(archive.getnames())
        assert {"oci-layout", "index.json"} <= names

        def blob(digest: str) -> dict[str, object]:
            member = archive.extractfile("blobs/" + digest.replace(":", "/"))
            assert member is not None
            loaded: dict[str, object] = json.load(member)
            return loaded

        (manifest,) = json.load(archive.extractfile("index.json"))["manifests"]  # type: ignore[arg-type]
        image_manifest = blob(manifest["digest"])
        config = blob(image_manifest["config"]["digest"])  # type: ignore[index]
        layers = image_manifest["layers"]
        assert isinstance(layers, list) and layers
        for layer in layers:
            assert "blobs/" + layer["digest"].replace(":", "/") in names
    assert config["config"]["Entrypoint"] == ["/opt/venv/bin/mriproc"]  # type: ignore[index]
    assert config["config"]["User"] == "mriproc"  # type: ignore[index]
