"""One follow-up visit against its previous visit and baseline: the longitudinal endpoints.

Inputs are *visit bundles*: the files one visit's workflow produced, by key
(``reading``: the bias-corrected reading-space image; ``image:<role>``: each
contrast in reading space; ``lesions``: the T2 lesion label map; ``GM``, ``WM``,
``CSF``: tissue fractions; ``brain``; ``slab``: the template's PCF slab weight;
``record``: the visit's measures record).  Registrations come from
:func:`mriproc.registration.register_halfway` (:func:`halfway_registration` writes
them), the earlier visit's reading grid being the halfway grid.

New and enlarging lesions (:func:`mriproc.longitudinal.lesion_changes`) are found
against the previous visit and against baseline; PBVC and PCF change against
baseline by the protocol's ``pbvc.method`` (:func:`mriproc.atrophy.boundary_shift`
or :func:`mriproc.atrophy.jacobian_integration`), with quality figures in the
record and, when they say the value cannot be trusted, n/a with the reason;
``active_scan`` from the follow-up's CEL count and its new/enlarging lesions
versus the previous visit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt

from mriproc.atrophy import (
    BoundaryShift,
    JacobianChange,
    VisitImage,
    boundary_shift,
    jacobian_integration,
)
from mriproc.config import Protocol, RegistrationPreset
from mriproc.io.nifti import read_image, save_image
from mriproc.lesions import min_lesion_volume_ml
from mriproc.longitudinal import HalfwayVisit, LesionChanges, LongitudinalError, lesion_changes
from mriproc.registration import (
    HalfwayRegistration,
    apply_linear,
    halfway_space,
    register_halfway,
)

__all__ = [
    "FollowupOutcome",
    "earlier_to_later",
    "followup_changes",
    "halfway_registration",
    "halfway_through_baseline",
    "track_lesions",
]


def halfway_registration(
    earlier: str | Path, later: str | Path, *, preset: RegistrationPreset, out_dir: Path
) -> Path:
    """Register two visits' reading images (inverse-consistent, rigid); write a JSON record.

    The rigid fits sample the metric at the preset's ``rigid_sampling_rate``.
    """
    fixed, moving = read_image(earlier), read_image(later)
    rigid = replace(preset, sampling_rate=preset.rigid_sampling_rate)
    result = register_halfway(fixed, moving, preset=rigid, out_dir=out_dir / "registration")
    return _write_halfway(out_dir, str(earlier), str(later), result)


def halfway_through_baseline(to_earlier: str | Path, to_later: str | Path, out_dir: Path) -> Path:
    """Two follow-ups' halfway registration composed from each one's to the baseline.

    ``to_earlier`` and ``to_later`` are :func:`halfway_registration` records of the
    baseline with each follow-up (baseline earlier); the record written has the same
    fields, for the earlier and the later follow-up.  Its ``asymmetry_mm`` is the
    sum of the two (a bound on the composed registration's inverse inconsistency).
    """
    first, second = (json.loads(Path(r).read_text()) for r in (to_earlier, to_later))
    to_first, to_second = (
        np.asarray(r["earlier_to_later_ras"], dtype=np.float64) for r in (first, second)
    )
    composed = halfway_space(
        np.asarray(to_second @ np.linalg.inv(to_first), dtype=np.float64),
        first["asymmetry_mm"] + second["asymmetry_mm"],
    )
    return _write_halfway(
        out_dir, first["later"], second["later"], composed, through=first["earlier"]
    )


def _write_halfway(
    out_dir: Path, earlier: str, later: str, registration: HalfwayRegistration, **extra: str
) -> Path:
    """The JSON record of a halfway registration of two visits' reading images."""
    record = {
        "earlier": earlier,
        "later": later,
        "earlier_to_later_ras": registration.fixed_to_moving.tolist(),
        "halfway_to_earlier_ras": registration.halfway_to_fixed.tolist(),
        "halfway_to_later_ras": registration.halfway_to_moving.tolist(),
        "asymmetry_mm": registration.asymmetry_mm,
        **extra,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "halfway.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def earlier_to_later(record: str | Path) -> npt.NDArray[np.float64]:
    """The rigid map of earlier-visit RAS points to later-visit ones in a halfway record."""
    matrix = json.loads(Path(record).read_text())["earlier_to_later_ras"]
    return np.asarray(matrix, dtype=np.float64)


@dataclass
class FollowupOutcome:
    """Endpoints of one follow-up, NA reasons, change masks and lesion categories."""

    measures: dict[str, float] = field(default_factory=dict)
    not_available: dict[str, str] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    categories: dict[str, dict[int, str]] = field(default_factory=dict)  # versus -> label -> cat
    links: list[tuple[int, int]] = field(default_factory=list)  # (previous label, label)
    registration: dict[str, dict[str, Any]] = field(default_factory=dict)
    atrophy: dict[str, float] = field(default_factory=dict)  # quality of PBVC / PCF change
    notes: dict[str, str] = field(default_factory=dict)  # endpoint -> how it was measured


class _Pair:
    """Two visits resampled into the halfway space of their registration."""

    def __init__(self, earlier: Mapping[str, str], later: Mapping[str, str], record: str | Path):
        self.record = json.loads(Path(record).read_text())
        self.grid = read_image(earlier["reading"])
        self.zooms = tuple(float(z) for z in self.grid.header.get_zooms()[:3])
        self.bundles = {"earlier": earlier, "later": later}

    def load(self, which: str, key: str, *, nearest: bool = False) -> npt.NDArray[np.float64]:
        source = read_image(self.bundles[which][key])
        return self.resample(which, source, nearest=nearest)

    def resample(
        self, which: str, image: nib.Nifti1Image, *, nearest: bool = False
    ) -> npt.NDArray[np.float64]:
        matrix = np.asarray(self.record[f"halfway_to_{which}_ras"], dtype=np.float64)
        moved = apply_linear(
            nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), image.affine),
            self.grid,
            matrix,
            interpolation="nearest" if nearest else "linear",
        )
        return np.asarray(moved.dataobj, dtype=np.float64)

    def coverage(self, which: str) -> npt.NDArray[np.float64]:
        reference = read_image(self.bundles[which]["reading"])
        ones = nib.Nifti1Image(np.ones(reference.shape[:3], dtype=np.float32), reference.affine)
        return self.resample(which, ones)


def _lesion_visit(pair: _Pair, which: str, channels: tuple[str, ...]) -> HalfwayVisit:
    return HalfwayVisit(
        channels=[pair.load(which, f"image:{role}") for role in channels],
        labels=pair.load(which, "lesions", nearest=True).astype(np.int32),
        wm=pair.load(which, "WM"),
        brain=pair.load(which, "brain") >= 0.5,
    )


def _visit_image(bundle: Mapping[str, str], classes: tuple[str, ...]) -> VisitImage:
    """The visit's reading image and parenchyma fraction on its own grid.

    Lesion voxels are parenchyma (as in the visit's PCF), whatever the tissue model
    made of them.
    """
    reading = read_image(bundle["reading"])
    fractions = {c: np.asarray(read_image(bundle[c]).dataobj) for c in ("GM", "WM", "CSF")}
    parenchyma = np.sum([fractions[c] for c in classes if c != "lesion"], axis=0)
    if "lesion" in classes and "lesions" in bundle:
        lesion = np.asarray(read_image(bundle["lesions"]).dataobj) > 0
        parenchyma = np.where(lesion, parenchyma + fractions["CSF"], parenchyma)
    return VisitImage(np.asarray(reading.dataobj), parenchyma, np.asarray(reading.affine))


def _record(bundle: Mapping[str, str]) -> dict[str, Any]:
    content: dict[str, Any] = json.loads(Path(bundle["record"]).read_text())
    return content


def followup_changes(
    followup: Mapping[str, str],
    previous: Mapping[str, str],
    baseline: Mapping[str, str],
    *,
    to_previous: str | Path,
    to_baseline: str | Path,
    protocol: Protocol,
    out_dir: Path,
) -> FollowupOutcome:
    """Longitudinal endpoints of ``followup`` (bundles as described in the module docstring)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = FollowupOutcome()
    channels = tuple(protocol.t2_lesions.channels)
    names = {
        "previous": ("new_t2_count", "enlarging_t2_count"),
        "baseline": ("new_t2_count_vs_baseline", "enlarging_t2_count_vs_baseline"),
    }
    # At the first follow-up the previous visit is baseline: one pair, analysed once.
    pairs: dict[str, _Pair] = {}
    results: dict[str, LesionChanges | str] = {}  # the changes, or why there are none
    for key, earlier, record in (
        ("previous", previous, to_previous),
        ("baseline", baseline, to_baseline),
    ):
        same = key == "baseline" and str(to_baseline) == str(to_previous)
        pairs[key] = pairs["previous"] if same else _Pair(earlier, followup, record)
        outcome.registration[key] = {
            "earlier_to_later_ras": pairs[key].record["earlier_to_later_ras"],
            "asymmetry_mm": pairs[key].record["asymmetry_mm"],
        }
        results[key] = results["previous"] if same else _changes(pairs[key], channels, protocol)
        result = results[key]
        if isinstance(result, str):
            outcome.not_available.update(dict.fromkeys(names[key], result))
            continue
        outcome.categories[key] = result.category_of()
        new_name, enlarging_name = names[key]
        outcome.measures[new_name] = float(result.count("new"))
        outcome.measures[enlarging_name] = float(result.count("enlarging"))
    found = results["previous"]
    if not isinstance(found, str):
        outcome.links = sorted((e, lat) for g in found.groups for e in g.earlier for lat in g.later)
    if outcome.categories:
        own = read_image(followup["lesions"])
        own_labels = np.asarray(own.dataobj).astype(np.int32)
        for key, categories in outcome.categories.items():
            suffix = "" if key == "previous" else "vsbaseline"
            for category in ("new", "enlarging"):
                chosen = [label for label, c in categories.items() if c == category]
                mask = np.isin(own_labels, chosen).astype(np.uint8)
                name = f"{category}lesion{suffix}"
                outcome.images[name] = save_image(mask, own.affine, out_dir / f"{name}.nii.gz")

    _active_scan(outcome, _record(followup), protocol)

    _brain_change(outcome, baseline, followup, pairs["baseline"].record, protocol, out_dir)
    return outcome


def _brain_change(
    outcome: FollowupOutcome,
    baseline: Mapping[str, str],
    followup: Mapping[str, str],
    registration: Mapping[str, Any],
    protocol: Protocol,
    out_dir: Path,
) -> None:
    """PBVC and PCF change from baseline by the protocol's method, with quality figures."""
    for which, bundle in (("baseline", baseline), ("follow-up", followup)):
        record = _record(bundle)
        if "pcf" in record.get("not_available", {}):
            reason = f"no PCF at the {which} visit: {record['not_available']['pcf']}"
            outcome.not_available.update(pcf_change_pct=reason, pbvc=reason)
            return
    classes = tuple(protocol.pcf.parenchyma_classes)
    images = (_visit_image(baseline, classes), _visit_image(followup, classes))
    to_followup = np.asarray(registration["earlier_to_later_ras"], dtype=np.float64)
    slab = np.asarray(read_image(baseline["slab"]).dataobj)
    change: BoundaryShift | JacobianChange
    try:
        if protocol.pbvc.method == "boundary_shift":
            change = boundary_shift(*images, to_followup, slab, protocol.pbvc)
        else:
            preset = protocol.registration.preset
            change = jacobian_integration(*images, to_followup, slab, preset, out_dir / "jacobian")
    except ValueError as err:
        reason = f"brain volume change failed: {err}"
        outcome.not_available.update(pcf_change_pct=reason, pbvc=reason)
        return
    outcome.atrophy = change.quality()
    distrust = change.distrust()
    note = "; ".join(filter(None, (change.note(), _tissue_note(baseline, followup, protocol))))
    for name, value in (("pbvc", change.pbvc), ("pcf_change_pct", change.pcf_change_pct)):
        if distrust is None and np.isfinite(value):
            outcome.measures[name] = float(value)
            outcome.notes[name] = note
        else:
            outcome.not_available[name] = distrust or f"{change.note()}: no value"


def _tissue_note(
    baseline: Mapping[str, str], followup: Mapping[str, str], protocol: Protocol
) -> str:
    """Which channels the two visits' tissue models had, when not all of the protocol's."""
    full = list(protocol.pcf.channels)
    used = {
        which: _record(bundle).get("tissue_channels") or full
        for which, bundle in (("baseline", baseline), ("follow-up", followup))
    }
    if all(channels == full for channels in used.values()):
        return ""
    described = ", ".join(f"{which} from {' + '.join(c)}" for which, c in used.items())
    return f"tissue models: {described} (not all of {' + '.join(full)}): less precise"


def _changes(pair: _Pair, channels: tuple[str, ...], protocol: Protocol) -> LesionChanges | str:
    """The pair's lesion changes, or why they cannot be found."""
    missing = [
        name
        for name, which in (("earlier", "earlier"), ("follow-up", "later"))
        if "lesions" not in pair.bundles[which]
    ]
    if missing:
        return "no T2 lesion mask at the " + " and ".join(missing) + " visit"
    try:
        return lesion_changes(
            _lesion_visit(pair, "earlier", channels),
            _lesion_visit(pair, "later", channels),
            pair.zooms,
            params=protocol.new_enlarging,
            nawm_min_wm_fraction=protocol.t2_lesions.nawm_min_wm_fraction,
            min_change_ml=min_lesion_volume_ml(
                protocol.labelling.min_in_plane_diameter_mm, pair.zooms
            ),
        )
    except LongitudinalError as err:
        return f"lesion change failed: {err}"


def _active_scan(outcome: FollowupOutcome, record: Mapping[str, Any], protocol: Protocol) -> None:
    """Active: >= min_cel CEL, or >= min_new_or_enlarging new/enlarging lesions vs previous."""
    rule = protocol.active_scan
    cel = record.get("measures", {}).get("cel_count")
    lesions = [outcome.measures.get(k) for k in ("new_t2_count", "enlarging_t2_count")]
    lesion_count = None if None in lesions else sum(v for v in lesions if v is not None)
    if (cel is not None and cel >= rule.min_cel) or (
        lesion_count is not None and lesion_count >= rule.min_new_or_enlarging
    ):
        outcome.measures["active_scan"] = 1.0
    elif cel is not None and lesion_count is not None:
        outcome.measures["active_scan"] = 0.0
    else:
        why = []
        if cel is None:
            cel_reason = record.get("not_available", {}).get("cel_count", "not measured")
            why.append(f"cel_count NA ({cel_reason})")
        if lesion_count is None:
            why.append(f"new/enlarging NA ({outcome.not_available.get('new_t2_count')})")
        outcome.not_available["active_scan"] = "; ".join(why)


def track_lesions(
    baseline_labels: list[int], followups: list[tuple[list[int], list[tuple[int, int]]]]
) -> list[dict[int, str]]:
    """Stable lesion identities across visits.

    ``baseline_labels``: the labels at baseline; ``followups``: per follow-up in
    order, its labels and its links (previous label, label) to the previous visit.
    Baseline lesion ``k`` is ``L<k>``; a lesion linked to earlier ones keeps the
    smallest of their identities (a merge); when one earlier lesion splits, the
    lowest-numbered part keeps its identity and the others get ``<id>.1``, ``<id>.2``
    ...; unlinked lesions get the next free number.  Returns one label -> identity
    map per visit (baseline first).
    """
    maps = [{k: f"L{k:03d}" for k in baseline_labels}]
    next_number = max(baseline_labels, default=0) + 1
    for labels, links in followups:
        previous = maps[-1]
        current: dict[int, str] = {}
        parts: dict[str, int] = {}
        for label in sorted(labels):
            earlier = sorted(
                {previous[e] for e, later in links if later == label and e in previous},
                key=_identity_order,
            )
            if not earlier:
                current[label] = f"L{next_number:03d}"
                next_number += 1
                continue
            base = earlier[0]
            count = parts.get(base, 0)
            current[label] = base if count == 0 else f"{base}.{count}"
            parts[base] = count + 1
        maps.append(current)
    return maps


def _identity_order(identity: str) -> tuple[int, ...]:
    return tuple(int(part) for part in identity[1:].split("."))
