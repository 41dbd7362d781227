"""Per-visit processing of one session: ``init_visit_wf`` = fit, then outputs.

``init_visit_fit_wf`` computes (N4, template fit, rigid co-registration and its
check, tissue model, lesions and their endpoints); ``init_visit_outputs_wf`` writes
the visit's BIDS-Derivatives and hands the longitudinal stage its files.
"""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from mriproc.config import Protocol
from mriproc.interfaces.longitudinal import HalfwayRegister, VisitBundle
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

__all__ = [
    "connect_baseline",
    "init_visit_fit_wf",
    "init_visit_outputs_wf",
    "init_visit_wf",
    "visit_wf_name",
]

# What the fit hands the outputs: the tissue model's and the lesion stage's results.
_FIT_RESULTS = [
    "reading",
    "template_maps",
    "tissue_outputs",
    "tissue_channels",
    "lesion_images",
    "lesion_outputs",
    "measures",
    "not_available",
    "lesion_list",
    "rater",
    "template_fit",
]
# ... and, per co-registered contrast (in ``coreg_roles`` order), its check's results.
_COREG_RESULTS = ["coregistered", "transforms", "qualities", "refusals"]
# What a baseline hands its follow-ups (``follows_baseline``), and their inputs for it.
_FIT_HANDED_ON = ["reading", "template_transforms", "skull_stripped"]
_BASELINE_FIELDS = [f"baseline_{f}" for f in _FIT_HANDED_ON]


def visit_wf_name(session: SessionInputs) -> str:
    """A Nipype-safe workflow name for a session."""
    return f"visit_sub_{session.participant}_ses_{session.session}".replace("-", "_")


def init_visit_wf(
    *,
    session: SessionInputs,
    protocol: Protocol,
    output_dir: Path,
    rater_mask: Path | None = None,
    follows_baseline: bool = False,
    name: str | None = None,
) -> pe.Workflow:
    """N4, brain masks, rigid co-registration, tissue classes, lesions, PCF/BPF of one visit.

    Parameters
    ----------
    session
        The session's usable contrast files (the reading space among them).
    protocol
        The protocol (handed to every node; no node reads a file for it).
    output_dir
        Derivatives root (``OUT_DIR/mriproc``).
    rater_mask
        A rater's T2 lesion mask for this session: the lesion endpoints use it.
    follows_baseline
        A follow-up whose template fit is its baseline's, carried through its halfway
        registration to the baseline (``registration.template_fit: per_participant``).
    name
        The workflow's name (default: :func:`visit_wf_name`).

    Inputs
    ------
    sources
        Contrast role -> raw image file (set from ``session``).
    rater_mask
        The rater's mask, when given.
    baseline_reading, baseline_template_transforms, baseline_skull_stripped
        With ``follows_baseline``: the baseline visit workflow's ``reading``,
        ``template_transforms`` and ``skull_stripped`` (:func:`connect_baseline`).

    Outputs
    -------
    record
        The visit's measures record (``*_desc-visit_measures.json``).
    bundle
        The files the longitudinal stage reads (``VisitBundle``).
    reading, template_transforms, skull_stripped
        The bias-corrected reading image and the template fit (for the follow-ups).
    """
    files = {role: str(path) for role, path in session.files.items()}
    if protocol.reading_space not in files:
        raise ValueError(
            f"{session.participant_id} {session.session_id}: no {protocol.reading_space} image"
        )
    wf = pe.Workflow(name=name or visit_wf_name(session))
    baseline_fields = _BASELINE_FIELDS if follows_baseline else []
    inputnode = node(
        niu.IdentityInterface(fields=["sources", "rater_mask", *baseline_fields]), "inputnode"
    )
    inputnode.inputs.sources = files
    if rater_mask is not None:
        inputnode.inputs.rater_mask = str(rater_mask)
    outputnode = node(
        niu.IdentityInterface(fields=["record", "bundle", *_FIT_HANDED_ON]), "outputnode"
    )

    fit_wf = init_visit_fit_wf(
        roles=sorted(files),
        protocol=protocol,
        with_rater_mask=rater_mask is not None,
        follows_baseline=follows_baseline,
    )
    coreg_roles = _moving_roles(sorted(files), protocol)
    outputs_wf = init_visit_outputs_wf(
        participant=session.participant,
        session=session.session,
        roles=sorted(files),
        coreg_roles=coreg_roles,
        protocol=protocol,
        output_dir=output_dir,
        follows_baseline=follows_baseline,
    )
    rater = [("rater_mask", "inputnode.rater_mask")] if rater_mask is not None else []
    baseline = [(f, f"inputnode.{f}") for f in baseline_fields]
    fit_results = _FIT_RESULTS + (_COREG_RESULTS if coreg_roles else [])
    fit_results += ["to_baseline"] if follows_baseline else []
    # fmt: off
    wf.connect([
        (inputnode, fit_wf, [("sources", "inputnode.sources"), *rater, *baseline]),
        (inputnode, outputs_wf, [("sources", "inputnode.sources")]),
        (fit_wf, outputs_wf, [(f"outputnode.{f}", f"inputnode.{f}") for f in fit_results]),
        (fit_wf, outputnode, [(f"outputnode.{f}", f) for f in _FIT_HANDED_ON]),
        (outputs_wf, outputnode, [("outputnode.record", "record"),
                                  ("outputnode.bundle", "bundle")]),
    ])
    # fmt: on
    return wf


def connect_baseline(top: pe.Workflow, baseline: pe.Workflow, followup: pe.Workflow) -> None:
    """Hand a baseline visit workflow's template fit to a ``follows_baseline`` one in ``top``."""
    fields = [(f"outputnode.{f}", f"inputnode.baseline_{f}") for f in _FIT_HANDED_ON]
    top.connect([(baseline, followup, fields)])


def _moving_roles(roles: list[str], protocol: Protocol) -> list[str]:
    """Contrasts registered into reading space: all but it and its echo partner."""
    reading = protocol.reading_space
    return [r for r in roles if r != reading and r not in _echoes(roles, protocol)]


def _echoes(roles: list[str], protocol: Protocol) -> list[str]:
    """The reading space's dual-echo acquisition, when the session has it (else none)."""
    if protocol.reading_space not in protocol.dual_echo:
        return []
    return [r for r in protocol.dual_echo if r in roles]


def init_visit_fit_wf(
    *,
    roles: list[str],
    protocol: Protocol,
    with_rater_mask: bool = False,
    follows_baseline: bool = False,
    name: str = "fit_wf",
) -> pe.Workflow:
    """Everything measured at one visit, from its raw contrasts.

    Parameters
    ----------
    roles
        The contrast roles the session has (the reading space among them).
    protocol
        The protocol.
    with_rater_mask
        The lesion endpoints use a rater's mask (``inputnode.rater_mask``).
    follows_baseline
        The template fit is the baseline's, carried through this visit's halfway
        registration to the baseline (inputs ``baseline_*``; output ``to_baseline``).
    name
        The workflow's name.

    Inputs
    ------
    sources
        Contrast role -> raw image file.
    rater_mask
        A rater's T2 lesion mask (only with ``with_rater_mask``).
    baseline_reading, baseline_template_transforms, baseline_skull_stripped
        The baseline's reading image and template fit (only with ``follows_baseline``).

    Outputs
    -------
    reading
        The bias-corrected reading-space image.
    template_maps
        Template maps carried to the visit (:func:`mriproc.visit.brain_masks`).
    tissue_outputs, tissue_channels
        Tissue fractions, classes, masks and slab; the roles the model was fitted on.
    lesion_images
        Every role's reading-space image, in ``roles`` order (empty: refused).
    lesion_outputs, measures, not_available, lesion_list, rater
        The lesion stage's masks, endpoint values, n/a reasons, lesion table and
        rater agreement (:func:`mriproc.visit_lesions.visit_lesions`).
    coregistered, transforms, qualities, refusals
        Per co-registered contrast (sorted roles but the reading space and its echo):
        its image (empty when refused), ITK transform, NMI and the check's reason.
    template_transforms, skull_stripped, template_fit
        The template fit (:class:`mriproc.brain.TemplateFit`) and where it came from.
    to_baseline
        The halfway registration record with the baseline (``follows_baseline``).
    """
    reading = protocol.reading_space
    echoes = _echoes(roles, protocol)
    moving_roles = _moving_roles(roles, protocol)
    wf = pe.Workflow(name=name)
    baseline_fields = _BASELINE_FIELDS if follows_baseline else []
    inputnode = node(
        niu.IdentityInterface(fields=["sources", "rater_mask", *baseline_fields]), "inputnode"
    )
    handed_on = [f for f in _FIT_HANDED_ON if f not in _FIT_RESULTS]  # (reading is one)
    outputnode = node(
        niu.IdentityInterface(fields=_FIT_RESULTS + _COREG_RESULTS + handed_on + ["to_baseline"]),
        "outputnode",
    )
    connections: list[tuple[pe.Node, pe.Node, list[tuple[object, str]]]] = []

    # N4: the echoes of a dual-echo acquisition share one field.
    groups = [echoes] if echoes else [[reading]]
    groups += [[r] for r in roles if not any(r in g for g in groups)]
    corrected: dict[str, tuple[pe.Node, int]] = {}
    for group in groups:
        n4 = node(BiasCorrect(protocol=protocol), f"n4_{'_'.join(group)}".lower())
        connections.append((inputnode, n4, [(("sources", _select, group), "in_files")]))
        for index, role in enumerate(group):
            corrected[role] = (n4, index)

    def from_n4(role: str, field: str) -> tuple[pe.Node, list[tuple[object, str]]]:
        """The N4 node of ``role`` and the connection of its image to ``field``."""
        n4, index = corrected[role]
        return n4, [(("out_files", _pick, index), field)]

    n4_reading = corrected[reading][0]
    brain_masks = node(
        BrainMasks(contrast=protocol.contrasts[reading].suffix, protocol=protocol), "brain_masks"
    )
    connections += [
        (n4_reading, brain_masks, from_n4(reading, "in_file")[1]),
        (n4_reading, outputnode, from_n4(reading, "reading")[1]),
        (brain_masks, outputnode, [("transforms", "template_transforms"),
                                   ("skull_stripped", "skull_stripped"),
                                   ("fit_source", "template_fit")]),
    ]  # fmt: skip
    if follows_baseline:
        # The follow-up's registration to its baseline (the longitudinal stage reads
        # it too) carries the baseline's template fit here.
        halfway = node(HalfwayRegister(protocol=protocol), "halfway_to_baseline")
        # fmt: off
        connections += [
            (inputnode, halfway, [("baseline_reading", "earlier")]),
            (n4_reading, halfway, from_n4(reading, "later")[1]),
            (inputnode, brain_masks, [("baseline_template_transforms", "baseline_transforms"),
                                      ("baseline_skull_stripped", "baseline_skull_stripped")]),
            (halfway, brain_masks, [("record", "to_baseline")]),
            (halfway, outputnode, [("record", "to_baseline")]),
        ]
        # fmt: on

    # Rigid co-registration into reading space.  Every contrast, post-contrast T1w
    # included, registers to the reading space: registering two 5 mm-slice T1w
    # acquisitions to each other was measured to leave 0.3-0.7 mm of error, through
    # the reading space 0.05-0.2 mm (benchmarks/RESULTS.md).  The quality check is
    # its own node: the registration starts as soon as both images are corrected,
    # in parallel with the template fit.
    coreg: dict[str, pe.Node] = {}
    checked: dict[str, pe.Node] = {}
    for role in moving_roles:
        coreg[role] = node(Coregister(protocol=protocol), f"coreg_{role}".lower())
        checked[role] = node(
            CoregistrationQuality(protocol=protocol), f"coreg_quality_{role}".lower()
        )
        # fmt: off
        connections += [
            (corrected[role][0], coreg[role], from_n4(role, "moving")[1]),
            (n4_reading, coreg[role], from_n4(reading, "fixed")[1]),
            (inputnode, checked[role], [(("sources", _get, role), "source"),
                                        (("sources", _get, reading), "reference")]),
            (coreg[role], checked[role], [("out_file", "registered")]),
            (n4_reading, checked[role], from_n4(reading, "fixed")[1]),
            (brain_masks, checked[role], [("icv_prob", "mask")]),
        ]
        # fmt: on

    def reading_space_images(image_roles: list[str], merge_name: str) -> pe.Node:
        """A Merge node of the roles' reading-space images (checked, or from N4)."""
        merge = node(niu.Merge(len(image_roles)), merge_name)
        for index, role in enumerate(image_roles, start=1):
            if role in checked:
                connections.append((checked[role], merge, [("out_file", f"in{index}")]))
            else:
                source, fields = from_n4(role, f"in{index}")
                connections.append((source, merge, fields))
        return merge

    # The tissue model on the protocol's channels the session has (the reading space
    # among them); a channel refused by the co-registration check leaves it.
    tissue_roles = [r for r in protocol.pcf.channels if r in roles]
    tissue_classes = node(TissueClasses(roles=tissue_roles, protocol=protocol), "tissue_classes")
    pcf_channels = reading_space_images(tissue_roles, "pcf_channels")
    # Lesions: every contrast in reading space (echoes and the reading image from N4).
    lesions = node(VisitLesions(roles=roles, protocol=protocol), "lesions")
    lesion_images = reading_space_images(roles, "lesion_images")

    # fmt: off
    connections += [
        (pcf_channels, tissue_classes, [("out", "channels")]),
        (brain_masks, tissue_classes, [("template_maps", "template_maps"),
                                       ("skull_stripped", "skull_stripped")]),
        (lesion_images, lesions, [("out", "images")]),
        (tissue_classes, lesions, [("outputs", "tissue_outputs")]),
        (brain_masks, lesions, [("template_maps", "template_maps")]),
        (brain_masks, outputnode, [("template_maps", "template_maps")]),
        (tissue_classes, outputnode, [("outputs", "tissue_outputs"),
                                      ("channels_used", "tissue_channels")]),
        (lesion_images, outputnode, [("out", "lesion_images")]),
        (lesions, outputnode, [("outputs", "lesion_outputs"), ("measures", "measures"),
                               ("not_available", "not_available"),
                               ("lesion_list", "lesion_list"), ("rater", "rater")]),
    ]
    # fmt: on
    if with_rater_mask:
        connections.append((inputnode, lesions, [("rater_mask", "rater_mask")]))
    if moving_roles:
        for nodes, field, target in (
            (checked, "out_file", "coregistered"),
            (coreg, "transform", "transforms"),
            (checked, "quality", "qualities"),
            (checked, "refused", "refusals"),
        ):
            merge = node(niu.Merge(len(moving_roles)), f"merge_{target}")
            connections += [
                (nodes[role], merge, [(field, f"in{index}")])
                for index, role in enumerate(moving_roles, start=1)
            ]
            connections.append((merge, outputnode, [("out", target)]))
    wf.connect(connections)
    return wf


def init_visit_outputs_wf(
    *,
    participant: str,
    session: str,
    roles: list[str],
    coreg_roles: list[str],
    protocol: Protocol,
    output_dir: Path,
    follows_baseline: bool = False,
    name: str = "outputs_wf",
) -> pe.Workflow:
    """Write the visit's BIDS-Derivatives and record; bundle its files for the follow-ups.

    Parameters
    ----------
    participant, session
        The visit's labels (no ``sub-``/``ses-``).
    roles
        Its contrast roles, in the order of ``inputnode.lesion_images``.
    coreg_roles
        The co-registered roles, in the order of the per-contrast inputs.
    protocol
        The protocol.
    output_dir
        Derivatives root (``OUT_DIR/mriproc``).
    follows_baseline
        The bundle carries the visit's halfway registration to its baseline
        (``inputnode.to_baseline``).
    name
        The workflow's name.

    Inputs
    ------
    sources
        Contrast role -> raw image file (named in the sidecars).
    reading, template_maps, tissue_outputs, tissue_channels, lesion_images, lesion_outputs, measures, not_available, lesion_list, rater
        The fit's results (:func:`init_visit_fit_wf`).
    coregistered, transforms, qualities, refusals
        Per co-registered contrast (only when ``coreg_roles`` is not empty).

    Outputs
    -------
    record
        The visit's measures record.
    bundle
        The files the longitudinal stage reads.
    """  # noqa: E501
    wf = pe.Workflow(name=name)
    inputnode = node(
        niu.IdentityInterface(fields=["sources", *_FIT_RESULTS, *_COREG_RESULTS, "to_baseline"]),
        "inputnode",
    )
    outputnode = node(niu.IdentityInterface(fields=["record", "bundle"]), "outputnode")
    outputs = node(
        VisitOutputs(
            output_dir=str(output_dir),
            participant=participant,
            session=session,
            protocol=protocol,
            coreg_roles=coreg_roles,
        ),
        "outputs",
    )
    # What the longitudinal stage reads (after the visit's outputs are written).
    bundle = node(VisitBundle(roles=roles), "bundle")
    coreg_fields = [(f, f) for f in _COREG_RESULTS] if coreg_roles else []
    if follows_baseline:
        wf.connect(inputnode, "to_baseline", bundle, "to_baseline")
    # fmt: off
    wf.connect([
        (inputnode, outputs, [("sources", "sources"), ("tissue_outputs", "tissue_outputs"),
                              ("tissue_channels", "tissue_channels"),
                              ("lesion_outputs", "lesion_outputs"), ("measures", "measures"),
                              ("not_available", "not_available"),
                              ("lesion_list", "lesion_list"), ("rater", "rater"),
                              ("template_fit", "template_fit"), *coreg_fields]),
        (inputnode, bundle, [("reading", "reading"), ("lesion_images", "images"),
                             ("tissue_outputs", "tissue_outputs"),
                             ("lesion_outputs", "lesion_outputs"),
                             ("template_maps", "template_maps")]),
        (outputs, bundle, [("record", "record")]),
        (outputs, outputnode, [("record", "record")]),
        (bundle, outputnode, [("bundle", "bundle")]),
    ])
    # fmt: on
    return wf


def _select(sources: dict[str, str], roles: list[str]) -> list[str]:
    return [sources[role] for role in roles]


def _get(sources: dict[str, str], role: str) -> str:
    return sources[role]


def _pick(items: list[str], index: int) -> str:
    return items[index]
