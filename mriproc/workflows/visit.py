"""``init_visit_wf``: per-visit processing of one session as a Nipype workflow."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from mriproc.config import Protocol
from mriproc.interfaces.longitudinal import VisitBundle
from mriproc.interfaces.visit import (
    BiasCorrect,
    BrainMasks,
    Coregister,
    CoregistrationQuality,
    TissueClasses,
    VisitLesions,
    VisitOutputs,
)
from mriproc.io.bids import SessionInputs
from mriproc.workflows.resources import node

__all__ = ["init_visit_wf", "visit_wf_name"]


def visit_wf_name(session: SessionInputs) -> str:
    """A Nipype-safe workflow name for a session."""
    return f"visit_sub_{session.participant}_ses_{session.session}".replace("-", "_")


def init_visit_wf(
    session: SessionInputs,
    protocol: Protocol,
    output_dir: Path,
    *,
    protocol_ref: str,
    rater_mask: Path | None = None,
) -> pe.Workflow:
    """N4, brain masks, rigid co-registration, tissue classes, lesions, PCF/BPF of one visit.

    Its node ``bundle`` (field ``bundle``) hands the visit's files to the
    longitudinal workflow.

    Parameters
    ----------
    session
        The session's usable contrast files (the reading space among them).
    protocol
        The protocol.
    output_dir
        Derivatives root (``OUT_DIR/mriproc``).
    protocol_ref
        How nodes load the protocol again (its name or file).
    rater_mask
        A rater's T2 lesion mask for this session: the lesion endpoints use it.
    """
    files = dict(session.files)
    reading = protocol.reading_space
    if reading not in files:
        raise ValueError(f"{session.participant_id} {session.session_id}: no {reading} image")
    wf = pe.Workflow(name=visit_wf_name(session))

    # N4: the echoes of a dual-echo acquisition share one field.
    echoes = [r for r in protocol.dual_echo if r in files] if reading in protocol.dual_echo else []
    groups = [echoes] if echoes else [[reading]]
    groups += [[r] for r in sorted(files) if not any(r in g for g in groups)]
    corrected: dict[str, tuple[pe.Node, int]] = {}
    for group in groups:
        n4 = node(
            BiasCorrect(in_files=[str(files[r]) for r in group], protocol=protocol_ref),
            f"n4_{'_'.join(group)}".lower(),
        )
        for index, role in enumerate(group):
            corrected[role] = (n4, index)

    def connect_corrected(role: str, target: pe.Node, field: str) -> None:
        source, index = corrected[role]
        wf.connect(source, ("out_files", _pick, index), target, field)

    brain = node(
        BrainMasks(contrast=protocol.contrasts[reading].suffix, protocol=protocol_ref),
        "brain_masks",
    )
    connect_corrected(reading, brain, "in_file")

    # Rigid co-registration into reading space.
    moving_roles = [r for r in sorted(files) if r != reading and r not in echoes]
    coreg: dict[str, pe.Node] = {}
    checked: dict[str, pe.Node] = {}
    for role in moving_roles:
        # Every contrast, post-contrast T1w included, registers to the reading space:
        # registering two 5 mm-slice T1w acquisitions to each other was measured to
        # leave 0.3-0.7 mm of error, through the reading space 0.05-0.2 mm
        # (benchmarks/RESULTS.md).
        # The quality check is its own node: the registration starts as soon as both
        # images are bias-corrected, in parallel with the template fit.
        registration = node(Coregister(protocol=protocol_ref), f"coreg_{role}".lower())
        connect_corrected(role, registration, "moving")
        connect_corrected(reading, registration, "fixed")
        check = node(
            CoregistrationQuality(
                source=str(files[role]), reference=str(files[reading]), protocol=protocol_ref
            ),
            f"coreg_quality_{role}".lower(),
        )
        wf.connect(registration, "out_file", check, "registered")
        connect_corrected(reading, check, "fixed")
        wf.connect(brain, "icv_prob", check, "mask")
        coreg[role] = registration
        checked[role] = check

    def reading_space_images(roles: list[str] | tuple[str, ...], name: str) -> pe.Node:
        """A Merge node of the roles' reading-space images (checked, or from N4)."""
        merge = node(niu.Merge(len(roles)), name)
        for index, role in enumerate(roles, start=1):
            if role in checked:
                wf.connect(checked[role], "out_file", merge, f"in{index}")
            else:
                connect_corrected(role, merge, f"in{index}")
        return merge

    # The tissue model on the protocol's channels the session has (the reading space
    # among them); a channel refused by the co-registration check leaves it.
    tissue_roles = [r for r in protocol.pcf.channels if r in files]
    tissues = node(TissueClasses(roles=tissue_roles, protocol=protocol_ref), "tissue_classes")
    merge_channels = reading_space_images(tissue_roles, "pcf_channels")
    wf.connect(merge_channels, "out", tissues, "channels")
    wf.connect(brain, "template_maps", tissues, "template_maps")
    wf.connect(brain, "skull_stripped", tissues, "skull_stripped")

    # Lesions: every contrast in reading space (echoes and the reading image from N4).
    lesion_roles = sorted(files)
    lesions = node(VisitLesions(roles=lesion_roles, protocol=protocol_ref), "lesions")
    if rater_mask is not None:
        lesions.inputs.rater_mask = str(rater_mask)
    lesion_images = reading_space_images(lesion_roles, "lesion_images")
    wf.connect(lesion_images, "out", lesions, "images")
    wf.connect(tissues, "outputs", lesions, "tissue_outputs")
    wf.connect(brain, "template_maps", lesions, "template_maps")

    outputs = node(
        VisitOutputs(
            output_dir=str(output_dir),
            participant=session.participant,
            session=session.session,
            protocol=protocol_ref,
            sources={r: str(p) for r, p in files.items()},
            coreg_roles=moving_roles,
        ),
        "outputs",
    )
    wf.connect(tissues, "outputs", outputs, "tissue_outputs")
    wf.connect(tissues, "channels_used", outputs, "tissue_channels")
    for field in ("outputs", "measures", "not_available", "lesion_list", "rater"):
        wf.connect(lesions, field, outputs, "lesion_outputs" if field == "outputs" else field)
    if moving_roles:
        for nodes, field, target in (
            (checked, "out_file", "coregistered"),
            (coreg, "transform", "transforms"),
            (checked, "quality", "qualities"),
            (checked, "refused", "refusals"),
        ):
            merge = node(niu.Merge(len(moving_roles)), f"merge_{field}")
            for index, role in enumerate(moving_roles, start=1):
                wf.connect(nodes[role], field, merge, f"in{index}")
            wf.connect(merge, "out", outputs, target)

    # What the longitudinal stage reads (after the visit's outputs are written).
    bundle = node(VisitBundle(roles=lesion_roles), "bundle")
    connect_corrected(reading, bundle, "reading")
    wf.connect(lesion_images, "out", bundle, "images")
    wf.connect(tissues, "outputs", bundle, "tissue_outputs")
    wf.connect(lesions, "outputs", bundle, "lesion_outputs")
    wf.connect(brain, "template_maps", bundle, "template_maps")
    wf.connect(outputs, "record", bundle, "record")
    return wf


def _pick(items: list[str], index: int) -> str:
    return items[index]
