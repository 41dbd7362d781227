"""DICOM export of a simulated visit: what a scanner would send for an ESIMS-like session.

Series per visit: a dual-echo PD/T2 spin echo (both echoes in one series), T1 spin
echo before and after gadolinium (ContrastBolusAgent set), and FLAIR when simulated.
Patients get fake but identifying names, IDs, birth dates and accession numbers, so
that de-identification by ``mriproc convert`` can be tested.  Layout:
``sourcedata/dicom/<PatientID>/<StudyDate>/<NN>_<SeriesDescription>/IM_*.dcm``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mriproc.io.dicom_write import PatientInfo, StudyInfo, write_mr_series
from mriproc.simulate.subject import SimSubject

__all__ = ["fake_patient", "write_visit_dicom"]

_BASELINE_DATE = dt.date(2020, 1, 15)
_FAMILY = ("MUSTERMANN", "ROSSI", "DUPONT", "JANSEN", "NOWAK", "GARCIA", "SMITH", "HORVAT")
_GIVEN = ("ANNA", "LUCA", "MARIE", "JAN", "EVA", "PIETRO", "SARA", "TOMAS")

Images = dict[str, tuple[npt.NDArray[np.int16], npt.NDArray[np.float64]]]


def fake_patient(subject: SimSubject, seed: int) -> PatientInfo:
    """Deterministic, obviously fake identifying fields for one simulated subject."""
    index = int(subject.label)
    age = int(subject.covariates.get("age", 45))  # type: ignore[call-overload]
    birth = _BASELINE_DATE.replace(year=_BASELINE_DATE.year - age) - dt.timedelta(days=37 * index)
    family = _FAMILY[index % len(_FAMILY)]
    given = _GIVEN[(index + seed) % len(_GIVEN)]
    return PatientInfo(
        name=f"{family}^{given}^SIM{seed}X{subject.label}",
        patient_id=f"PID{seed:03d}{subject.label}Q",
        birth_date=birth.strftime("%Y%m%d"),
        sex="F" if subject.covariates.get("sex") == "F" else "M",
    )


def write_visit_dicom(
    root: Path, subject: SimSubject, visit: int, session: str, images: Images, *, seed: int
) -> list[Path]:
    """Write every series of one visit; returns the files written."""
    patient = fake_patient(subject, seed)
    month = int(subject.months[visit])
    date = _BASELINE_DATE + dt.timedelta(days=round(month * 30.44))
    study = StudyInfo(
        study_date=date.strftime("%Y%m%d"),
        study_time=f"{9 + visit % 8:02d}{(7 * int(subject.label)) % 60:02d}00",
        accession_number=f"ACC{seed}{subject.label}{visit:02d}",
        institution_name="Simulated General Hospital Neuroradiology",
        study_description="MRI BRAIN MS TRIAL",
        uid_seed=f"mriproc-sim-{seed}-{subject.label}-{session}",
    )
    folder = root / patient.patient_id / study.study_date
    series: list[tuple[int, str, list[str], str | None]] = [
        (2, "PD_T2_SE_AX", ["PDw", "T2w"], None),
        (3, "T1_SE_AX", ["T1w"], None),
        (4, "T1_SE_AX_POST_GD", ["T1w_gad"], "Gd-DTPA 0.1 mmol/kg"),
    ]
    if "FLAIR" in images:
        series.append((5, "FLAIR_AX", ["FLAIR"], None))
    written: list[Path] = []
    for number, description, roles, agent in series:
        site = subject.appearance.sequences  # the sequences of the subject's site
        sequences = [site["T1w" if role == "T1w_gad" else role] for role in roles]
        # The geometry the BIDS export stores (NIfTI keeps the affine in float32): from
        # the unrounded one, dcm2niix can land one float32 step (~1.5e-5 mm) away,
        # and the two exports of one scan would not describe the same grid.
        stored_affine = images[roles[0]][1].astype(np.float32).astype(np.float64)
        written += write_mr_series(
            folder / f"{number:02d}_{description}",
            [images[role][0] for role in roles],
            stored_affine,
            patient=patient,
            study=study,
            series_number=number,
            series_description=description,
            echo_times_ms=[s.te_ms for s in sequences],
            repetition_time_ms=sequences[0].tr_ms,
            inversion_time_ms=sequences[0].ti_ms,
            contrast_agent=agent,
            uid_seed=f"{study.uid_seed}-{number}",
        )
    return written
