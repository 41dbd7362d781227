"""Per-visit processing steps: the tissue-fraction (mixel) model on a phantom, and the
co-registration check and tissue model nodes on synthetic images."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mriproc.config import load_protocol
from mriproc.tissues import TissueError, tissue_fractions


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


def test_the_template_fit_check_reads_its_limits_from_the_protocol(tmp_path: Path) -> None:
    """A whole simulated head (about 1,500 mL) refused under limits of 1-100 mL: the
    limits are the protocol's (the default ones pass every e2e run's visits)."""
    import dataclasses

    from mriproc.demo import protocol_with_preset
    from mriproc.interfaces.visit import BrainMasks
    from mriproc.simulate import TrialSpec, simulate_trial
    from mriproc.visit import TemplateFitError

    protocol = load_protocol(protocol_with_preset("esims", "fast", tmp_path / "esims_fast.yaml"))
    simulate_trial(tmp_path / "sim", TrialSpec(n_subjects=1, months=(0,), seed=5), protocol)
    narrow = dataclasses.replace(
        protocol,
        registration=dataclasses.replace(protocol.registration, min_icv_ml=1.0, max_icv_ml=100.0),
    )
    (tmp_path / "fit").mkdir()
    node = BrainMasks(
        in_file=str(tmp_path / "sim/sub-001/ses-M00/anat/sub-001_ses-M00_T2w.nii.gz"),
        contrast="T2w",
        protocol=narrow,
    )
    with pytest.raises(
        TemplateFitError,
        match=r"T2w \(the reading space\): the template fit "
        r"gives an intracranial volume of \d+ mL .* outside the protocol's 1-100 mL",
    ):
        node.run(cwd=str(tmp_path / "fit"))
