"""Error isolation: each kind of bad input fails only what depends on it, with its reason.

One small real run covers every case: sub-001 ses-M00 is processed (its T1w stored
left-right flipped, its post-contrast T1w a zero-byte file, an unknown-suffix file
beside them); sub-004 ses-M00 has PD/T2 only (no T1 scan at all) and is processed;
every other session is skipped before any workflow runs, each for one defect (a
missing or unusable reading-space image, or no endpoint whose contrasts it has).
Contrasts that do not register (refused inside the visit workflow) are in
``tests/e2e/test_visit_run.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mriproc.cli import EXIT_FAILURE
from mriproc.config import load_protocol
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture

ROLES = {
    "PDw": "PDw",
    "T2w": "T2w",
    "T1w": "T1w",
    "T1w_gad": "ce-gadolinium_T1w",
}


def _anat(root: Path, participant: str, session: str) -> Path:
    return root / f"sub-{participant}" / f"ses-{session}" / "anat"


def _name(participant: str, session: str, role: str) -> str:
    return f"sub-{participant}_ses-{session}_{ROLES[role]}.nii.gz"


def _copy_session(root: Path, participant: str, session: str) -> Path:
    """A copy of sub-001 ses-M00's images as ``participant`` ``session``."""
    target = _anat(root, participant, session)
    target.mkdir(parents=True, exist_ok=True)
    for role in ROLES:
        shutil.copy(
            _anat(root, "001", "M00") / _name("001", "M00", role),
            target / _name(participant, session, role),
        )
    return target


def _rewrite(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, affine), path)


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory, run_fast: RunFast) -> tuple[int, Path, Path]:
    tmp = tmp_path_factory.mktemp("isolation")
    root = tmp / "sim"
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0,), seed=37), load_protocol("esims"))
    pristine = {
        role: nib.load(_anat(root, "001", "M00") / _name("001", "M00", role)) for role in ROLES
    }
    data = {role: np.asarray(image.dataobj) for role, image in pristine.items()}
    for participant, session in (
        ("001", "M12"),
        ("002", "M00"),
        ("002", "M12"),
        ("002", "M24"),
        ("003", "M00"),
        ("004", "M00"),
    ):
        _copy_session(root, participant, session)
    anat = _anat(root, "001", "M00")
    # Processed session: T1w stored left-right flipped (same world image), empty T1w_gad,
    # a file of a suffix the protocol does not know.
    t1 = pristine["T1w"]
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = t1.shape[0] - 1
    _rewrite(anat / _name("001", "M00", "T1w"), data["T1w"][::-1], t1.affine @ flip)
    (anat / _name("001", "M00", "T1w_gad")).write_bytes(b"")
    shutil.copy(anat / _name("001", "M00", "PDw"), anat / "sub-001_ses-M00_angio.nii.gz")
    # sub-001 ses-M12: truncated reading-space image; ses-M24: no images at all.
    truncated = _anat(root, "001", "M12") / _name("001", "M12", "T2w")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (root / "sub-001" / "ses-M24" / "anat").mkdir(parents=True)
    # sub-002 ses-M00: NaN voxels in PDw and two runs of T1w.
    nan = data["PDw"].astype(np.float32)
    nan[10, 10, 5] = np.nan
    nan[11, 10, 5] = np.inf
    _rewrite(_anat(root, "002", "M00") / _name("002", "M00", "PDw"), nan, pristine["PDw"].affine)
    t1_002 = _anat(root, "002", "M00") / _name("002", "M00", "T1w")
    shutil.copy(t1_002, t1_002.with_name("sub-002_ses-M00_run-1_T1w.nii.gz"))
    t1_002.rename(t1_002.with_name("sub-002_ses-M00_run-2_T1w.nii.gz"))
    # sub-002 ses-M12: a 4-D T2w; ses-M24: PDw on another grid than T2w.
    four_d = np.stack([data["T2w"], data["T2w"]], axis=-1)
    _rewrite(_anat(root, "002", "M12") / _name("002", "M12", "T2w"), four_d, pristine["T2w"].affine)
    _rewrite(
        _anat(root, "002", "M24") / _name("002", "M24", "PDw"),
        data["PDw"][:, :, 1:],
        pristine["PDw"].affine,
    )
    # sub-003 ses-M00: the reading-space contrast is missing.
    (_anat(root, "003", "M00") / _name("003", "M00", "T2w")).unlink()
    # sub-004 ses-M00: dual-echo PD/T2 only, as public dual-echo data often is.
    for role in ("T1w", "T1w_gad"):
        (_anat(root, "004", "M00") / _name("004", "M00", role)).unlink()
    with (root / "participants.tsv").open("a") as table:
        header = (root / "participants.tsv").read_text().splitlines()[0].split("\t")
        for participant in ("sub-002", "sub-003", "sub-004"):
            row = {"participant_id": participant, "arm": "ivig"}
            table.write("\t".join(row.get(c, "n/a") for c in header) + "\n")
    code, out = run_fast(root, tmp)
    return code, root, out


def _errors(out: Path) -> dict[tuple[str, str, str], str]:
    table = read_table(out / "errors.tsv")
    rows = {}
    for row in table.itertuples():
        rows[(row.participant_id, str(row.session), row.stage)] = row.reason
    return rows


def _endpoints(out: Path, participant: str, session: str) -> dict[str, tuple[float, str]]:
    table = read_table(out / "endpoints.tsv")
    table = table[(table.participant_id == participant) & (table.session == session)]
    return {row.endpoint: (row.value, row.status) for row in table.itertuples()}


def test_exit_status_is_failure(isolated: tuple[int, Path, Path]) -> None:
    assert isolated[0] == EXIT_FAILURE


def test_flipped_t1w_is_processed_and_other_endpoints_complete(
    isolated: tuple[int, Path, Path],
) -> None:
    _, _, out = isolated
    endpoints = _endpoints(out, "sub-001", "ses-M00")
    for endpoint in ("t2_lesion_volume", "t2_lesion_count", "black_hole_volume", "pcf", "bpf"):
        assert endpoints[endpoint][1] == "ok", endpoint  # black holes need the flipped T1w
    anat = out / "sub-001" / "ses-M00" / "anat"
    assert (anat / "sub-001_ses-M00_desc-coreg_T1w.nii.gz").is_file()


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            ("sub-001", "ses-M00", "input-file"),
            "T1w_gad not used: sub-001_ses-M00_ce-gadolinium_T1w.nii.gz: empty file (0 bytes)",
        ),
        (
            ("sub-001", "ses-M00", "ignored"),
            "sub-001_ses-M00_angio.nii.gz: suffix 'angio' is not a contrast of protocol 'esims'",
        ),
        (
            ("sub-001", "ses-M12", "inputs"),
            "needs T2w (sub-001_ses-M12_T2w.nii.gz: corrupt or truncated gzip file",
        ),
        (("sub-001", "ses-M24", "inputs"), "the session holds no images"),
        (
            ("sub-002", "ses-M00", "inputs"),
            "nothing to compute: needs PDw (sub-002_ses-M00_PDw.nii.gz: 2 voxel(s) are NaN "
            "or Inf), T1w (2 files match",
        ),
        (
            ("sub-002", "ses-M00", "input-file"),
            "T1w not used: 2 files match (sub-002_ses-M00_run-1_T1w.nii.gz, "
            "sub-002_ses-M00_run-2_T1w.nii.gz)",
        ),
        (
            ("sub-002", "ses-M12", "inputs"),
            "needs T2w (sub-002_ses-M12_T2w.nii.gz: 4-D image with 2 volumes",
        ),
        (
            ("sub-002", "ses-M24", "inputs"),
            "nothing to compute: needs PDw (sub-002_ses-M24_PDw.nii.gz and "
            "sub-002_ses-M24_T2w.nii.gz should share one dual-echo geometry but",
        ),
        (("sub-003", "ses-M00", "inputs"), "needs T2w (missing)"),
    ],
    ids=[
        "zero-byte",
        "unknown-suffix",
        "truncated",
        "no-images",
        "nan-inf",
        "duplicate-runs",
        "4-d",
        "echo-geometry",
        "missing-contrast",
    ],
)
def test_errors_tsv_names_each_problem(
    isolated: tuple[int, Path, Path], key: tuple[str, str, str], expected: str
) -> None:
    _, _, out = isolated
    errors = _errors(out)
    assert key in errors, sorted(errors)
    assert errors[key].startswith(expected), errors[key]


def test_each_endpoint_says_why_it_is_missing(isolated: tuple[int, Path, Path]) -> None:
    _, _, out = isolated
    cel_value, cel_status = _endpoints(out, "sub-001", "ses-M00")["cel_count"]
    assert np.isnan(cel_value)
    assert (
        cel_status
        == "needs T1w_gad (sub-001_ses-M00_ce-gadolinium_T1w.nii.gz: empty file (0 bytes))"
    )
    errors = _errors(out)
    for participant, session in (
        ("sub-001", "ses-M12"),
        ("sub-002", "ses-M24"),
        ("sub-003", "ses-M00"),
    ):
        endpoints = _endpoints(out, participant, session)
        assert all(np.isnan(v) for v, _ in endpoints.values())
        assert {s for _, s in endpoints.values()} == {errors[(participant, session, "inputs")]}
    # The follow-up's comparisons say why too (its own images are unusable).
    assert _endpoints(out, "sub-001", "ses-M12")["pbvc"][1].startswith("needs T2w (")


def test_skipped_sessions_never_reach_the_workflow(isolated: tuple[int, Path, Path]) -> None:
    """Only the usable sessions were processed; no crash file was written."""
    _, _, out = isolated
    processed = {p.parent.parent.name + "/" + p.parent.name for p in out.glob("sub-*/ses-*/anat")}
    assert processed == {"sub-001/ses-M00", "sub-004/ses-M00"}
    assert not list((out / "logs").rglob("crash-*"))
    assert read_table(out / "errors.tsv").crash_file.isna().all()


def test_a_visit_without_t1_scans_keeps_its_lesions_and_pcf(
    isolated: tuple[int, Path, Path],
) -> None:
    # Before: every endpoint of such a visit was n/a ("processing failed: TypeError:
    # '_Undefined' object is not iterable" in the outputs node).
    _, _, out = isolated
    endpoints = _endpoints(out, "sub-004", "ses-M00")
    for name in ("t2_lesion_volume", "t2_lesion_count", "pcf", "bpf"):
        value, status = endpoints[name]
        assert status == "ok" and np.isfinite(float(value)), (name, status)
    assert endpoints["black_hole_volume"][1] == "needs T1w (missing)"
    assert endpoints["cel_count"][1] == "needs T1w (missing), T1w_gad (missing)"
    assert ("sub-004", "ses-M00", "visit") not in _errors(out)
