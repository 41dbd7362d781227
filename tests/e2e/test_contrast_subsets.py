"""Every combination of contrasts runs to the end, and ``validate`` promises what ``run`` delivers.

One simulated session (PD/T2, FLAIR, T1w before and after gadolinium) is copied into
one participant per non-empty subset of a shipped protocol's contrasts (15 per
protocol); the dataset is validated and run with that protocol.  For every session,
the endpoints ``validate`` says cannot be computed are exactly those ``run`` leaves
n/a, each n/a names the contrasts it lacks, every other endpoint has a finite value,
and the brain endpoints say "less precise" exactly when ``validate`` says the tissue
model lacks a channel.

The default suite runs every ``esims`` subset (at half the in-plane resolution) and
the ``flair`` subsets a real follow-up most often has (FLAIR alone, FLAIR + T2w
without T1w, and one without FLAIR); every ``flair`` subset at full resolution takes
about 4 minutes more and is marked ``slow`` (``pytest -m slow``).  ``esims`` with its
T1w roles renamed runs two sessions: the CEL and black-hole stages find their roles
through the protocol.
"""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from mriproc.cli import main
from mriproc.config import load_protocol, resolve_protocol_path
from mriproc.demo import protocol_with_preset
from mriproc.endpoints import VISIT_ENDPOINTS
from mriproc.io.bids import anat_path
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table
from mriproc.validate import validate_dataset

# ``esims`` with its T1w roles named T1pre and T1post: the CEL and black-hole stages
# take their roles from the protocol, not from the shipped names.
RENAMED = {"T1w": "T1pre", "T1w_gad": "T1post"}
# (protocol, which subsets): None is every subset.
CASES = [
    pytest.param(("esims", None), id="esims-all"),
    pytest.param(
        ("esims-renamed", (("PDw", "T2w", "T1pre", "T1post"), ("PDw", "T2w", "T1post"))),
        id="esims-renamed-roles",
    ),
    pytest.param(("flair", (("FLAIR",), ("FLAIR", "T2w"), ("T2w", "T1w"))), id="flair-common"),
    pytest.param(("flair", None), id="flair-all", marks=pytest.mark.slow),
]


def _subsets(roles: list[str]) -> list[tuple[str, ...]]:
    return [c for n in range(1, len(roles) + 1) for c in itertools.combinations(roles, n)]


def _dataset(
    simulated: Path, root: Path, protocol: str, chosen: tuple[tuple[str, ...], ...] | None
) -> dict[str, tuple[str, ...]]:
    """A dataset of one participant per contrast subset (``chosen``, else every one);
    participant label -> subset."""
    root.mkdir(parents=True)
    shutil.copy(simulated / "dataset_description.json", root)
    contrasts = load_protocol(protocol).contrasts

    def image(participant: str, role: str, root: Path = simulated) -> Path:
        spec = contrasts[role]
        return anat_path(root, participant, "M00", suffix=spec.suffix, ce=spec.ce)

    images = {role: image("001", role) for role in contrasts}
    if Path(protocol).stem.startswith("esims"):
        images = {role: _halved(path) for role, path in images.items()}
    every = _subsets(list(contrasts))
    subsets = {f"s{i:02d}": s for i, s in enumerate(every) if chosen is None or s in chosen}
    rows = ["participant_id\tarm"]
    for label, subset in subsets.items():
        for role in subset:
            target = image(label, role, root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(images[role], target)
            shutil.copy(_sidecar(image("001", role)), _sidecar(target))
        rows.append(f"sub-{label}\tplacebo")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return subsets


def _sidecar(image: Path) -> Path:
    return image.with_name(image.name.removesuffix(".nii.gz") + ".json")


def _renamed(destination: Path) -> Path:
    """The ``esims`` protocol with its T1w roles renamed (:data:`RENAMED`)."""
    data = yaml.safe_load(resolve_protocol_path("esims").read_text(encoding="utf-8"))
    data["contrasts"] = {RENAMED.get(role, role): spec for role, spec in data["contrasts"].items()}
    for section in ("cel", "black_holes"):
        data[section]["requires"] = [RENAMED.get(r, r) for r in data[section]["requires"]]
    destination.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return destination


def _halved(path: Path) -> Path:
    """The image at half its in-plane resolution (2 x 2 voxel means), beside itself.

    The subsets are about which contrasts a visit has, not resolution: the ESIMS
    visits run at 1.9 mm in-plane to save the suite's time.  (The template fit on a
    FLAIR reading space fails at that resolution: the flair visits run at 0.94 mm.)
    """
    target = path.with_name("half_" + path.name)
    if not target.exists():
        image = nib.load(path)
        data = np.asarray(image.dataobj, dtype=np.float32)
        nx, ny, nz = data.shape
        blocks = data[: nx // 2 * 2, : ny // 2 * 2].reshape(nx // 2, 2, ny // 2, 2, nz)
        affine = image.affine.copy()
        affine[:3, 3] += affine[:3, :2] @ [0.5, 0.5]
        affine[:3, :2] *= 2
        nib.save(nib.Nifti1Image(blocks.mean(axis=(1, 3)), affine), target)
    return target


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("subsets") / "sim"
    spec = TrialSpec(n_subjects=1, months=(0,), flair=True, seed=41)
    simulate_trial(root, spec, load_protocol("flair"))
    return root


@pytest.fixture(scope="module", params=CASES)
def outcome(
    request: pytest.FixtureRequest, simulated: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, tuple[str, ...]], dict[str, object], Path]:
    """(protocol, subsets, validate's JSON report, run's derivatives folder)."""
    protocol, chosen = request.param
    tmp = tmp_path_factory.mktemp(protocol)
    if protocol == "esims-renamed":
        protocol = str(_renamed(tmp / "esims-renamed.yaml"))
    subsets = _dataset(simulated, tmp / "bids", protocol, chosen)
    report = validate_dataset(tmp / "bids", load_protocol(protocol)).as_dict()
    fast = protocol_with_preset(protocol, "fast", tmp / f"{Path(protocol).stem}_fast.yaml")
    out = tmp / "out"
    argv = ["run", str(tmp / "bids"), str(out), "participant", "--protocol", str(fast)]
    main([*argv, "-w", str(tmp / "work"), "--nprocs", "2"])
    return protocol, subsets, report, out / "mriproc"


def test_validate_promises_what_run_delivers(
    outcome: tuple[str, dict[str, tuple[str, ...]], dict[str, object], Path],
) -> None:
    protocol, subsets, report, out = outcome
    endpoints = read_table(out / "endpoints.tsv")
    errors = read_table(out / "errors.tsv")
    skipped = {str(e.participant_id): str(e.reason) for e in errors.itertuples()}
    reading = load_protocol(protocol).reading_space
    sessions = report["sessions"]
    assert isinstance(sessions, list) and len(sessions) == len(subsets)
    for session in sessions:
        participant = session["participant_id"]
        subset = subsets[participant.removeprefix("sub-")]
        rows = endpoints[endpoints.participant_id == participant]
        assert len(rows), (protocol, subset, "no rows")
        promised_na: dict[str, str] = session["unavailable_endpoints"]
        delivered = {r.endpoint: (r.value, r.status, r.note) for r in rows.itertuples()}
        na = {name for name, (value, _, _) in delivered.items() if _missing(value)}
        assert na == set(promised_na), (protocol, subset, na ^ set(promised_na))
        for name, (value, status, note) in delivered.items():
            if name in promised_na:
                promised = promised_na[name]
                if reading not in subset:  # skipped: the reason names the reading space
                    assert status == f"needs {reading} (missing)", (protocol, subset, name)
                elif participant in skipped:  # no endpoint computable: one reason for all
                    assert status == skipped[participant], (protocol, subset, name, status)
                    for role in _roles(promised):
                        assert f"{role} (missing)" in status, (protocol, subset, name, status)
                elif "tissue model" in promised:  # too few tissue-model channels
                    assert status == promised, (protocol, subset, name, status)
                else:  # each contrast validate names as lacking is named in the status
                    for role in _roles(promised):
                        assert f"{role} (missing)" in status, (protocol, subset, name, status)
                continue
            assert status == "ok" and math.isfinite(float(value)), (protocol, subset, name)
            if name in ("pcf", "bpf"):
                less = bool(session["tissue_model_without"])
                assert ("less precise" in str(note)) == less, (protocol, subset, name, note)


def test_no_processed_session_fails(
    outcome: tuple[str, dict[str, tuple[str, ...]], dict[str, object], Path],
) -> None:
    """The only errors.tsv rows are skipped sessions: without the reading space, or
    without any endpoint whose contrasts they have (every one n/a in validate too)."""
    protocol, subsets, report, out = outcome
    reading = load_protocol(protocol).reading_space
    errors = read_table(out / "errors.tsv")
    assert set(errors.stage) <= {"inputs"}, errors.to_dict("records")
    sessions = report["sessions"]
    assert isinstance(sessions, list)
    nothing = {
        s["participant_id"]
        for s in sessions
        if set(VISIT_ENDPOINTS) <= set(s["unavailable_endpoints"])
    }
    assert set(errors.participant_id) == nothing, errors.to_dict("records")
    for row in errors.itertuples():
        subset = subsets[str(row.participant_id).removeprefix("sub-")]
        expected = f"needs {reading} (missing)" if reading not in subset else "nothing to compute"
        assert str(row.reason).startswith(expected), (subset, row.reason)


def _roles(reason: str) -> list[str]:
    """The contrast roles a validate reason names (``needs A, B at ses-M00``, ``needs A
    (missing): at least ...``)."""
    named = reason.removeprefix("needs ").split(":")[0].split(" at ")[0]
    return [part.split(" (")[0] for part in named.split(", ")]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
