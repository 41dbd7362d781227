"""A simulated MS trial: subjects x visits, written as BIDS (and DICOM) plus ground truth.

Layout of ``OUT_DIR``::

    dataset_description.json  participants.tsv  sub-*/sub-*_sessions.tsv
    sub-*/ses-M*/anat/*_{PDw,T2w,T1w,FLAIR}.nii.gz, *_ce-gadolinium_T1w.nii.gz (+ .json)
    sourcedata/dicom/...                      (--format dicom|both)
    derivatives/groundtruth/                  endpoints.tsv, lesions.tsv, masks, simulation.json

The same seed gives byte-identical files.  Each subject draws from its own random
stream (seed, subject index), so adding subjects does not change earlier ones.  Each
subject is scanned at its own site, whose appearance (``TrialSpec.appearance``:
:mod:`mriproc.simulate.appearance`) is drawn from a stream of its own.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pandas as pd

from mriproc import __version__
from mriproc.config import Protocol
from mriproc.io.atomic import atomic_path, atomic_write_text
from mriproc.io.bids import anat_path, write_raw_dataset_files
from mriproc.io.derivatives import write_derivative
from mriproc.mr_signal import SEQUENCES, TISSUES, signal
from mriproc.progress import Progress
from mriproc.simulate.acquisition import (
    RESOLUTIONS,
    SampledGrid,
    add_rician_noise,
    bias_field,
    sample_grid,
)
from mriproc.simulate.appearance import (
    APPEARANCES,
    AppearanceName,
    csf_flow_artefact,
    draw_appearance,
)
from mriproc.simulate.deformation import random_pose
from mriproc.simulate.groundtruth import BrainTruth, ScanTruth, brain_truth, scan_truth
from mriproc.simulate.groundtruth_tables import visit_rows
from mriproc.simulate.subject import (
    ArmModel,
    SimSubject,
    VisitState,
    draw_subject,
    signal_volume,
    visit_state,
)
from mriproc.tables import EndpointRow, LesionRow, write_endpoints, write_lesions
from mriproc.template import Template, load_template

__all__ = ["DEFAULT_ARM_MODELS", "TrialSpec", "simulate_trial"]

logger = logging.getLogger(__name__)

DEFAULT_ARM_MODELS: dict[str, ArmModel] = {
    # ESIMS-like: about -0.44 %/year placebo, -0.31 %/year treatment, SD about 0.45.
    "placebo": ArmModel(
        atrophy_pct_per_year=-0.44, atrophy_sd_pct_per_year=0.45, new_lesions_per_year=1.5
    ),
    "treatment": ArmModel(
        atrophy_pct_per_year=-0.31, atrophy_sd_pct_per_year=0.45, new_lesions_per_year=1.0
    ),
    # No biological change at all: every follow-up rescans the baseline brain (new
    # noise, pose and bias field), for the null-pair (scan-rescan) checks.
    "rescan": ArmModel(
        atrophy_pct_per_year=0.0,
        atrophy_sd_pct_per_year=0.0,
        new_lesions_per_year=0.0,
        lesions_evolve=False,
    ),
}
GROUND_TRUTH = Path("derivatives") / "groundtruth"


@dataclass(frozen=True)
class TrialSpec:
    """What to simulate."""

    n_subjects: int
    arms: tuple[str, ...] = ("placebo", "ivig")
    months: tuple[int, ...] = (0, 12, 24)
    resolution: str = "esims"
    write_bids: bool = True
    write_dicom: bool = False
    flair: bool = False
    seed: int = 0
    snr: float = 25.0
    arm_models: dict[str, ArmModel] = field(default_factory=dict)
    appearance: AppearanceName = "classic"

    def __post_init__(self) -> None:
        if self.n_subjects < 1:
            raise ValueError("at least one subject is needed")
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms must be distinct names, got {self.arms}")
        if not self.months or self.months[0] != 0 or list(self.months) != sorted(set(self.months)):
            raise ValueError(f"visits must start at month 0 and increase, got {self.months}")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        if not self.snr > 0:
            raise ValueError("snr must be positive")
        if self.appearance not in APPEARANCES:
            raise ValueError(f"appearance must be one of {', '.join(APPEARANCES)}")

    def arm_model(self, arm: str) -> ArmModel:
        """An arm's disease model: explicit, else the default of its name (``placebo``,
        ``rescan``), else the treatment default."""
        if arm in self.arm_models:
            return self.arm_models[arm]
        return DEFAULT_ARM_MODELS.get(arm, DEFAULT_ARM_MODELS["treatment"])


def session_label(month: int) -> str:
    """``M00``, ``M12``, ... (months since baseline)."""
    return f"M{month:02d}"


def simulate_trial(
    out_dir: str | os.PathLike[str],
    spec: TrialSpec,
    protocol: Protocol,
    *,
    on_visit: Callable[[SimSubject, int, dict[str, Any]], None] | None = None,
    on_subject: Callable[[SimSubject], None] | None = None,
    n_procs: int = 1,
) -> Path:
    """Simulate the trial into ``out_dir`` and return it.

    ``protocol`` defines the ground truth's endpoints (labelling, PCF slab, change
    thresholds).  ``on_visit`` (optional) receives each subject, visit index and the
    visit's in-memory images, e.g. for a preview figure; ``on_subject`` each subject
    once its visits are written, in subject order.  ``n_procs`` > 1 simulates that
    many subjects at a time, each in a process of its own (forked; ``on_visit`` then
    runs in that process and must not count on the caller's state): every subject
    draws from its own random streams, so the files are the same either way.
    """
    out = Path(out_dir)
    _ = load_template().inside_mm  # once, before any fork: the workers share them
    endpoint_rows: list[EndpointRow] = []
    lesion_rows: list[LesionRow] = []
    subjects: list[SimSubject] = []
    truth_records: list[dict[str, Any]] = []
    progress = Progress(spec.n_subjects * len(spec.months), "simulate")
    job = _Job(out, spec, protocol, on_visit)
    indices = range(spec.n_subjects)
    if n_procs > 1 and spec.n_subjects > 1:
        # Forked workers inherit the job (its callback need not pickle) and the template.
        with ProcessPoolExecutor(
            max_workers=min(n_procs, spec.n_subjects),
            mp_context=multiprocessing.get_context("fork"),
            initializer=_set_job,
            initargs=(job,),
        ) as pool:
            results = _reported(pool.map(_worker_subject, indices), progress, spec, on_subject)
    else:
        results = _reported(
            (_simulate_subject(job, i) for i in indices), progress, spec, on_subject
        )
    for result in results:
        subjects.append(result.subject)
        endpoint_rows.extend(result.endpoint_rows)
        lesion_rows.extend(result.lesion_rows)
        truth_records.extend(result.truth_records)
    _write_dataset_files(out, spec, subjects, protocol, endpoint_rows, lesion_rows, truth_records)
    return out


@dataclass(frozen=True)
class _SubjectResult:
    """One simulated subject and its rows of the trial's ground-truth tables."""

    subject: SimSubject
    endpoint_rows: list[EndpointRow]
    lesion_rows: list[LesionRow]
    truth_records: list[dict[str, Any]]


def _reported(
    results: Iterable[_SubjectResult],
    progress: Progress,
    spec: TrialSpec,
    on_subject: Callable[[SimSubject], None] | None,
) -> list[_SubjectResult]:
    """Every subject's result, in order, with progress as each one arrives."""
    collected = []
    for result in results:
        for month in spec.months:
            progress.step(f"sub-{result.subject.label} ses-{session_label(month)}")
        if on_subject is not None:
            on_subject(result.subject)
        collected.append(result)
    return collected


@dataclass(frozen=True)
class _Job:
    """What every subject of a trial is simulated with."""

    out: Path
    spec: TrialSpec
    protocol: Protocol
    on_visit: Callable[[SimSubject, int, dict[str, Any]], None] | None


_WORKER_JOB: list[_Job] = []  # a forked worker's job (set by its initializer)


def _set_job(job: _Job) -> None:
    _WORKER_JOB[:] = [job]


def _worker_subject(index: int) -> _SubjectResult:
    return _simulate_subject(_WORKER_JOB[0], index)


def _simulate_subject(job: _Job, index: int) -> _SubjectResult:
    """Draw subject ``index`` and write its visits (images and ground-truth maps)."""
    out, spec, protocol, on_visit = job.out, job.spec, job.protocol, job.on_visit
    template = load_template()
    label = f"{index + 1:03d}"
    arm = spec.arms[index % len(spec.arms)]
    subject = draw_subject(
        template,
        label=label,
        arm=arm,
        model=spec.arm_model(arm),
        months=tuple(float(m) for m in spec.months),
        rng=np.random.default_rng([spec.seed, index]),
        appearance=draw_appearance(
            spec.appearance, np.random.default_rng([spec.seed, index, 0, 2])
        ),
    )
    result = _SubjectResult(subject, [], [], [])
    truths: list[ScanTruth] = []
    brains: list[BrainTruth] = []
    for visit, month in enumerate(spec.months):
        rng = np.random.default_rng([spec.seed, index, visit, 1])
        state = visit_state(template, subject, visit)
        images, grid, poses = _acquire_visit(template, subject, state, visit, spec, rng)
        truth = scan_truth(grid, state, template, protocol)
        brain = brain_truth(template, subject, state, visit, protocol)
        truths.append(truth)
        brains.append(brain)
        session = session_label(month)
        if spec.write_bids:
            _write_bids_images(out, subject, session, images)
        if spec.write_dicom:
            _write_dicom_series(out, subject, visit, session, images, spec)
        rows, lrows = visit_rows(subject, visit, session, truths, brains, protocol)
        _write_truth_maps(out / GROUND_TRUTH, subject, session, truth, lrows, visit > 0)
        result.endpoint_rows.extend(rows)
        result.lesion_rows.extend(lrows)
        result.truth_records.append(
            {
                "participant_id": f"sub-{label}",
                "session": f"ses-{session}",
                "parenchyma_ml": round(brain.parenchyma_ml, 4),
                "csf_ml": round(brain.csf_ml, 4),
                "slab_parenchyma_ml": round(brain.slab_parenchyma_ml, 4),
                "slab_csf_ml": round(brain.slab_csf_ml, 4),
                # Rigid maps subject (mm) -> scanner (mm) of each acquisition:
                # the ground truth for registration checks.
                "poses": {name: np.round(pose, 8).tolist() for name, pose in sorted(poses.items())},
            }
        )
        if on_visit is not None:
            on_visit(subject, visit, {"images": images, "truth": truth, "grid": grid})
    return result


def _readme(spec: TrialSpec, protocol: Protocol) -> str:
    """The simulated dataset's README: what it is and where its ground truth is."""
    visits = ", ".join(str(m) for m in spec.months)
    return (
        "# Simulated multiple-sclerosis trial (mriproc simulate)\n\n"
        f"Synthetic MRI, not data of any person: {spec.n_subjects} participant(s) in the "
        f"arms {', '.join(spec.arms)}, scanned at months {visits} with the "
        f"{protocol.name} protocol's contrasts ({spec.resolution} resolution, "
        f"{spec.appearance} appearance, seed {spec.seed}). Images are rendered from the "
        "MNI152 2009 template's tissue maps with drawn lesions, atrophy, pose, bias field "
        "and Rician noise.\n\n"
        "The ground truth (lesion masks and tables, brain volumes, the endpoints each "
        "visit should give, every acquisition's pose) is in derivatives/groundtruth; the "
        "simulation's parameters in derivatives/groundtruth/simulation.json.\n"
    )


# --------------------------------------------------------------------------- acquisition


def _small_motion(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    return random_pose(rng, max_rotation_deg=(1.0, 1.0, 1.0), max_translation_mm=(1.0, 1.0, 1.0))


def _acquire_visit(
    template: Template,
    subject: SimSubject,
    state: VisitState,
    visit: int,
    spec: TrialSpec,
    rng: np.random.Generator,
) -> tuple[
    dict[str, tuple[npt.NDArray[np.int16], npt.NDArray[np.float64]]],
    SampledGrid,
    dict[str, npt.NDArray[np.float64]],
]:
    """Every contrast of one visit as (int16 image, affine), the reading-space grid, the poses."""
    geometry = RESOLUTIONS[spec.resolution]
    atrophy = subject.atrophy(visit)
    dual_echo_pose = random_pose(rng)
    t1_pose = random_pose(rng)
    poses = {"dual_echo": dual_echo_pose, "T1w": t1_pose, "T1w_gad": _small_motion(rng) @ t1_pose}
    # Slices are prescribed on the head: centred near the lateral ventricles, with a
    # few mm of placement error.
    head_centre = np.array([0.0, -18.0, 18.0]) * subject.anatomy_scale
    grids: dict[str, SampledGrid] = {}
    for name, pose in poses.items():
        centre = (pose @ np.append(head_centre, 1.0))[:3] + rng.uniform(-3.0, 3.0, 3)
        grids[name] = sample_grid(
            geometry,
            geometry.affine(centre),
            pose=pose,
            template_affine=template.affine,
            atrophy=atrophy,
            anatomy=subject.anatomy,
            anatomy_scale=subject.anatomy_scale,
        )
    gain = float(rng.uniform(0.7, 1.4)) * 2000.0  # scanner scaling differs per visit
    wm = TISSUES["WM"]

    def noise_sigma(contrast: str, relative_snr: float = 1.0) -> float:
        reference = float(signal(SEQUENCES[contrast], wm.pd, wm.t1_ms, wm.t2_ms))
        return gain * reference / (spec.snr * relative_snr)

    images: dict[str, tuple[npt.NDArray[np.int16], npt.NDArray[np.float64]]] = {}
    dual = grids["dual_echo"]
    bias = bias_field(geometry.shape, strength=0.2, rng=rng)  # one coil field for both echoes
    sigma_dual = noise_sigma("PDw")  # one acquisition: the same noise level on both echoes
    contrasts = ["PDw", "T2w"] + (["FLAIR"] if spec.flair else [])
    for contrast in contrasts:
        flow = csf_flow_artefact(template, subject.appearance, rng) if contrast == "FLAIR" else None
        relative = signal_volume(state, contrast, post_contrast=False, csf_flow=flow)
        clean = dual.sample(relative) * bias * gain
        sigma = sigma_dual if contrast != "FLAIR" else noise_sigma("FLAIR", 0.8)
        images[contrast] = (add_rician_noise(clean, sigma=sigma, rng=rng), dual.affine)
    for role, post in (("T1w", False), ("T1w_gad", True)):
        grid = grids[role]
        field = bias_field(geometry.shape, strength=0.2, rng=rng)
        clean = grid.sample(signal_volume(state, "T1w", post_contrast=post)) * field * gain
        images[role] = (add_rician_noise(clean, sigma=noise_sigma("T1w"), rng=rng), grid.affine)
    return images, dual, poses


# --------------------------------------------------------------------------- writing

_BIDS_ENTITIES = {
    "PDw": ("PDw", None),
    "T2w": ("T2w", None),
    "FLAIR": ("FLAIR", None),
    "T1w": ("T1w", None),
    "T1w_gad": ("T1w", "gadolinium"),
}
_SEQUENCE_OF = {"PDw": "PDw", "T2w": "T2w", "FLAIR": "FLAIR", "T1w": "T1w", "T1w_gad": "T1w"}


def _sidecar(role: str, subject: SimSubject) -> dict[str, Any]:
    sequence = subject.appearance.sequences[_SEQUENCE_OF[role]]
    meta: dict[str, Any] = {
        "Manufacturer": "mriproc-simulator",
        "MagneticFieldStrength": 1.5,
        "EchoTime": sequence.te_ms / 1000.0,
        "RepetitionTime": sequence.tr_ms / 1000.0,
        "ScanningSequence": "IR" if sequence.ti_ms else "SE",
    }
    if sequence.ti_ms:
        meta["InversionTime"] = sequence.ti_ms / 1000.0
    if role == "T1w_gad":
        meta["ContrastBolusAgent"] = "Gd-DTPA 0.1 mmol/kg"
    return meta


def _write_bids_images(
    out: Path,
    subject: SimSubject,
    session: str,
    images: dict[str, tuple[npt.NDArray[np.int16], npt.NDArray[np.float64]]],
) -> None:
    for role, (data, affine) in images.items():
        suffix, ce = _BIDS_ENTITIES[role]
        path = anat_path(out, subject.label, session, suffix=suffix, ce=ce)
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        img.header.set_xyzt_units("mm")
        with atomic_path(path) as tmp:
            nib.save(img, tmp)
        atomic_write_text(
            path.with_name(path.name.replace(".nii.gz", ".json")),
            json.dumps(_sidecar(role, subject), indent=2) + "\n",
        )


def _write_dicom_series(
    out: Path,
    subject: SimSubject,
    visit: int,
    session: str,
    images: dict[str, tuple[npt.NDArray[np.int16], npt.NDArray[np.float64]]],
    spec: TrialSpec,
) -> None:
    from mriproc.simulate.dicom_trial import write_visit_dicom

    write_visit_dicom(out / "sourcedata" / "dicom", subject, visit, session, images, seed=spec.seed)


def _write_truth_maps(
    root: Path,
    subject: SimSubject,
    session: str,
    truth: ScanTruth,
    lesion_rows: Sequence[LesionRow],
    follow_up: bool,
) -> None:
    reading = anat_path(Path(), subject.label, session, suffix="T2w").as_posix()
    sources = [f"bids:raw:{reading}"]
    label, affine = subject.label, truth.affine
    masks = {
        "t2lesion": truth.t2lesion,
        "blackhole": truth.blackhole,
        "cel": truth.cel,
        "brain": truth.brain,
        "icv": truth.icv,
        "pcfslab": truth.pcfslab,
    }
    if follow_up:  # versus the previous visit, as new_t2_count and enlarging_t2_count
        for desc, category in (("newlesion", "new"), ("enlarginglesion", "enlarging")):
            chosen = [row.label for row in lesion_rows if row.category == category]
            masks[desc] = np.isin(truth.lesions.labels, chosen)
    for desc, mask in masks.items():
        write_derivative(
            root,
            label,
            session,
            mask.astype(np.uint8),
            affine,
            suffix="mask",
            desc=desc,
            sources=sources,
        )
    write_derivative(
        root,
        label,
        session,
        truth.dseg(),
        affine,
        suffix="dseg",
        sources=sources,
        metadata={"Labels": {"0": "background", "1": "CSF", "2": "GM", "3": "WM", "4": "lesion"}},
    )
    write_derivative(
        root,
        label,
        session,
        truth.lesions.labels,
        affine,
        suffix="dseg",
        desc="lesions",
        sources=sources,
        metadata={
            "Description": "Ground-truth T2 lesion components; "
            "values are the label column of lesions.tsv."
        },
    )
    for tissue, fraction in truth.probseg.items():
        write_derivative(
            root, label, session, fraction, affine, suffix="probseg", label=tissue, sources=sources
        )


def _write_dataset_files(
    out: Path,
    spec: TrialSpec,
    subjects: Sequence[SimSubject],
    protocol: Protocol,
    endpoint_rows: list[EndpointRow],
    lesion_rows: list[LesionRow],
    truth_records: list[dict[str, Any]],
) -> None:
    participants = pd.DataFrame(
        [{"participant_id": f"sub-{s.label}", "arm": s.arm, **s.covariates} for s in subjects]
    )
    months = {s.label: {session_label(m): float(m) for m in spec.months} for s in subjects}
    if spec.write_bids:
        write_raw_dataset_files(
            out,
            name="mriproc simulated MS trial",
            participants=participants,
            session_months=months,
            # Synthetic: no person acquired it.  (Two entries: the validator warns
            # about a single one.)
            authors=["mriproc simulate (software)", "Synthetic data: no human participants"],
            readme=_readme(spec, protocol),
        )
    truth_dir = out / GROUND_TRUTH
    write_endpoints(endpoint_rows, truth_dir, protocol_name=protocol.name)
    write_lesions(lesion_rows, truth_dir, protocol_name=protocol.name)
    description = {
        "Name": "mriproc simulated trial: ground truth",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "mriproc simulate", "Version": __version__}],
        # The simulated raw dataset this folder sits in (a relative URL: the
        # simulation's files do not depend on where they are written).
        "SourceDatasets": [{"URL": "../.."}],
    }
    atomic_write_text(
        truth_dir / "dataset_description.json", json.dumps(description, indent=2) + "\n"
    )
    simulation = {
        "spec": {k: v for k, v in asdict(spec).items() if k != "arm_models"},
        "arm_models": {arm: asdict(spec.arm_model(arm)) for arm in spec.arms},
        "protocol": protocol.name,
        "subjects": [
            {
                "participant_id": f"sub-{s.label}",
                "arm": s.arm,
                "annual_atrophy_pct": round(s.annual_atrophy_pct, 6),
                "anatomy_scale": round(s.anatomy_scale, 6),
                "appearance": _appearance_record(s),
                "lesions": [
                    {
                        "lesion_id": les.lesion_id,
                        "location": les.location,
                        "center_mm": [round(c, 3) for c in les.center_mm],
                        "radii_mm": [round(r, 3) for r in les.radii_mm],
                        "scale": [round(x, 4) for x in les.scale],
                        "category": list(les.category),
                        "enhancement": list(les.enhancement),
                        "black_hole": les.black_hole_core > 0,
                        "intensity": round(les.intensity, 4),
                    }
                    for les in s.lesions
                ],
            }
            for s in subjects
        ],
        "scans": truth_records,
    }
    atomic_write_text(truth_dir / "simulation.json", json.dumps(simulation, indent=2) + "\n")


def _appearance_record(subject: SimSubject) -> dict[str, Any]:
    """The subject's site appearance, for the record (what the measuring code never sees)."""
    appearance = subject.appearance
    record: dict[str, Any] = {"name": appearance.name}
    if appearance.realistic:
        record["tissues"] = {
            name: {k: round(v, 4) for k, v in asdict(t).items()}
            for name, t in sorted(appearance.tissues.items())
        }
        record["FLAIR"] = {
            k: v if v is None else round(v, 2)
            for k, v in asdict(appearance.sequences["FLAIR"]).items()
        }
        for key in ("hippocampus_t2_gain", "septum_t2_gain", "cap_t2_gain", "csf_flow"):
            record[key] = round(float(getattr(appearance, key)), 4)
    return record
