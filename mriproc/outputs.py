"""Every derivative mriproc writes, from the tables here: BIDS names, sidecars, records.

A visit's outputs (:func:`write_visit_outputs`: brain and intracranial masks, the
PCF slab, tissue fractions and classes, lesion masks and label map, co-registered
contrasts and their transforms, ``..._desc-visit_measures.json``) and a
participant's longitudinal outputs (:func:`write_longitudinal_outputs`: change
masks versus the previous visit and baseline on the follow-up's reading-space grid,
and each session's ``..._desc-longitudinal_measures.json`` with the longitudinal
endpoints, the reason for each that could not be computed, every lesion's tracked
identity and category, and the registrations used).  Images are written by
:func:`mriproc.io.derivatives.write_derivative` (BIDS names from entities, JSON
sidecars with ``Sources``, atomic writes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mriproc.followup import track_lesions
from mriproc.io.atomic import atomic_write_text, staged_outputs
from mriproc.io.bids import bids_path
from mriproc.io.derivatives import write_derivative
from mriproc.io.nifti import read_image
from mriproc.io.provenance import generated_by
from mriproc.tissues import DSEG_LABELS

__all__ = [
    "CHANGE_MASKS",
    "DESCRIPTIONS",
    "VISIT_DERIVATIVES",
    "longitudinal_record_path",
    "visit_record_path",
    "write_longitudinal_outputs",
    "write_visit_outputs",
]

# A visit's images by output key: their BIDS entities.
VISIT_DERIVATIVES: dict[str, dict[str, str]] = {
    "brain": dict(suffix="mask", desc="brain"),
    "icv": dict(suffix="mask", desc="icv"),
    "slab": dict(suffix="mask", desc="pcfslab"),
    "dseg": dict(suffix="dseg"),
    "CSF": dict(suffix="probseg", label="CSF"),
    "GM": dict(suffix="probseg", label="GM"),
    "WM": dict(suffix="probseg", label="WM"),
    "t2lesion": dict(suffix="mask", desc="t2lesion"),
    "lesions": dict(suffix="dseg", desc="lesions"),
    "blackhole": dict(suffix="mask", desc="blackhole"),
    "cel": dict(suffix="mask", desc="cel"),
    "t2lesionautomated": dict(suffix="mask", desc="t2lesionautomated"),
}
# A follow-up's change masks (``desc`` entity, ``suffix`` mask), versus the previous
# visit and versus baseline.
CHANGE_MASKS = (
    "newlesion",
    "enlarginglesion",
    "newlesionvsbaseline",
    "enlarginglesionvsbaseline",
)
# The sidecar ``Description`` of the outputs that have one.
DESCRIPTIONS: dict[str, str] = {
    "lesions": "T2 lesion label map: value = label column of lesions.tsv",
    "newlesion": "New T2 lesions versus the previous visit (no overlap with its lesions).",
    "enlarginglesion": "Enlarging T2 lesions versus the previous visit.",
    "newlesionvsbaseline": "New T2 lesions versus baseline.",
    "enlarginglesionvsbaseline": "Enlarging T2 lesions versus baseline.",
}


def visit_record_path(root: str | Path, participant: str, session: str) -> Path:
    """Where the visit workflow writes a session's measures record."""
    return bids_path(root, participant, session, suffix="measures", extension=".json", desc="visit")


def longitudinal_record_path(root: str | Path, participant: str, session: str) -> Path:
    """Where a session's longitudinal record lives."""
    return bids_path(
        root, participant, session, suffix="measures", extension=".json", desc="longitudinal"
    )


def write_visit_outputs(
    output_dir: str | Path,
    participant: str,
    session: str,
    *,
    reading_space: str,
    contrasts: dict[str, tuple[str, str | None]],
    sources: dict[str, str],
    images: dict[str, str],
    transforms: dict[str, str],
    measures: dict[str, float],
    qc: dict[str, float],
    not_available: dict[str, str] | None = None,
    lesion_list: str | Path | None = None,
    rater: dict[str, Any] | None = None,
    refused: dict[str, str] | None = None,
    tissue_channels: list[str] | None = None,
    notes: dict[str, str] | None = None,
    protocol_name: str | None = None,
    template_fit: str = "",
) -> Path:
    """Write one visit's derivatives (BIDS names, sidecars) and its measures record.

    ``images`` maps output keys (``brain``, ``icv``, ``slab``, ``dseg``, ``CSF``,
    ``GM``, ``WM``, ``t2lesion``, ``lesions``, ``blackhole``, ``cel``,
    ``coreg:<role>``) to work files; ``transforms`` maps a role to its ITK
    transform; ``sources`` maps roles to the raw files and ``contrasts`` roles to
    their BIDS suffix and ``ce`` label.  The record (``..._desc-visit_measures.json``)
    holds the endpoint values, the reason for each endpoint that could not be
    computed (``not_available``), the lesions (``lesions``: label, volume,
    centroid, enhancing, black hole), the QC figures and, when a rater's T2 lesion mask
    was used, its agreement with the automated one (``rater``), the contrasts refused by the
    co-registration check with the reason (``refused``), the tissue model's channels
    (``tissue_channels``), per-endpoint notes (``notes``), where the template fit
    came from (``template_fit``: :data:`mriproc.visit.OWN_FIT` or the baseline's), the visit's files
    (``files``: a rerun replaces them as a set, removing those it no longer writes)
    and ``GeneratedBy`` (mriproc's
    version, ``protocol_name`` and the lock-file hash); the endpoint tables are assembled
    from the records of every visit.
    """
    root = Path(output_dir)
    reading_source = sources[reading_space]
    record = visit_record_path(root, participant, session)
    last = str(record.relative_to(root))
    # Written in full beside the outputs, then swapped in: a visit whose writing fails
    # leaves its previous outputs as they were.
    with staged_outputs(root, last=last, previous=_listed_files(record)) as staging:
        for key, path in images.items():
            loaded = read_image(path)
            data = np.asarray(loaded.dataobj)
            affine = loaded.affine
            if key.startswith("coreg:"):
                role = key.split(":", 1)[1]
                suffix, ce = contrasts[role]
                entities: dict[str, Any] = dict(suffix=suffix, desc="coreg", ce=ce)
                meta: dict[str, Any] = {"SpatialReference": reading_source}
                source_list = [sources[role], reading_source]
            else:
                entities = dict(VISIT_DERIVATIVES[key])
                meta = {"SpatialReference": reading_source}
                if key == "dseg":
                    meta["Labels"] = {str(k): v for k, v in DSEG_LABELS.items()}
                if key in DESCRIPTIONS:
                    meta["Description"] = DESCRIPTIONS[key]
                source_list = [sources[r] for r in sources]
            write_derivative(
                staging,
                participant,
                session,
                data,
                affine,
                sources=source_list,
                metadata=meta,
                protocol_name=protocol_name,
                **entities,
            )
        for role, path in transforms.items():
            target = bids_path(
                staging,
                participant,
                session,
                suffix="xfm",
                extension=".txt",
                **{"from": role.replace("_", ""), "to": reading_space, "mode": "image"},
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, Path(path).read_text())  # ITK text from coregister
        staged = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        content: dict[str, Any] = {
            "measures": measures,
            "not_available": not_available or {},
            "lesions": [] if lesion_list is None else json.loads(Path(lesion_list).read_text()),
            "qc": qc,
            "refused": refused or {},
            "tissue_channels": tissue_channels or [],
            "notes": notes or {},
            "template_fit": template_fit,
            "sources": sources,
            "GeneratedBy": generated_by(protocol_name=protocol_name),
            # This visit's files under the derivatives root: a rerun removes those it
            # does not write again.
            "files": [*staged, last],
        }
        if rater:
            content["rater"] = rater
        atomic_write_text(staging / last, json.dumps(content, indent=2, sort_keys=True) + "\n")
    return record


def _listed_files(record: Path) -> list[str]:
    """The files a visit record lists (none when it is absent, unreadable or older)."""
    try:
        files = json.loads(record.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [str(f) for f in files] if isinstance(files, list) else []


def write_longitudinal_outputs(
    output_dir: str | Path,
    participant: str,
    sessions: list[str],
    records: list[str],
    results: list[str],
    *,
    protocol_name: str | None = None,
) -> list[Path]:
    """Track lesions over ``sessions`` (baseline first) and write their records and masks.

    Every record names what generated it (``GeneratedBy``: mriproc's version,
    ``protocol_name`` and the lock-file hash).
    """
    root = Path(output_dir)
    visit_records = [json.loads(Path(r).read_text()) for r in records]
    outcomes: list[dict[str, Any]] = [json.loads(Path(r).read_text()) for r in results]
    labels = [[int(lesion["label"]) for lesion in rec.get("lesions", [])] for rec in visit_records]
    identities = track_lesions(
        labels[0],
        [
            (labels[i + 1], [(int(e), int(lat)) for e, lat in outcome.get("links", [])])
            for i, outcome in enumerate(outcomes)
        ],
    )
    written = []
    for index, session in enumerate(sessions):
        content: dict[str, Any] = {
            "lesion_ids": {str(k): v for k, v in sorted(identities[index].items())},
            "GeneratedBy": generated_by(protocol_name=protocol_name),
        }
        if index == 0:
            content["categories"] = dict.fromkeys(content["lesion_ids"], "baseline")
        else:
            outcome = outcomes[index - 1]
            content["measures"] = outcome["measures"]
            content["not_available"] = outcome["not_available"]
            content["categories"] = outcome.get("categories", {}).get("previous", {})
            content["categories_vs_baseline"] = outcome.get("categories", {}).get("baseline", {})
            content["registration"] = outcome["registration"]
            content["atrophy"] = outcome.get("atrophy", {})
            content["notes"] = outcome.get("notes", {})
            sources = visit_records[index].get("sources", {})
            for key, path in sorted(outcome.get("images", {}).items()):
                image = read_image(path)
                write_derivative(
                    root,
                    participant,
                    session,
                    np.asarray(image.dataobj),
                    image.affine,
                    suffix="mask",
                    desc=key,
                    sources=sorted(sources.values()),
                    metadata={"Description": DESCRIPTIONS[key]},
                    protocol_name=protocol_name,
                )
        target = longitudinal_record_path(root, participant, session)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(content, indent=2, sort_keys=True) + "\n")
        written.append(target)
    return written
