"""Nipype interfaces of the per-visit steps: each one calls one function of :mod:`mriproc.visit`.

Each takes the protocol as one input (:mod:`mriproc.interfaces.protocol`): its
content travels with the node to its own process or SLURM job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nipype.interfaces.base import (
    File,
    TraitedSpec,
    isdefined,
    traits,
)

from mriproc.brain import TemplateFit
from mriproc.followup import earlier_to_later
from mriproc.interfaces.protocol import ProtocolInputSpec, ProtocolInterface
from mriproc.outputs import write_visit_outputs
from mriproc.tissues import TissueError
from mriproc.visit import (
    BASELINE_FIT,
    OWN_FIT,
    RegistrationQualityError,
    bias_correct,
    brain_masks,
    check_coregistration,
    coregister,
    tissue_classes,
    tissue_model_note,
)
from mriproc.visit_lesions import visit_lesions

__all__ = [
    "BiasCorrect",
    "BrainMasks",
    "Coregister",
    "CoregistrationQuality",
    "TissueClasses",
    "VisitLesions",
    "VisitOutputs",
]


class _BiasCorrectInputSpec(ProtocolInputSpec):
    in_files = traits.List(File(exists=True), mandatory=True, desc="echoes of one acquisition")


class _BiasCorrectOutputSpec(TraitedSpec):
    out_files = traits.List(
        File(exists=True), desc="the corrected images, in the order of in_files"
    )
    out_file = File(exists=True, desc="the first corrected image")


class BiasCorrect(ProtocolInterface):
    """N4 bias correction (one field for every echo of an acquisition)."""

    input_spec = _BiasCorrectInputSpec
    output_spec = _BiasCorrectOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        protocol = self.protocol
        preset = protocol.registration.preset
        out = bias_correct(self.inputs.in_files, Path(runtime.cwd), preset)
        self._results["out_files"] = [str(p) for p in out]
        self._results["out_file"] = str(out[0])
        return runtime


class _BrainMasksInputSpec(ProtocolInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected reading-space image")
    contrast = traits.Str(mandatory=True, desc="its contrast (template rendering)")
    baseline_transforms = traits.List(
        File(exists=True),
        requires=["baseline_skull_stripped", "to_baseline"],
        desc="a follow-up: the baseline's fit (BrainMasks.transforms), carried instead",
    )
    baseline_skull_stripped = traits.Bool(desc="a follow-up: the baseline's skull_stripped")
    to_baseline = File(exists=True, desc="a follow-up: HalfwayRegister record, baseline earlier")


class _BrainMasksOutputSpec(TraitedSpec):
    skull_stripped = traits.Bool(desc="the scan was already skull-stripped")
    transforms = traits.List(File(exists=True), desc="the fit: template -> scan transform files")
    fit_source = traits.Str(desc="where the fit came from (OWN_FIT or BASELINE_FIT)")
    template_maps = traits.Dict(
        traits.Str,
        File(exists=True),
        desc="template maps carried to the scan (brain, icv, slab, CSF, GM, WM, lesion_prior)",
    )
    icv_prob = File(exists=True, desc="the intracranial map (the co-registration check's region)")


class BrainMasks(ProtocolInterface):
    """Template fit (or a follow-up's baseline fit, carried): masks and template maps."""

    input_spec = _BrainMasksInputSpec
    output_spec = _BrainMasksOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        protocol = self.protocol
        baseline = None
        if isdefined(self.inputs.baseline_transforms):
            fit = TemplateFit(
                tuple(Path(p) for p in self.inputs.baseline_transforms),
                bool(self.inputs.baseline_skull_stripped),
            )
            baseline = (fit, earlier_to_later(self.inputs.to_baseline))
        paths, fit = brain_masks(
            self.inputs.in_file,
            self.inputs.contrast,
            pcf=protocol.pcf,
            out_dir=Path(runtime.cwd),
            preset=protocol.registration.preset,
            icv_ml_limits=(protocol.registration.min_icv_ml, protocol.registration.max_icv_ml),
            # The prior is a feature of the lesion classifier only.
            lesion_prior=protocol.t2_lesions.classifier is not None,
            baseline=baseline,
        )
        self._results["template_maps"] = {k: str(v) for k, v in paths.items()}
        self._results["skull_stripped"] = fit.skull_stripped
        self._results["transforms"] = [str(p) for p in fit.transform_files]
        self._results["fit_source"] = OWN_FIT if baseline is None else BASELINE_FIT
        self._results["icv_prob"] = str(paths["icv"])
        return runtime


class _CoregisterInputSpec(ProtocolInputSpec):
    moving = File(exists=True, mandatory=True, desc="the bias-corrected contrast to register")
    fixed = File(exists=True, mandatory=True, desc="reading-space image (and output grid)")


class _CoregisterOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the contrast resampled into reading space")
    transform = File(exists=True, desc="ITK text transform, reading space to the contrast")


class Coregister(ProtocolInterface):
    """Rigid co-registration into reading space."""

    input_spec = _CoregisterInputSpec
    output_spec = _CoregisterOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        protocol = self.protocol
        result = coregister(
            self.inputs.moving,
            self.inputs.fixed,
            out_dir=Path(runtime.cwd),
            preset=protocol.registration.preset,
        )
        self._results["out_file"] = str(result.image)
        self._results["transform"] = str(result.transform)
        return runtime


class _CoregistrationQualityInputSpec(ProtocolInputSpec):
    registered = File(exists=True, mandatory=True, desc="a contrast resampled into reading space")
    fixed = File(exists=True, mandatory=True, desc="the reading-space image")
    mask = File(exists=True, mandatory=True, desc="reading-space intracranial map")
    source = traits.Str(mandatory=True, desc="raw file of the contrast (named in errors)")
    reference = traits.Str(mandatory=True, desc="raw file of the reading space")


class _CoregistrationQualityOutputSpec(TraitedSpec):
    out_file = traits.Str(desc="``registered`` once it passed the check, else empty")
    quality = traits.Float(desc="normalized mutual information with the reading space")
    refused = traits.Str(desc="why the check refused the registration, else empty")


class CoregistrationQuality(ProtocolInterface):
    """The co-registration quality check (NMI).

    A refused contrast leaves the visit (``out_file`` empty, ``refused`` says why):
    only the endpoints that need it become n/a (the tissue model goes on with its
    other channels), and the reason reaches ``errors.tsv`` through the visit's record.
    """

    input_spec = _CoregistrationQualityInputSpec
    output_spec = _CoregistrationQualityOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        try:
            quality = check_coregistration(
                self.inputs.registered,
                self.inputs.fixed,
                mask=self.inputs.mask,
                min_quality=self.protocol.registration.min_nmi,
                source=self.inputs.source,
                reference=self.inputs.reference,
            )
        except RegistrationQualityError as refused:
            self._results.update(out_file="", quality=refused.quality, refused=str(refused))
        else:
            self._results.update(out_file=self.inputs.registered, quality=quality, refused="")
        return runtime


class _TissueClassesInputSpec(ProtocolInputSpec):
    roles = traits.List(traits.Str, mandatory=True, desc="contrast roles of ``channels``")
    channels = traits.List(
        traits.Str, mandatory=True, desc="reading-space images (empty: refused registration)"
    )
    template_maps = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="template maps carried to the scan (BrainMasks)",
    )
    skull_stripped = traits.Bool(False, usedefault=True, desc="the scans are skull-stripped")


class _TissueClassesOutputSpec(TraitedSpec):
    outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        desc="tissue fractions, classes (dseg), brain and intracranial masks, slab",
    )
    channels_used = traits.List(traits.Str, desc="roles the tissue model was fitted on")


class TissueClasses(ProtocolInterface):
    """Tissue fractions and classes, refined brain and intracranial masks, PCF slab.

    The model is fitted on the channels that passed the co-registration check.
    """

    input_spec = _TissueClassesInputSpec
    output_spec = _TissueClassesOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        images = dict(zip(self.inputs.roles, self.inputs.channels, strict=True))
        used = [role for role, path in images.items() if path]
        if not used:
            raise TissueError(
                "no tissue-model channel passed the co-registration check: " + ", ".join(images)
            )
        result = tissue_classes(
            [images[role] for role in used],
            dict(self.inputs.template_maps),
            pcf=self.protocol.pcf,
            out_dir=Path(runtime.cwd),
            skull_stripped=self.inputs.skull_stripped,
        )
        self._results["outputs"] = {k: str(v) for k, v in result.items()}
        self._results["channels_used"] = used
        return runtime


class _VisitLesionsInputSpec(ProtocolInputSpec):
    roles = traits.List(traits.Str, mandatory=True, desc="contrast roles of ``images``")
    images = traits.List(
        traits.Str, mandatory=True, desc="reading-space images (empty: refused registration)"
    )
    tissue_outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="the tissue model's outputs (TissueClasses)",
    )
    template_maps = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="template maps carried to the scan (BrainMasks)",
    )
    rater_mask = File(exists=True, desc="a rater's T2 lesion mask (used for the endpoints)")


class _VisitLesionsOutputSpec(TraitedSpec):
    outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        desc="lesion masks, the lesion label map and the dseg with lesions",
    )
    measures = traits.Dict(traits.Str, traits.Float, desc="endpoint name -> value")
    not_available = traits.Dict(traits.Str, traits.Str, desc="endpoint -> why it is NA")
    lesion_list = traits.Either(
        None, File(exists=True), desc="JSON: one entry per T2 lesion (None without lesions)"
    )
    rater = traits.Dict(desc="rater versus automated mask, when a rater's mask was given")


class VisitLesions(ProtocolInterface):
    """T2 lesions, CEL, black holes, their endpoints, and PCF/BPF with lesions as parenchyma."""

    input_spec = _VisitLesionsInputSpec
    output_spec = _VisitLesionsOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        images = dict(zip(self.inputs.roles, self.inputs.images, strict=True))
        outcome = visit_lesions(
            {role: path for role, path in images.items() if path},
            dict(self.inputs.tissue_outputs),
            dict(self.inputs.template_maps),
            protocol=self.protocol,
            out_dir=Path(runtime.cwd),
            rater_mask=self.inputs.rater_mask or None,
            refused=[role for role, path in images.items() if not path],
        )
        self._results["rater"] = outcome.rater
        self._results["outputs"] = {k: str(v) for k, v in outcome.images.items()}
        self._results["measures"] = outcome.measures
        self._results["not_available"] = outcome.not_available
        listed = outcome.lesion_list
        self._results["lesion_list"] = None if listed is None else str(listed)
        return runtime


class _VisitOutputsInputSpec(ProtocolInputSpec):
    output_dir = traits.Str(mandatory=True, desc="the derivatives root (OUT_DIR/mriproc)")
    participant = traits.Str(mandatory=True, desc="participant label (no sub-)")
    session = traits.Str(mandatory=True, desc="session label (no ses-)")
    sources = traits.Dict(
        traits.Str,
        traits.Str,
        mandatory=True,
        desc="contrast role -> raw image file (named in the sidecars)",
    )
    tissue_outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="the tissue model's outputs (TissueClasses)",
    )
    tissue_channels = traits.List(
        traits.Str, mandatory=True, desc="roles the tissue model was fitted on"
    )
    lesion_outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="the lesion stage's images (VisitLesions)",
    )
    measures = traits.Dict(traits.Str, traits.Float, mandatory=True, desc="endpoint name -> value")
    not_available = traits.Dict(traits.Str, traits.Str, desc="endpoint -> why it is NA")
    lesion_list = traits.Either(None, File(exists=True), desc="JSON lesion list (VisitLesions)")
    rater = traits.Dict(desc="rater versus automated mask")
    # A visit whose contrasts are all in reading space (PD/T2 alone) has none of these.
    coreg_roles = traits.List(
        traits.Str, usedefault=True, desc="roles of the co-registered contrasts"
    )
    coregistered = traits.List(
        traits.Str, usedefault=True, desc="their images, in that order (empty: refused)"
    )
    transforms = traits.List(File(exists=True), usedefault=True, desc="their ITK transforms")
    qualities = traits.List(traits.Float, usedefault=True, desc="their NMI quality")
    refusals = traits.List(
        traits.Str, usedefault=True, desc="why the check refused each one (empty: passed)"
    )
    template_fit = traits.Str(mandatory=True, desc="where the template fit came from")


class _VisitOutputsOutputSpec(TraitedSpec):
    record = File(exists=True, desc="the visit's measures record (desc-visit_measures.json)")


class VisitOutputs(ProtocolInterface):
    """Write the visit's BIDS-Derivatives and its measures record."""

    input_spec = _VisitOutputsInputSpec
    output_spec = _VisitOutputsOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        protocol = self.protocol
        tissue = dict(self.inputs.tissue_outputs)
        images = {k: tissue[k] for k in ("brain", "icv", "slab", "CSF", "GM", "WM")}
        images.update(dict(self.inputs.lesion_outputs))  # dseg (with lesions) and lesion masks
        roles = list(self.inputs.coreg_roles)
        refused = {r: why for r, why in zip(roles, self.inputs.refusals, strict=True) if why}
        note = tissue_model_note(protocol.pcf.channels, self.inputs.tissue_channels, refused)
        images.update(
            {f"coreg:{r}": p for r, p in zip(roles, self.inputs.coregistered, strict=True) if p}
        )
        record = write_visit_outputs(
            self.inputs.output_dir,
            self.inputs.participant,
            self.inputs.session,
            reading_space=protocol.reading_space,
            contrasts={r: (c.suffix, c.ce) for r, c in protocol.contrasts.items()},
            sources=dict(self.inputs.sources),
            images=images,
            transforms={  # a refused registration's transform is not a result
                r: t
                for r, t, p in zip(
                    roles, self.inputs.transforms, self.inputs.coregistered, strict=True
                )
                if p
            },
            measures=dict(self.inputs.measures),
            not_available=dict(self.inputs.not_available),
            lesion_list=self.inputs.lesion_list or None,
            rater=dict(self.inputs.rater),
            qc={f"nmi_{r}": q for r, q in zip(roles, self.inputs.qualities, strict=True)},
            refused=refused,
            tissue_channels=list(self.inputs.tissue_channels),
            notes=dict.fromkeys(("pcf", "bpf"), note) if note else {},
            protocol_name=protocol.name,
            template_fit=self.inputs.template_fit,
        )
        self._results["record"] = str(record)
        return runtime
