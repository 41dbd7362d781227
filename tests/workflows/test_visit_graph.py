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


def test_follow_ups_carry_the_baseline_fit(tmp_path: Path) -> None:
    """per_participant: a follow-up registers to its baseline first and reuses its fit."""
    from mriproc.workflows.longitudinal import init_longitudinal_wf

    root = tmp_path / "sim"
    protocol = load_protocol("esims")
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0, 12, 24), seed=31), protocol)
    sessions = discover_dataset(root, protocol).sessions
    assert protocol.registration.template_fit == "per_participant"
    followup = init_visit_wf(
        session=sessions[1], protocol=protocol, output_dir=tmp_path / "out", follows_baseline=True
    )
    fit = followup.get_node("fit_wf")
    edges = {(u.name, v.name) for u, v in fit._graph.edges()}
    assert {("n4_pdw_t2w", "halfway_to_baseline"), ("halfway_to_baseline", "brain_masks")} <= edges
    assert {"baseline_reading", "baseline_template_transforms", "baseline_skull_stripped"} <= set(
        followup.get_node("inputnode").inputs.copyable_trait_names()
    )
    longitudinal = init_longitudinal_wf(
        participant="001",
        sessions=["M00", "M12", "M24"],
        protocol=protocol,
        output_dir=tmp_path / "out",
        registered_to_baseline=True,
    )
    # No registration: M24 to M12 is composed through the baseline.
    halfway = [n for n in longitudinal.list_node_names() if n.startswith("halfway")]
    assert halfway == ["halfway_m24_to_m12"]
    composed = longitudinal.get_node("halfway_m24_to_m12")
    assert type(composed.interface).__name__ == "HalfwayThroughBaseline"
    independent = init_longitudinal_wf(
        participant="001",
        sessions=["M00", "M12", "M24"],
        protocol=protocol,
        output_dir=tmp_path / "out",
    )
    assert len([n for n in independent.list_node_names() if n.startswith("halfway")]) == 3


def test_the_protocol_decides_whether_follow_ups_carry_the_baseline_fit(tmp_path: Path) -> None:
    """``registration.template_fit``: per_participant wires follow-ups to their baseline."""
    from dataclasses import replace

    from mriproc.run import _build_workflow

    root = tmp_path / "sim"
    protocol = load_protocol("esims")
    simulate_trial(root, TrialSpec(n_subjects=1, months=(0, 12), seed=31), protocol)
    dataset = discover_dataset(root, protocol)
    per_visit = replace(
        protocol, registration=replace(protocol.registration, template_fit="per_visit")
    )
    halfway_nodes = {}
    for name, chosen in (("per_participant", protocol), ("per_visit", per_visit)):
        top, _ = _build_workflow(
            dataset,
            list(dataset.sessions),
            chosen,
            tmp_path / name,
            tmp_path / f"w_{name}",
            rater_masks=None,
        )
        halfway_nodes[name] = sorted(
            n for n in top.list_node_names() if n.split(".")[-1].startswith("halfway")
        )
    assert halfway_nodes["per_participant"] == ["visit_sub_001_ses_M12.fit_wf.halfway_to_baseline"]
    assert halfway_nodes["per_visit"] == ["longitudinal_sub_001.halfway_m12_to_m00"]
