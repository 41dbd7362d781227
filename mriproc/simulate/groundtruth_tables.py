"""Ground-truth rows of ``endpoints.tsv`` and ``lesions.tsv``, in mriproc's own schema.

Comparisons with earlier visits are not applicable at baseline, so those endpoints
have no baseline rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from mriproc.config import Protocol
from mriproc.lesions import enhancing_components, label_lesions
from mriproc.simulate.groundtruth import BrainTruth, ScanTruth, change_category
from mriproc.simulate.subject import SimSubject
from mriproc.tables import EndpointRow, LesionRow

__all__ = ["visit_rows"]


def visit_rows(
    subject: SimSubject,
    visit: int,
    session: str,
    truths: Sequence[ScanTruth],
    brains: Sequence[BrainTruth],
    protocol: Protocol,
) -> tuple[list[EndpointRow], list[LesionRow]]:
    """Endpoint and lesion rows of ``subject`` at ``visit`` (truths/brains of visits 0..visit)."""
    truth, brain, baseline = truths[visit], brains[visit], brains[0]
    participant, session_id = f"sub-{subject.label}", f"ses-{session}"
    month = subject.months[visit]
    labelling = protocol.labelling

    def row(endpoint: str, value: float) -> EndpointRow:
        return EndpointRow(
            participant, session_id, month, subject.arm, endpoint, value, note="ground truth"
        )

    def components(mask: np.ndarray) -> tuple[int, float]:
        found = label_lesions(
            mask,
            truth.voxel_size_mm,
            connectivity=labelling.connectivity,
            min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
        )
        return found.count, found.total_volume_ml

    cel = enhancing_components(
        truth.cel,
        truth.voxel_size_mm,
        min_voxels=protocol.cel.min_voxels,
        connectivity=labelling.connectivity,
        min_in_plane_diameter_mm=labelling.min_in_plane_diameter_mm,
        t2_labels=truth.lesions.labels if protocol.cel.require_t2_correspondence else None,
    )
    n_bh, v_bh = components(truth.blackhole)
    rows = [
        row("t2_lesion_volume", truth.lesions.total_volume_ml),
        row("t2_lesion_count", truth.lesions.count),
        row("black_hole_volume", v_bh),
        row("black_hole_count", n_bh),
        row("cel_count", cel.count),
        row("cel_volume", cel.total_volume_ml),
        row("pcf", brain.pcf),
        row("bpf", truth.bpf),
    ]

    labels = truth.lesions.labels
    index = np.arange(1, truth.lesions.count + 1)
    centroids = ndimage.center_of_mass(labels > 0, labels, index) if len(index) else []
    categories: list[str] = []
    versus_baseline: list[str] = []
    lesion_rows: list[LesionRow] = []
    for number, centroid in zip(index, centroids, strict=True):
        members = sorted(int(v) for v in np.unique(truth.sim_label[labels == number]) if v > 0)
        sims = [subject.lesions[m - 1] for m in members]
        category = "baseline" if visit == 0 else change_category(sims, visit, visit - 1, protocol)
        categories.append(category)
        versus_baseline.append(
            "baseline" if visit == 0 else change_category(sims, visit, 0, protocol)
        )
        world = truth.affine @ np.append(np.asarray(centroid, dtype=float), 1.0)
        in_component = labels == number
        lesion_rows.append(
            LesionRow(
                participant,
                session_id,
                month,
                lesion_id=min(s.lesion_id for s in sims) if sims else f"X{number:03d}",
                label=int(number),
                volume_ml=float(truth.lesions.volumes_ml[number - 1]),
                centroid_x_mm=round(float(world[0]), 2),
                centroid_y_mm=round(float(world[1]), 2),
                centroid_z_mm=round(float(world[2]), 2),
                category=category,
                enhancing=bool(truth.cel[in_component].any()),
                black_hole=bool(truth.blackhole[in_component].any()),
            )
        )
    if visit > 0:
        new, enlarging = categories.count("new"), categories.count("enlarging")
        active = cel.count >= protocol.active_scan.min_cel or (
            new + enlarging >= protocol.active_scan.min_new_or_enlarging
        )
        rows += [
            row("new_t2_count", new),
            row("enlarging_t2_count", enlarging),
            row("new_t2_count_vs_baseline", versus_baseline.count("new")),
            row("enlarging_t2_count_vs_baseline", versus_baseline.count("enlarging")),
            row("active_scan", int(active)),
            row("pcf_change_pct", 100.0 * (brain.pcf - baseline.pcf) / baseline.pcf),
            row("pbvc", 100.0 * (brain.parenchyma_ml / baseline.parenchyma_ml - 1.0)),
        ]
    return rows, lesion_rows
