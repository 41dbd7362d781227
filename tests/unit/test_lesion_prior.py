"""The lesion-frequency prior shipped as package data (``mriproc/data/``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mriproc.template import LESION_PRIOR_VOXEL_MM, load_lesion_prior, load_template

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_lesion_prior.py"
MASKS = ROOT.parent / "shared" / "data" / "open_ms_data" / "lesion_masks_mni"


def test_the_prior_is_where_ms_lesions_are() -> None:
    """On the template's grid at 2 mm: white matter far above grey matter, none outside."""
    prior = load_lesion_prior()
    template = load_template()
    step = int(LESION_PRIOR_VOXEL_MM)
    assert prior.shape == tuple(-(-n // step) for n in template.shape)
    np.testing.assert_allclose(prior.affine[:3, 3], template.affine[:3, 3])
    frequency = np.asarray(prior.dataobj)
    assert frequency.min() >= 0.0 and 0.1 < frequency.max() <= 1.0
    wm, gm = (m[::step, ::step, ::step] for m in (template.wm, template.gm))
    assert frequency[wm > 0.9].mean() > 5 * frequency[gm > 0.7].mean()
    assert frequency[template.outside_mm[::step, ::step, ::step] > 5].max() == 0.0
    deepest = np.unravel_index(frequency.argmax(), frequency.shape)
    assert wm[deepest] > 0.5  # the most frequent place is white matter


@pytest.mark.slow
@pytest.mark.skipif(not MASKS.is_dir(), reason=f"the consensus masks are not here ({MASKS})")
def test_the_script_rebuilds_the_shipped_prior_byte_for_byte(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_lesion_prior", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "prior.nii.gz"
    assert script.main(["--masks", str(MASKS), "--out", str(out)]) == 0
    shipped = ROOT / "mriproc" / "data" / "lesion_prior.nii.gz"
    assert out.read_bytes() == shipped.read_bytes()
