"""Nipype interfaces of the longitudinal steps (each calls one function of the library)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from mriproc.followup import followup_changes, halfway_registration, halfway_through_baseline
from mriproc.interfaces.protocol import ProtocolInputSpec, ProtocolInterface
from mriproc.outputs import write_longitudinal_outputs

__all__ = [
    "FollowupChanges",
    "HalfwayRegister",
    "HalfwayThroughBaseline",
    "LongitudinalOutputs",
    "VisitBundle",
]


class _VisitBundleInputSpec(BaseInterfaceInputSpec):
    reading = File(exists=True, mandatory=True, desc="bias-corrected reading-space image")
    roles = traits.List(traits.Str, mandatory=True, desc="contrast roles of images")
    images = traits.List(
        traits.Str, mandatory=True, desc="reading-space images of roles (empty: refused)"
    )
    tissue_outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="the tissue model's outputs (TissueClasses)",
    )
    lesion_outputs = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="the lesion stage's images (VisitLesions)",
    )
    template_maps = traits.Dict(
        traits.Str,
        File(exists=True),
        mandatory=True,
        desc="template maps carried to the scan (BrainMasks)",
    )
    record = File(exists=True, mandatory=True, desc="the visit's measures record")
    to_baseline = File(
        exists=True, desc="a follow-up's HalfwayRegister record with its baseline (when fitted)"
    )


class _VisitBundleOutputSpec(TraitedSpec):
    bundle = traits.Dict(
        traits.Str,
        traits.Str,
        desc="key -> file: tissue maps, masks, slab, lesions, images, record",
    )


class VisitBundle(SimpleInterface):
    """The files of one visit that the longitudinal stage reads, by key."""

    input_spec = _VisitBundleInputSpec
    output_spec = _VisitBundleOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        tissue = dict(self.inputs.tissue_outputs)
        bundle = {k: tissue[k] for k in ("GM", "WM", "CSF", "brain", "icv")}
        bundle["slab"] = dict(self.inputs.template_maps)["slab"]
        lesions = dict(self.inputs.lesion_outputs)
        if "lesions" in lesions:
            bundle["lesions"] = lesions["lesions"]
        bundle.update(
            {
                f"image:{r}": p
                for r, p in zip(self.inputs.roles, self.inputs.images, strict=True)
                if p
            }
        )
        bundle["reading"] = self.inputs.reading
        bundle["record"] = self.inputs.record
        if isdefined(self.inputs.to_baseline):
            bundle["to_baseline"] = self.inputs.to_baseline
        self._results["bundle"] = bundle
        return runtime


class _HalfwayRegisterInputSpec(ProtocolInputSpec):
    earlier = File(exists=True, mandatory=True, desc="earlier visit's reading image")
    later = File(exists=True, mandatory=True, desc="later visit's reading image")


class _HalfwayRegisterOutputSpec(TraitedSpec):
    record = File(exists=True, desc="JSON: the transforms and their asymmetry")


class HalfwayRegister(ProtocolInterface):
    """Inverse-consistent rigid registration of two visits and their halfway space."""

    input_spec = _HalfwayRegisterInputSpec
    output_spec = _HalfwayRegisterOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        protocol = self.protocol
        self._results["record"] = str(
            halfway_registration(
                self.inputs.earlier,
                self.inputs.later,
                preset=protocol.registration.preset,
                out_dir=Path(runtime.cwd),
            )
        )
        return runtime


class _HalfwayThroughBaselineInputSpec(BaseInterfaceInputSpec):
    to_earlier = File(exists=True, mandatory=True, desc="HalfwayRegister record: baseline, earlier")
    to_later = File(exists=True, mandatory=True, desc="HalfwayRegister record: baseline, later")


class HalfwayThroughBaseline(SimpleInterface):
    """Two follow-ups' halfway registration, composed from theirs with the baseline."""

    input_spec = _HalfwayThroughBaselineInputSpec
    output_spec = _HalfwayRegisterOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        self._results["record"] = str(
            halfway_through_baseline(
                self.inputs.to_earlier, self.inputs.to_later, Path(runtime.cwd)
            )
        )
        return runtime


class _FollowupChangesInputSpec(ProtocolInputSpec):
    followup = traits.Dict(
        traits.Str, traits.Str, mandatory=True, desc="the follow-up visit's bundle (VisitBundle)"
    )
    previous = traits.Dict(
        traits.Str, traits.Str, mandatory=True, desc="the previous visit's bundle"
    )
    baseline = traits.Dict(
        traits.Str, traits.Str, mandatory=True, desc="the baseline visit's bundle"
    )
    to_previous = File(
        exists=True, mandatory=True, desc="HalfwayRegister record: previous visit and follow-up"
    )
    to_baseline = File(
        exists=True, mandatory=True, desc="HalfwayRegister record: baseline and follow-up"
    )


class _FollowupChangesOutputSpec(TraitedSpec):
    result = File(exists=True, desc="JSON: measures, NA reasons, categories, links, masks")
    images = traits.Dict(traits.Str, File(exists=True), desc="change masks (follow-up grid)")


class FollowupChanges(ProtocolInterface):
    """New/enlarging lesions, active scan, PBVC and PCF change of one follow-up."""

    input_spec = _FollowupChangesInputSpec
    output_spec = _FollowupChangesOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        out_dir = Path(runtime.cwd)
        outcome = followup_changes(
            dict(self.inputs.followup),
            dict(self.inputs.previous),
            dict(self.inputs.baseline),
            to_previous=self.inputs.to_previous,
            to_baseline=self.inputs.to_baseline,
            protocol=self.protocol,
            out_dir=out_dir,
        )
        result = {
            "measures": outcome.measures,
            "not_available": outcome.not_available,
            "images": {k: str(v) for k, v in outcome.images.items()},
            "categories": {
                versus: {str(k): v for k, v in cats.items()}
                for versus, cats in outcome.categories.items()
            },
            "links": outcome.links,
            "registration": outcome.registration,
            "atrophy": {k: (v if np.isfinite(v) else None) for k, v in outcome.atrophy.items()},
            "notes": outcome.notes,
        }
        path = out_dir / "followup.json"
        path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        self._results["result"] = str(path)
        self._results["images"] = result["images"]
        return runtime


class _LongitudinalOutputsInputSpec(ProtocolInputSpec):
    output_dir = traits.Str(mandatory=True, desc="the derivatives root (OUT_DIR/mriproc)")
    participant = traits.Str(mandatory=True, desc="participant label (no sub-)")
    sessions = traits.List(traits.Str, mandatory=True, desc="session labels, baseline first")
    records = traits.List(File(exists=True), mandatory=True, desc="their visit records")
    results = traits.List(File(exists=True), mandatory=True, desc="follow-up results, in order")
    images = traits.List(
        traits.Dict(traits.Str, File(exists=True)), desc="their change masks (kept by Nipype)"
    )


class _LongitudinalOutputsOutputSpec(TraitedSpec):
    records = traits.List(
        File(exists=True), desc="every session's longitudinal record, in session order"
    )


class LongitudinalOutputs(ProtocolInterface):
    """Track lesion identities and write every visit's longitudinal derivatives."""

    input_spec = _LongitudinalOutputsInputSpec
    output_spec = _LongitudinalOutputsOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        written = write_longitudinal_outputs(
            self.inputs.output_dir,
            self.inputs.participant,
            list(self.inputs.sessions),
            list(self.inputs.records),
            list(self.inputs.results),
            protocol_name=self.protocol.name,
        )
        self._results["records"] = [str(p) for p in written]
        return runtime
