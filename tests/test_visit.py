"""Per-visit processing: tissue fractions, the workflow graph and ``mriproc run`` end to end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriproc.cli import EXIT_OK
from mriproc.config import load_protocol
from mriproc.evaluation import dice
from mriproc.io.bids import discover_dataset
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.tables import read_table
from mriproc.tissues import TissueError, tissue_fractions
from mriproc.workflows.visit import init_visit_wf

RunFast = Callable[..., tuple[int, Path]]  # the conftest fixture


def phantom() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """CSF ball, WM, GM shell, CSF shell, nothing: blurred across slices, known fractions."""
    from scipy import ndimage

    grid = np.indices((60, 60, 30)).astype(np.float32)
    centre = np.array([29.5, 29.5, 14.5])[:, None, None, None]
    scale = np.array([1.0, 1.0, 2.0])[:, None, None, None]
    radius = np.sqrt((((grid - centre) * scale) ** 2).sum(axis=0))
    labels = np.select([radius < 6, radius < 14, radius < 20, radius < 24], [0, 2, 1, 0], 3)
    sharp = {name: (labels == k).astype(np.float32) for k, name in enumerate(("CSF", "GM", "WM"))}
    fractions = {k: ndimage.uniform_filter(v, size=(1, 1, 3)) for k, v in sharp.items()}
    return fractions, np.where(radius >= 22, 4, labels)  # 4: CSF next to the "skull"


def test_mixel_model_recovers_partial_volumes() -> None:
    fractions, labels = phantom()
    signatures = {
        "CSF": (880.0, 880.0, 250.0),
        "GM": (1140.0, 610.0, 500.0),
        "WM": (1020.0, 460.0, 575.0),
    }
    rng = np.random.default_rng(0)
    channels = [
        sum(fractions[k] * signatures[k][c] for k in fractions) + rng.normal(0, 20, labels.shape)
        for c in range(3)
    ]
    region = labels != 3
    edge = labels == 4
    brain = (fractions["GM"] + fractions["WM"]) > 0
    result, model = tissue_fractions(
        [np.asarray(c, dtype=np.float32) for c in channels], fractions, region, edge, brain
    )
    for name, estimate in (("CSF", result.csf), ("GM", result.gm), ("WM", result.wm)):
        truth = float(fractions[name][region].sum())
        assert abs(float(estimate.sum()) - truth) < 0.03 * truth, name
    assert np.allclose(model.signatures[0], signatures["CSF"], rtol=0.05)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_mixel_model_on_one_channel(channel: int) -> None:
    """A visit with one tissue-model channel: every class within 5 %.

    One channel cannot tell a two-class mixture from the third class (here a CSF/GM
    mixture has the WM signal of channel 0, a CSF/WM one the GM signal of channels 1
    and 2); the template priors weigh the components.  Before: WM +13 %, +39 %, +54 %.
    """
    fractions, labels = phantom()
    signatures = {"CSF": (880.0, 880.0, 250.0), "GM": (1140.0, 610.0, 500.0)}
    signatures["WM"] = (1020.0, 460.0, 575.0)
    noise = np.random.default_rng(0).normal(0, 20, labels.shape)
    image = sum(fractions[k] * signatures[k][channel] for k in fractions) + noise
    region = labels != 3
    brain = (fractions["GM"] + fractions["WM"]) > 0
    result, _ = tissue_fractions(
        [np.asarray(image, dtype=np.float32)], fractions, region, labels == 4, brain
    )
    for name, estimate in (("CSF", result.csf), ("GM", result.gm), ("WM", result.wm)):
        truth = float(fractions[name][region].sum())
        assert abs(float(estimate.sum()) / truth - 1) < 0.05, name
    with pytest.raises(TissueError, match="at least one contrast"):
        tissue_fractions([], fractions, region, labels == 4, brain)


def test_mixel_model_on_a_skull_stripped_scan() -> None:
    """Exact zeros near the skull (stripped away) do not collapse the noise estimate."""
    fractions, labels = phantom()
    signatures = {"CSF": (1500.0, 1400.0), "GM": (1890.0, 1000.0), "WM": (1700.0, 780.0)}
    rng = np.random.default_rng(1)
    tissue = sum(fractions[k] for k in fractions)
    channels = [
        np.where(
            tissue > 0.5,
            sum(fractions[k] * signatures[k][c] for k in fractions)
            + rng.normal(0, 40, labels.shape),
            0.0,
        ).astype(np.float32)
        for c in range(2)
    ]
    region = labels != 3
    result, model = tissue_fractions(
        channels, fractions, region, labels == 4, (fractions["GM"] + fractions["WM"]) > 0
    )
    assert np.isfinite(model.noise_sd).all() and (model.noise_sd > 10).all()
    truth = float(fractions["WM"][region].sum())
    assert abs(float(result.wm.sum()) - truth) < 0.05 * truth


def small_session(tmp_path: Path) -> Path:
    root = tmp_path / "sim"
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0,), seed=31), load_protocol("esims"))
    return root


def test_visit_workflow_graph(tmp_path: Path) -> None:
    root = small_session(tmp_path)
    protocol = load_protocol("esims")
    (session,) = discover_dataset(root, protocol).sessions
    wf = init_visit_wf(session=session, protocol=protocol, output_dir=tmp_path / "out")
    assert {"inputnode", "outputnode", "fit_wf.inputnode", "outputs_wf.outputs"} <= set(
        wf.list_node_names()
    )
    fit = wf.get_node("fit_wf")
    names = set(fit.list_node_names())
    # One N4 field for both echoes; T1w and post-gadolinium T1w registered, never the echoes.
    assert {"n4_pdw_t2w", "n4_t1w", "n4_t1w_gad", "coreg_t1w", "coreg_t1w_gad"} <= names
    assert not any(n.startswith("coreg_pdw") or n.startswith("coreg_t2w") for n in names)
    edges = {(u.name, v.name) for u, v in fit._graph.edges()}
    assert ("coreg_t1w", "coreg_t1w_gad") not in edges  # both register to the reading space
    # Registration runs alongside the template fit; its check needs the intracranial map.
    assert ("brain_masks", "coreg_t1w") not in edges
    assert {("coreg_t1w", "coreg_quality_t1w"), ("brain_masks", "coreg_quality_t1w")} <= edges
    assert ("brain_masks", "tissue_classes") in edges
    # esims unmixes the two echoes (one grid); enhancement is not tissue.
    assert ("n4_pdw_t2w", "pcf_channels") in edges
    assert ("coreg_t1w", "pcf_channels") not in edges
    assert ("coreg_t1w_gad", "pcf_channels") not in edges


# One run of five single-visit participants covers the end-to-end cases:
# sub-001 as simulated; sub-002 with a rater's lesion mask (the ground truth);
# sub-003 without its post-contrast T1w; sub-004 with another subject's T1w; sub-005
# with a noise-only post-contrast T1w.
PRISTINE, RATER, NO_GAD, WRONG_T1, NOISE_GAD = (f"sub-00{i}" for i in range(1, 6))


@dataclass(frozen=True)
class VisitRun:
    root: Path
    out: Path
    code: int
    refused: dict[str, Path]  # participant -> the file that does not register

    def truth(self, participant: str) -> pd.DataFrame:
        table = read_table(self.root / "derivatives" / "groundtruth" / "endpoints.tsv")
        return table[table.participant_id == participant].set_index("endpoint")

    def endpoints(self, participant: str) -> pd.DataFrame:
        table = read_table(self.out / "endpoints.tsv")
        return table[table.participant_id == participant].set_index("endpoint")

    def anat(self, participant: str) -> Path:
        return self.out / participant / "ses-M00" / "anat"


@pytest.fixture(scope="module")
def visit_run(tmp_path_factory: pytest.TempPathFactory, run_fast: RunFast) -> VisitRun:
    tmp = tmp_path_factory.mktemp("visit")
    root = tmp / "sim"
    simulate_trial(root, TrialSpec(n_subjects=5, months=(0,), seed=31), load_protocol("esims"))

    def anat(participant: str) -> Path:
        return root / participant / "ses-M00" / "anat"

    name = f"{RATER}_ses-M00_desc-t2lesion_mask.nii.gz"
    raters = tmp / "raters" / RATER / "ses-M00" / "anat"
    raters.mkdir(parents=True)
    truth_dir = root / "derivatives" / "groundtruth" / RATER / "ses-M00" / "anat"
    (raters / name).write_bytes((truth_dir / name).read_bytes())
    (anat(NO_GAD) / f"{NO_GAD}_ses-M00_ce-gadolinium_T1w.nii.gz").unlink()
    wrong = anat(WRONG_T1) / f"{WRONG_T1}_ses-M00_T1w.nii.gz"
    other = nib.load(anat(PRISTINE) / f"{PRISTINE}_ses-M00_T1w.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(other.dataobj), nib.load(wrong).affine), wrong)
    blank = anat(NOISE_GAD) / f"{NOISE_GAD}_ses-M00_ce-gadolinium_T1w.nii.gz"
    image = nib.load(blank)
    noise = np.random.default_rng(0).rayleigh(50.0, image.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, image.affine), blank)

    code, out = run_fast(root, tmp, "--rater-masks", str(tmp / "raters"))
    return VisitRun(root, out, code, {WRONG_T1: wrong, NOISE_GAD: blank})


def test_run_writes_derivatives_and_endpoints(visit_run: VisitRun) -> None:
    anat = visit_run.anat(PRISTINE)
    for name in (
        "desc-brain_mask",
        "desc-icv_mask",
        "desc-pcfslab_mask",
        "dseg",
        "label-CSF_probseg",
        "desc-coreg_T1w",
        "ce-gadolinium_desc-coreg_T1w",
        "desc-t2lesion_mask",
        "desc-lesions_dseg",
        "desc-blackhole_mask",
        "desc-cel_mask",
    ):
        image = anat / f"{PRISTINE}_ses-M00_{name}.nii.gz"
        assert image.is_file(), image
        assert image.with_name(image.name.replace(".nii.gz", ".json")).is_file()
    assert (anat / f"{PRISTINE}_ses-M00_from-T1w_to-T2w_mode-image_xfm.txt").is_file()
    endpoints, truth = visit_run.endpoints(PRISTINE), visit_run.truth(PRISTINE)
    # Loose bounds: the accuracy targets are checked by benchmarks/accuracy.py.
    for endpoint, tolerance in (("pcf", 0.1), ("bpf", 0.1), ("t2_lesion_volume", 5.0)):
        assert endpoints.loc[endpoint, "status"] == "ok"
        assert abs(endpoints.loc[endpoint, "value"] - truth.loc[endpoint, "value"]) < tolerance
    assert endpoints.loc["t2_lesion_count", "value"] > 0
    errors = read_table(visit_run.out / "errors.tsv")
    assert set(errors.participant_id) == set(visit_run.refused)  # only the refused contrasts
    lesions = read_table(visit_run.out / "lesions.tsv")
    lesions = lesions[lesions.participant_id == PRISTINE]
    assert len(lesions) == endpoints.loc["t2_lesion_count", "value"]
    assert (lesions.category == "baseline").all()
    label_map = nib.load(anat / f"{PRISTINE}_ses-M00_desc-lesions_dseg.nii.gz")
    assert int(np.asarray(label_map.dataobj).max()) == len(lesions)


def test_run_brain_mask_matches_ground_truth(visit_run: VisitRun) -> None:
    name = f"{PRISTINE}_ses-M00_desc-brain_mask.nii.gz"
    ours = np.asarray(nib.load(visit_run.anat(PRISTINE) / name).dataobj) > 0
    truth_dir = visit_run.root / "derivatives" / "groundtruth" / PRISTINE / "ses-M00" / "anat"
    truth = np.asarray(nib.load(truth_dir / name).dataobj) > 0
    assert dice(ours, truth) > 0.96


def test_missing_post_contrast_makes_only_cel_endpoints_na(visit_run: VisitRun) -> None:
    endpoints = visit_run.endpoints(NO_GAD)
    for endpoint in ("cel_count", "cel_volume"):
        assert np.isnan(endpoints.loc[endpoint, "value"])
        assert endpoints.loc[endpoint, "status"] == "needs T1w_gad (missing)"
    for endpoint in ("t2_lesion_volume", "black_hole_count", "pcf", "bpf"):
        assert endpoints.loc[endpoint, "status"] == "ok", endpoint
    lesions = read_table(visit_run.out / "lesions.tsv")
    assert lesions[lesions.participant_id == NO_GAD].enhancing.isna().all()


def test_rater_masks_are_used_and_compared(visit_run: VisitRun) -> None:
    """A rater's mask (here the ground truth) gives the lesion endpoints; agreement is listed."""
    endpoints, truth = visit_run.endpoints(RATER), visit_run.truth(RATER)
    for endpoint in ("t2_lesion_volume", "t2_lesion_count"):
        assert endpoints.loc[endpoint, "value"] == pytest.approx(truth.loc[endpoint, "value"])
        assert endpoints.loc[endpoint, "note"] == "rater mask"
    assert (visit_run.endpoints(PRISTINE).note != "rater mask").all()  # only where one exists
    (row,) = read_table(visit_run.out / "rater_agreement.tsv").itertuples()
    assert row.participant_id == RATER
    assert row.rater_count == truth.loc["t2_lesion_count", "value"]
    assert 0.5 < row.dice < 1.0 and 0.5 < row.lesion_f1 <= 1.0
    assert (visit_run.anat(RATER) / f"{RATER}_ses-M00_desc-t2lesionautomated_mask.nii.gz").is_file()


def test_quality_check_refuses_noise_and_the_tissue_model_goes_on_without_it(
    tmp_path: Path,
) -> None:
    """Noise registered onto an anatomical image: refused, never a failed node; the
    tissue model is fitted on the channels that passed, and fails (naming them) only
    when none did."""
    from scipy import ndimage

    from mriproc.interfaces.visit import CoregistrationQuality, TissueClasses

    fractions, _ = phantom()
    anatomy = 100 * fractions["CSF"] + 60 * fractions["GM"] + 40 * fractions["WM"]
    noise = np.random.default_rng(1).rayleigh(30.0, anatomy.shape)
    files = {}
    for name, data in (
        ("fixed", anatomy),
        ("good", ndimage.gaussian_filter(anatomy, 0.7) * 1.3 + 5),
        ("noise", noise),
        ("mask", np.ones(anatomy.shape)),
    ):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), files[name])

    def check(registered: str) -> dict[str, object]:
        node = CoregistrationQuality(
            registered=str(files[registered]),
            fixed=str(files["fixed"]),
            mask=str(files["mask"]),
            source=f"/data/{registered}_T1w.nii.gz",
            reference="/data/T2w.nii.gz",
            protocol=load_protocol("esims"),
        )
        return dict(node.run(cwd=str(tmp_path)).outputs.get())

    passed = check("good")
    assert passed["out_file"] == str(files["good"]) and passed["refused"] == ""
    refused = check("noise")
    assert refused["out_file"] == "" and refused["quality"] < passed["quality"]
    assert str(refused["refused"]).startswith("/data/noise_T1w.nii.gz: did not register")

    maps = {}
    for name, values in (
        ("icv", np.ones(anatomy.shape)),
        ("brain", fractions["GM"] + fractions["WM"]),
        ("slab", np.ones(anatomy.shape)),
        *((k, fractions[k]) for k in ("CSF", "GM", "WM")),
    ):
        maps[name] = str(tmp_path / f"template_{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(values, np.float32), np.eye(4)), maps[name])

    def tissues(channels: list[str]) -> dict[str, object]:
        node = TissueClasses(
            roles=["T2w", "T1w"],
            channels=channels,
            template_maps=maps,
            protocol=load_protocol("esims"),
        )
        cwd = tmp_path / ("tissue" + "".join("1" if c else "0" for c in channels))
        cwd.mkdir()
        return dict(node.run(cwd=str(cwd)).outputs.get())

    both = tissues([str(files["fixed"]), str(files["good"])])
    assert both["channels_used"] == ["T2w", "T1w"]
    alone = tissues([str(files["fixed"]), ""])
    assert alone["channels_used"] == ["T2w"]
    assert Path(alone["outputs"]["GM"]).is_file()  # type: ignore[index]
    with pytest.raises(TissueError, match=r"no tissue-model channel passed.*T2w, T1w"):
        tissues(["", ""])


def test_run_refuses_contrasts_that_do_not_register(visit_run: VisitRun) -> None:
    """A wrong subject's T1w and a noise-only post-contrast T1w fail the quality check.

    Neither is a tissue-model channel, so only the endpoints that need them are NA (with
    the reason) and the visit's other endpoints complete; errors.tsv names the files.
    """
    assert visit_run.code != EXIT_OK
    errors = read_table(visit_run.out / "errors.tsv").set_index("participant_id")
    assert set(errors.stage) == {"coregistration"}, errors
    for participant, path in visit_run.refused.items():
        reason = errors.loc[participant, "reason"]
        assert str(path) in reason and "did not register" in reason, reason
        assert pd.isna(errors.loc[participant, "crash_file"])
    for participant, role in ((WRONG_T1, "T1w"), (NOISE_GAD, "T1w_gad")):
        endpoints = visit_run.endpoints(participant)
        for endpoint in ("pcf", "bpf", "t2_lesion_volume", "t2_lesion_count"):
            row = endpoints.loc[endpoint]
            assert row.status == "ok" and np.isfinite(row.value), (participant, endpoint)
        for endpoint in ("cel_count", "cel_volume"):  # CEL need both T1w images
            row = endpoints.loc[endpoint]
            assert np.isnan(row.value), (participant, endpoint)
            assert f"{role} (refused by the co-registration check)" in row.status, row.status
    # Black holes need the pre-contrast T1w only.
    assert "refused" in visit_run.endpoints(WRONG_T1).loc["black_hole_volume", "status"]
    assert visit_run.endpoints(NOISE_GAD).loc["black_hole_volume", "status"] == "ok"
    # The refused contrast is not written as a co-registered derivative.
    anat = visit_run.anat(WRONG_T1)
    assert not (anat / f"{WRONG_T1}_ses-M00_desc-coreg_T1w.nii.gz").exists()
    assert not (anat / f"{WRONG_T1}_ses-M00_from-T1w_to-T2w_mode-image_xfm.txt").exists()
    assert (anat / f"{WRONG_T1}_ses-M00_ce-gadolinium_desc-coreg_T1w.nii.gz").is_file()
