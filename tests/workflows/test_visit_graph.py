"""The visit workflow graph, built on a small simulated session (not run)."""

from __future__ import annotations

from pathlib import Path

from mriproc.config import load_protocol
from mriproc.io.bids import discover_dataset
from mriproc.simulate import TrialSpec, simulate_trial
from mriproc.workflows.visit import init_visit_wf


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
