"""The simulator's realistic appearance: real-scan difficulty in the signal, never in the truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mriproc.mr_signal import SEQUENCES, TISSUES, signal
from mriproc.simulate import TrialSpec
from mriproc.simulate.appearance import (
    CLASSIC,
    bright_structures,
    csf_flow_artefact,
    draw_appearance,
)
from mriproc.simulate.subject import ArmModel, draw_subject, signal_volume, visit_state
from mriproc.template import load_template

MODEL = ArmModel(atrophy_pct_per_year=0.0, atrophy_sd_pct_per_year=0.0, new_lesions_per_year=0.0)


@pytest.fixture(scope="module")
def realistic_subject():  # type: ignore[no-untyped-def]
    return draw_subject(
        load_template(),
        label="001",
        arm="placebo",
        model=MODEL,
        months=(0.0,),
        rng=np.random.default_rng([5, 0]),
        appearance=draw_appearance("realistic", np.random.default_rng([5, 0, 0, 2])),
    )


def test_classic_is_the_literature_model_and_realistic_draws_per_site() -> None:
    assert draw_appearance("classic", np.random.default_rng(1)) is CLASSIC
    assert CLASSIC.tissues == TISSUES and CLASSIC.sequences == SEQUENCES
    one, again, other = (
        draw_appearance("realistic", np.random.default_rng(seed)) for seed in (1, 1, 2)
    )
    assert one.tissues == again.tissues and one.csf_flow == again.csf_flow
    assert one.tissues["GM"] != other.tissues["GM"]
    # Cortex over white matter on FLAIR: 1.38 with the literature values; sites
    # spread around a lower typical value, as real scanners do.
    ratios = []
    for seed in range(50):
        site = draw_appearance("realistic", np.random.default_rng(seed))
        flair, gm, wm = site.sequences["FLAIR"], site.tissues["GM"], site.tissues["WM"]
        ratios.append(
            float(
                signal(flair, gm.pd, gm.t1_ms, gm.t2_ms) / signal(flair, wm.pd, wm.t1_ms, wm.t2_ms)
            )
        )
    assert min(ratios) > 0.95 and np.median(ratios) < 1.33 and max(ratios) > 1.38
    with pytest.raises(ValueError, match="appearance"):
        TrialSpec(n_subjects=1, appearance="photographic")  # type: ignore[arg-type]


def test_bright_structures_are_bright_on_flair_and_the_truth_is_unchanged(
    realistic_subject,  # type: ignore[no-untyped-def]
) -> None:
    template = load_template()
    state = visit_state(template, realistic_subject, 0)
    classic_subject = dataclasses.replace(realistic_subject, appearance=CLASSIC)
    classic_state = visit_state(template, classic_subject, 0)
    for name, fraction in state.fractions.items():  # the same tissue, seen differently
        np.testing.assert_array_equal(fraction, classic_state.fractions[name])
    np.testing.assert_array_equal(state.lesion_maps.occupancy, classic_state.lesion_maps.occupancy)

    flair = signal_volume(state, "FLAIR", post_contrast=False)
    bright = bright_structures(template)
    no_lesion = state.lesion_maps.occupancy == 0
    caps = (bright.caps > 0.4) & (template.wm > 0.8) & no_lesion
    plain_wm = (bright.caps == 0) & (template.wm > 0.95) & no_lesion & (bright.septum == 0)
    assert caps.sum() > 100
    assert np.median(flair[caps]) > 1.1 * np.median(flair[plain_wm])
    hippocampus = (bright.hippocampus > 0.7) & no_lesion
    classic_flair = signal_volume(classic_state, "FLAIR", post_contrast=False)
    assert np.median(flair[hippocampus] / classic_flair[hippocampus]) > 1.05 * np.median(
        flair[plain_wm] / classic_flair[plain_wm]
    )


def test_faint_lesions_show_part_of_the_lesion_contrast(
    realistic_subject,  # type: ignore[no-untyped-def]
) -> None:
    template = load_template()
    intensities = [lesion.intensity for lesion in realistic_subject.lesions]
    assert min(intensities) < 0.6 and max(intensities) <= 1.0
    state = visit_state(template, realistic_subject, 0)
    maps = state.lesion_maps
    pure = (maps.occupancy >= 1.0) & (maps.black_hole == 0)
    # The faintest lesion that has voxels of pure lesion tissue.
    index = next(i for i in np.argsort(intensities) if (pure & (maps.label == i + 1)).sum() >= 5)
    assert intensities[index] < 0.9
    core = pure & (maps.label == index + 1)
    flair = signal_volume(state, "FLAIR", post_contrast=False)
    tissues, sequence = state.appearance.tissues, state.appearance.sequences["FLAIR"]
    wm, chronic = tissues["WM"], tissues["lesion_chronic"]
    gain = state.t2_gain[core] if state.t2_gain is not None else 0.0
    expected_wm = signal(sequence, wm.pd, wm.t1_ms, wm.t2_ms * (1.0 + gain))
    full = float(signal(sequence, chronic.pd, chronic.t1_ms, chronic.t2_ms))
    share = (flair[core] - expected_wm) / (full - expected_wm)
    assert np.median(share) == pytest.approx(intensities[index], abs=0.02)


def test_csf_flow_varies_per_scan_and_stays_in_csf() -> None:
    template = load_template()
    appearance = draw_appearance("realistic", np.random.default_rng(3))
    first = csf_flow_artefact(template, appearance, np.random.default_rng(1))
    second = csf_flow_artefact(template, appearance, np.random.default_rng(2))
    assert first is not None and second is not None
    assert first.max() > 0 and not np.array_equal(first, second)
    assert np.all(first <= template.csf + 1e-6)
    assert csf_flow_artefact(template, CLASSIC, np.random.default_rng(1)) is None


def test_realistic_lesions_are_small_and_where_real_lesions_are(
    realistic_subject,  # type: ignore[no-untyped-def]
) -> None:
    from mriproc.template import lesion_prior_on_template

    template = load_template()
    prior = lesion_prior_on_template()
    to_voxel = np.linalg.inv(template.affine)
    centres = np.array(
        [(to_voxel @ [*lesion.center_mm, 1.0])[:3] for lesion in realistic_subject.lesions]
    )
    at_centre = prior[tuple(np.round(centres).astype(int).T)]
    # Confluent lesions are placed beside another one: nearly all, not all, on the prior.
    assert np.mean(at_centre > 0.002) > 0.8
    diameters = [2.0 * lesion.radii_mm[0] for lesion in realistic_subject.lesions]
    assert np.median(diameters) < 7.0 and min(diameters) < 3.5
