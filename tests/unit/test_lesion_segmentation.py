"""T2 lesions, CEL and black holes on small synthetic scans with known answers."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mriproc.blackholes import segment_black_holes
from mriproc.config import load_protocol
from mriproc.enhancing import segment_enhancing
from mriproc.evaluation import dice
from mriproc.t2lesions import LesionSegmentationError, segment_t2_lesions
from mriproc.visit_lesions import visit_lesions

ZOOMS = (1.0, 1.0, 3.0)
SHAPE = (64, 64, 10)
PROTOCOL = load_protocol("esims")


def ball(centre: tuple[int, int, int], radius_mm: float) -> np.ndarray:
    grid = np.indices(SHAPE).astype(float)
    squared = sum(((g - c) * z) ** 2 for g, c, z in zip(grid, centre, ZOOMS, strict=True))
    return np.asarray(squared <= radius_mm**2)


class Scan:
    """White matter in the middle, a grey-matter band around it, CSF outside."""

    def __init__(self, seed: int = 0) -> None:
        x, y = np.indices(SHAPE)[:2]
        radius = np.hypot(x - 32, y - 32)
        self.brain = np.asarray(radius <= 28)
        self.wm = np.asarray(radius <= 20).astype(np.float32)
        self.gm = np.asarray((radius > 20) & (radius <= 28)).astype(np.float32)
        self.csf = np.asarray(radius > 28).astype(np.float32)
        self.lesions = [ball((26, 30, 5), 4.0), ball((38, 38, 4), 3.5), ball((32, 22, 6), 3.0)]
        self.truth = np.any(self.lesions, axis=0)
        self.rng = np.random.default_rng(seed)

    def contrast(self, wm: float, gm: float, csf: float, lesion: float, sd: float) -> np.ndarray:
        image = wm * self.wm + gm * self.gm + csf * self.csf
        image = np.where(self.truth, lesion, image)
        return np.asarray(image + self.rng.normal(0.0, sd, SHAPE), dtype=np.float32)

    def tissue(self) -> dict[str, np.ndarray]:
        # As a tissue model sees lesions: not white matter.
        wm = np.where(self.truth, 0.0, self.wm).astype(np.float32)
        gm = np.where(self.truth, 1.0, self.gm).astype(np.float32)
        return {"WM": wm, "GM": gm, "CSF": self.csf}


def t2_lesions(scan: Scan, channels: list[np.ndarray]) -> np.ndarray:
    found = segment_t2_lesions(
        channels,
        scan.tissue(),
        scan.wm,
        scan.brain,
        ZOOMS,
        params=PROTOCOL.t2_lesions,
        labelling=PROTOCOL.labelling,
    )
    return found.lesions.labels


def test_t2_lesions_are_found_and_cortex_is_not() -> None:
    scan = Scan()
    pd = scan.contrast(wm=1000, gm=1150, csf=900, lesion=1350, sd=20)
    t2 = scan.contrast(wm=500, gm=650, csf=1400, lesion=900, sd=20)
    # A bright spot in the cortex (template WM probability 0) is not a WM lesion.
    cortex_spot = ball((32, 57, 5), 3.0)
    pd[cortex_spot], t2[cortex_spot] = 1350, 900
    labels = t2_lesions(scan, [pd, t2])
    assert labels.max() == 3
    assert not (labels[cortex_spot] > 0).any()
    assert dice(scan.truth, labels > 0) > 0.85


def test_t2_lesions_need_hyperintensity_on_every_channel() -> None:
    """Bright on T2w but not on PDw (CSF-like) is not a lesion."""
    scan = Scan(seed=1)
    pd = scan.contrast(wm=1000, gm=1150, csf=900, lesion=900, sd=20)
    t2 = scan.contrast(wm=500, gm=650, csf=1400, lesion=1400, sd=20)
    assert t2_lesions(scan, [pd, t2]).max() == 0


def test_t2_lesions_without_white_matter_fail_with_a_reason() -> None:
    scan = Scan()
    scan.wm[:] = 0.0
    flair = scan.contrast(wm=100, gm=120, csf=20, lesion=200, sd=5)
    with pytest.raises(LesionSegmentationError, match="white-matter"):
        t2_lesions(scan, [flair])


def test_enhancing_lesions_exclude_vessels_plexus_and_foci() -> None:
    scan = Scan(seed=2)
    pre = scan.contrast(wm=800, gm=650, csf=300, lesion=720, sd=15)
    post = pre * 1.04 + scan.rng.normal(0.0, 15, SHAPE).astype(np.float32)
    enhancing = scan.lesions[0]
    post[enhancing] += 350  # the one CEL
    surface_vessel = ball((32, 59, 5), 2.0)  # on the brain surface (sinus, cortical vein)
    post[surface_vessel] += 500
    template_csf = np.zeros(SHAPE, np.float32)
    plexus = ball((40, 26, 5), 2.0)  # in a ventricle
    template_csf[ball((40, 26, 5), 4.0)] = 1.0
    post[plexus] += 500
    post[38, 38, 4] += 500  # a 1-voxel focus inside another T2 lesion
    nawm = (scan.wm > 0) & ~scan.truth
    found = segment_enhancing(
        pre,
        post,
        nawm,
        scan.brain,
        template_csf,
        ZOOMS,
        params=PROTOCOL.cel,
        labelling=PROTOCOL.labelling,
        t2_lesions=scan.truth | plexus,
    )
    assert found.lesions.count == 1
    assert dice(enhancing, found.lesions.mask) > 0.8
    assert found.post_scale == pytest.approx(1 / 1.04, rel=0.01)


def test_black_holes_are_t1_hypointense_lesion_parts_not_enhancing() -> None:
    scan = Scan(seed=3)
    t1 = scan.contrast(wm=800, gm=650, csf=300, lesion=720, sd=10)
    hole = ball((26, 30, 5), 3.0)  # the core of the first lesion (radius 4 mm)
    enhancing_hole = scan.lesions[1]
    t1[hole] = 560
    t1[enhancing_hole] = 560
    found = segment_black_holes(
        t1,
        scan.truth,
        scan.gm,
        scan.brain,
        ZOOMS,
        params=PROTOCOL.black_holes,
        labelling=PROTOCOL.labelling,
        enhancing=enhancing_hole,
    )
    assert found.threshold == pytest.approx(650, abs=5)
    assert found.lesions.count == 1
    assert dice(hole, found.lesions.mask) > 0.8


def write_visit(
    scan: Scan, folder: Path
) -> tuple[dict[str, Path], dict[str, Path], dict[str, Path]]:
    """The images ``visit_lesions`` reads, as NIfTI files on one grid."""
    affine = np.diag([*ZOOMS, 1.0])

    def save(name: str, data: np.ndarray) -> Path:
        path = folder / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine), path)
        return path

    tissue = {k: save(k, v) for k, v in scan.tissue().items()}
    tissue["brain"] = save("brain", scan.brain)
    tissue["dseg"] = save("dseg", np.zeros(SHAPE))
    template = {
        "WM": save("template_WM", scan.wm),
        "CSF": save("template_CSF", scan.csf),
        "slab": save("slab", np.ones(SHAPE)),
    }
    images = {
        "PDw": save("pd", scan.contrast(wm=1000, gm=1150, csf=900, lesion=1350, sd=20)),
        "T2w": save("t2", scan.contrast(wm=500, gm=650, csf=1400, lesion=900, sd=20)),
    }
    return images, tissue, template


def test_a_rater_mask_gives_the_lesion_endpoints(tmp_path: Path) -> None:
    scan = Scan(seed=4)
    images, tissue, template = write_visit(scan, tmp_path)
    rater = tmp_path / "rater.nii.gz"
    nib.save(nib.Nifti1Image(scan.lesions[0].astype(np.uint8), np.diag([*ZOOMS, 1.0])), rater)
    outcome = visit_lesions(
        images, tissue, template, protocol=PROTOCOL, out_dir=tmp_path / "out", rater_mask=rater
    )
    assert outcome.measures["t2_lesion_count"] == 1  # the rater's one lesion
    assert outcome.rater["automated_count"] == 3
    assert outcome.rater["lesion_f1"] == pytest.approx(0.5)  # 1 of 3 found lesions is the rater's
    # By the MSSEG convention too (the lesions are far over 3 voxels).
    assert outcome.rater["detection_f1"] == pytest.approx(0.5)
    assert outcome.rater["detection_recall"] == 1.0
    assert outcome.not_available["cel_count"] == "needs T1w (missing), T1w_gad (missing)"


def test_a_rater_mask_off_the_grid_makes_t2_endpoints_na(tmp_path: Path) -> None:
    scan = Scan(seed=5)
    images, tissue, template = write_visit(scan, tmp_path)
    rater = tmp_path / "rater.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), rater)
    outcome = visit_lesions(
        images, tissue, template, protocol=PROTOCOL, out_dir=tmp_path / "out", rater_mask=rater
    )
    reason = outcome.not_available["t2_lesion_volume"]
    assert str(rater) in reason and "not on the reading-space grid" in reason
    assert "t2_lesion_count" not in outcome.measures
    assert "pcf" in outcome.measures


def volume_classifier(folder: Path, spread: float) -> Path:
    """A classifier file whose probability is 0.5 at 150 mm3 and rises with the log
    volume (``spread``: the log-volume change that moves the score by one)."""
    from mriproc.lesion_candidates import LesionClassifier

    model = LesionClassifier(
        channels=PROTOCOL.t2_lesions.channels,
        features=("volume_mm3",),
        log_features=("volume_mm3",),
        fill=np.zeros(1),
        mean=np.array([np.log(150.0)]),
        scale=np.array([spread]),
        coefficients=np.array([1.0]),
        intercept=0.0,
    )
    path = folder / "model.json"
    path.write_text(model.to_json())
    return path


def test_a_classifier_decides_each_candidate(tmp_path: Path) -> None:
    """Candidates of the intensity method are kept or dropped by the classifier file the
    protocol names; each kept lesion's probability is recorded."""
    import dataclasses

    scan = Scan(seed=4)
    pd = scan.contrast(wm=1000, gm=1150, csf=900, lesion=1350, sd=20)
    t2 = scan.contrast(wm=500, gm=650, csf=1400, lesion=900, sd=20)
    # A model that keeps candidates of at least 150 mm3: the two larger lesions
    # (balls of about 270 and 180 mm3), not the smallest (about 110 mm3).
    path = volume_classifier(tmp_path, spread=0.05)
    kept_by = {}
    for signature in ("global", "per_lesion"):
        params = dataclasses.replace(
            PROTOCOL.t2_lesions, classifier=str(path), lesion_signature=signature
        )
        found = segment_t2_lesions(
            [pd, t2], scan.tissue(), scan.wm, scan.brain, ZOOMS,
            params=params, labelling=PROTOCOL.labelling,
        )  # fmt: skip
        assert found.candidates == 3 and found.lesions.count == 2
        assert found.probabilities is not None and (found.probabilities > 0.5).all()
        kept_by[signature] = found.lesions.mask
        assert not (found.lesions.mask & scan.lesions[2]).any()
        assert dice(scan.lesions[0] | scan.lesions[1], found.lesions.mask) > 0.85
    # Both signatures delineate these uniform lesions alike.
    assert dice(kept_by["global"], kept_by["per_lesion"]) > 0.9


def test_min_probability_and_the_lesion_signature_decide(tmp_path: Path) -> None:
    """min_probability sets which candidates stay; a per-lesion signature delineates a
    faint lesion at its own contrast where the global one (set by the bright lesions)
    cuts it short."""
    import dataclasses

    scan = Scan(seed=5)
    pd = scan.contrast(wm=1000, gm=1150, csf=900, lesion=1600, sd=20)
    t2 = scan.contrast(wm=500, gm=650, csf=1400, lesion=1200, sd=20)
    # A faint lesion whose rim is three quarters lesion (partial volume): lesion by
    # the half-voxel convention, but a quarter as bright as the bright lesions' signature.
    faint = scan.lesions[1]
    rim = faint & ~ball((38, 38, 4), 2.5)
    pd[faint] = 1180 + scan.rng.normal(0.0, 20, int(faint.sum()))
    t2[faint] = 710 + scan.rng.normal(0.0, 20, int(faint.sum()))
    pd[rim] -= 0.25 * 180
    t2[rim] -= 0.25 * 210
    path = volume_classifier(tmp_path, spread=0.5)

    def segment(**changes: object) -> np.ndarray:
        # The intensity method as the test's figures were made (not the protocol's).
        fixed = {"seed_z": 2.0, "wm_prior_min": 0.5, "lesion_signature": "global"}
        params = dataclasses.replace(
            PROTOCOL.t2_lesions, classifier=str(path), **{**fixed, **changes}
        )
        found = segment_t2_lesions(
            [pd, t2], scan.tissue(), scan.wm, scan.brain, ZOOMS,
            params=params, labelling=PROTOCOL.labelling,
        )  # fmt: skip
        return found.lesions.labels

    counts = [segment(min_probability=p).max() for p in (0.0, 0.2, 0.5)]
    assert counts[0] == 3 and counts[0] > counts[1] > counts[2] >= 1
    near_faint = ball((38, 38, 4), 6.0)
    on_faint = {}
    for signature in ("global", "per_lesion"):
        found = segment(min_probability=0.0, lesion_signature=signature) > 0
        on_faint[signature] = dice(faint, near_faint & found)
    assert on_faint["per_lesion"] > 0.75 and on_faint["per_lesion"] > on_faint["global"] + 0.1
