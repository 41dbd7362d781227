"""Write a participant's longitudinal derivatives: change masks, lesion identities, records.

Each session gets ``..._desc-longitudinal_measures.json``: the longitudinal
endpoints (follow-ups), the reason for each that could not be computed, every
lesion's tracked identity (label -> ``lesion_id``) and category versus the previous
visit, and the registrations used.  Follow-ups also get ``desc-newlesion_mask`` and
``desc-enlarginglesion_mask`` (versus the previous visit; ``...vsbaseline`` versus
baseline) on their own reading-space grid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mriproc.followup import track_lesions
from mriproc.io.atomic import atomic_write_text
from mriproc.io.bids import bids_path
from mriproc.io.derivatives import write_derivative
from mriproc.io.nifti import read_image
from mriproc.provenance import generated_by

__all__ = ["longitudinal_record_path", "write_longitudinal_outputs"]

_MASKS = {
    "newlesion": "New T2 lesions versus the previous visit (no overlap with its lesions).",
    "enlarginglesion": "Enlarging T2 lesions versus the previous visit.",
    "newlesionvsbaseline": "New T2 lesions versus baseline.",
    "enlarginglesionvsbaseline": "Enlarging T2 lesions versus baseline.",
}


def longitudinal_record_path(root: str | Path, participant: str, session: str) -> Path:
    """Where a session's longitudinal record lives."""
    return bids_path(
        root, participant, session, suffix="measures", extension=".json", desc="longitudinal"
    )


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
                    metadata={"Description": _MASKS[key]},
                    protocol_name=protocol_name,
                )
        target = longitudinal_record_path(root, participant, session)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, json.dumps(content, indent=2, sort_keys=True) + "\n")
        written.append(target)
    return written
