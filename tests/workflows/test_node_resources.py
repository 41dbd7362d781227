"""Every node of the visit and longitudinal workflows (built on a skeleton dataset, not
run) declares its memory and processes."""

from __future__ import annotations

from pathlib import Path

from cohort_skeleton import PROTOCOL, skeleton

from mriproc.io.bids import discover_dataset
from mriproc.workflows.longitudinal import init_longitudinal_wf
from mriproc.workflows.resources import NODE_RESOURCES
from mriproc.workflows.visit import init_visit_wf


def test_every_node_declares_memory_and_processes(tmp_path: Path) -> None:
    bids = skeleton(tmp_path / "bids", 1)
    dataset = discover_dataset(bids, PROTOCOL)
    workflows = [
        init_visit_wf(session=s, protocol=PROTOCOL, output_dir=tmp_path) for s in dataset.sessions
    ]
    workflows.append(
        init_longitudinal_wf(
            participant="01", sessions=["M00", "M12"], protocol=PROTOCOL, output_dir=tmp_path
        )
    )
    for wf in workflows:
        for name in wf.list_node_names():
            node = wf.get_node(name)
            kind = type(node.interface).__name__
            assert (node.mem_gb, node.n_procs) == NODE_RESOURCES[kind], name
