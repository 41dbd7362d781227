"""``init_longitudinal_wf``: a participant's follow-ups against the previous visit and baseline."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from mriproc.config import Protocol
from mriproc.interfaces.longitudinal import (
    FollowupChanges,
    HalfwayRegister,
    HalfwayThroughBaseline,
    LongitudinalOutputs,
)
from mriproc.workflows.resources import node

__all__ = ["init_longitudinal_wf", "longitudinal_wf_name"]


def longitudinal_wf_name(participant: str) -> str:
    """A Nipype-safe workflow name for a participant's longitudinal stage."""
    return f"longitudinal_sub_{participant}".replace("-", "_")


def init_longitudinal_wf(
    *,
    participant: str,
    sessions: list[str],
    protocol: Protocol,
    output_dir: Path,
    registered_to_baseline: bool = False,
    name: str | None = None,
) -> pe.Workflow:
    """Halfway registrations, lesion changes, atrophy and lesion tracking of one participant.

    Parameters
    ----------
    participant
        The participant label (no ``sub-``).
    sessions
        Its session labels in visit order, baseline first (at least two).
    protocol
        The protocol.
    output_dir
        Derivatives root (``OUT_DIR/mriproc``).
    registered_to_baseline
        The follow-ups' bundles hold their halfway registration to the baseline
        (``to_baseline``: the visit workflows ran it to carry the baseline's template
        fit); it is used rather than run again, and two follow-ups' registration is
        composed through the baseline (:func:`mriproc.followup.halfway_through_baseline`).
    name
        The workflow's name (default: :func:`longitudinal_wf_name`).

    Inputs
    ------
    bundle_<index>
        One per session (index in ``sessions``): that visit workflow's
        ``outputnode.bundle``.

    Outputs
    -------
    records
        Every visit's record, its longitudinal measures added.
    """
    if len(sessions) < 2:
        raise ValueError(f"sub-{participant}: a longitudinal analysis needs two sessions")
    wf = pe.Workflow(name=name or longitudinal_wf_name(participant))
    fields = [f"bundle_{i}" for i in range(len(sessions))]
    inputnode = node(niu.IdentityInterface(fields=fields), "inputnode")
    outputnode = node(niu.IdentityInterface(fields=["records"]), "outputnode")

    def reading(index: int, target: pe.Node, field: str) -> None:
        wf.connect(inputnode, (f"bundle_{index}", _get, "reading"), target, field)

    registrations: dict[tuple[int, int], tuple[pe.Node, object]] = {}
    for later in range(1, len(sessions)):
        if registered_to_baseline:
            registrations[(0, later)] = (inputnode, (f"bundle_{later}", _get, "to_baseline"))
            if later > 1:
                # Two follow-ups: composed through the baseline, not registered again.
                composed = node(
                    HalfwayThroughBaseline(),
                    f"halfway_{sessions[later]}_to_{sessions[later - 1]}".lower(),
                )
                wf.connect(*registrations[(0, later - 1)], composed, "to_earlier")
                wf.connect(*registrations[(0, later)], composed, "to_later")
                registrations[(later - 1, later)] = (composed, "record")
            continue
        for earlier in sorted({0, later - 1}):
            halfway = node(
                HalfwayRegister(protocol=protocol),
                f"halfway_{sessions[later]}_to_{sessions[earlier]}".lower(),
            )
            reading(earlier, halfway, "earlier")
            reading(later, halfway, "later")
            registrations[(earlier, later)] = (halfway, "record")

    collect = node(niu.Merge(len(sessions) - 1), "collect_followups")
    # The masks travel as a connection too: Nipype deletes unconnected output files.
    collect_images = node(niu.Merge(len(sessions) - 1), "collect_images")
    records = node(niu.Merge(len(sessions)), "collect_records")
    for index in range(len(sessions)):
        wf.connect(inputnode, (f"bundle_{index}", _get, "record"), records, f"in{index + 1}")
    for later in range(1, len(sessions)):
        change = node(FollowupChanges(protocol=protocol), f"changes_{sessions[later]}".lower())
        wf.connect(inputnode, f"bundle_{later}", change, "followup")
        wf.connect(inputnode, f"bundle_{later - 1}", change, "previous")
        wf.connect(inputnode, "bundle_0", change, "baseline")
        wf.connect(*registrations[(later - 1, later)], change, "to_previous")
        wf.connect(*registrations[(0, later)], change, "to_baseline")
        wf.connect(change, "result", collect, f"in{later}")
        wf.connect(change, "images", collect_images, f"in{later}")

    outputs = node(
        LongitudinalOutputs(
            output_dir=str(output_dir),
            participant=participant,
            sessions=list(sessions),
            protocol=protocol,
        ),
        "outputs",
    )
    wf.connect(records, "out", outputs, "records")
    wf.connect(collect, "out", outputs, "results")
    wf.connect(collect_images, "out", outputs, "images")
    wf.connect(outputs, "records", outputnode, "records")
    return wf


def _get(bundle: dict[str, str], key: str) -> str:
    return bundle[key]
