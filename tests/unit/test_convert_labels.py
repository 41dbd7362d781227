"""Participant and session labels, the mapping file, and de-identification helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mriproc.convert_labels import Study, plan_labels
from mriproc.deidentify import Redactor, scrub_sidecar
from mriproc.io.conversion_mapping import (
    ConversionMapping,
    MappingError,
    read_mapping,
    write_mapping,
)

ROLES = ["PDw", "T2w", "T1w", "T1w_gad", "FLAIR", "PDw_T2w", "skip"]


def plan(studies: list[Study], **kwargs):  # type: ignore[no-untyped-def]
    options = {
        "mapping": ConversionMapping(),
        "reproduced": {},
        "existing_sessions": {},
        "new_participants_allowed": True,
    }
    options.update(kwargs)
    return plan_labels(studies, **options)


def test_new_dataset_labels_patients_in_id_order_and_sessions_by_month() -> None:
    studies = [
        Study("PB", "b1", "20200301"),
        Study("PA", "a2", "20210114"),  # 365 days: M12
        Study("PA", "a1", "20200115"),
        Study("PA", "a3", "20220116"),  # 732 days (a leap year): M24
        Study("PA", "a1bis", "20200115"),  # same day: same session
        Study("PA", "a4", "20200118"),  # 3 days: month 0 is taken by another day
    ]
    result = plan(studies)
    assert result.participants == {"PA": "001", "PB": "002"}
    sessions = {uid: (label.session, label.days) for uid, label in result.studies.items()}
    assert sessions == {
        "a1": ("M00", 0),
        "a1bis": ("M00", 0),
        "a4": ("M00d3", 3),
        "a2": ("M12", 365),
        "a3": ("M24", 732),
        "b1": ("M00", 0),
    }
    assert result.studies["a3"].visit_month == 24
    assert result.baselines == {"PA": "20200115", "PB": "20200301"}


def test_an_unknown_patient_is_refused_when_the_dataset_has_participants() -> None:
    result = plan(
        [Study("PX", "x1", "20210114")],
        existing_sessions={"001": {"M00": 0}},
        new_participants_allowed=False,
    )
    assert result.participants == {}
    assert "pass --mapping" in (result.studies["x1"].problem or "")


def test_a_mapping_file_allows_new_participants_with_free_labels() -> None:
    mapping = ConversionMapping(participants={"PA": "001"}, baseline_dates={"PA": "20200115"})
    result = plan(
        [Study("PA", "a2", "20210114"), Study("PZ", "z1", "20210301")],
        mapping=mapping,
        existing_sessions={"001": {"M00": 0}, "002": {"M00": 0}},
        new_participants_allowed=True,
    )
    assert result.participants == {"PA": "001", "PZ": "003"}
    assert result.studies["a2"].session == "M12"
    assert result.studies["z1"].session == "M00"


def test_a_reproduced_study_gives_participant_and_baseline() -> None:
    # The dataset holds this patient's 12-month study as sub-007 ses-M12 (365 days).
    result = plan(
        [Study("PA", "a2", "20210114"), Study("PA", "a3", "20220116")],
        reproduced={"a2": ("007", "M12")},
        existing_sessions={"007": {"M00": 0, "M12": 365}},
        new_participants_allowed=False,
    )
    assert result.participants == {"PA": "007"}
    assert result.baselines == {"PA": "20200115"}
    assert result.studies["a3"].session == "M24"


def test_a_participant_with_sessions_and_no_anchor_gets_a_reason() -> None:
    mapping = ConversionMapping(participants={"PA": "001"})
    result = plan(
        [Study("PA", "a9", "20230101")],
        mapping=mapping,
        existing_sessions={"001": {"M00": 0}},
    )
    assert "baseline_date" in (result.studies["a9"].problem or "")


def test_mapping_sessions_and_early_studies() -> None:
    mapping = ConversionMapping(baseline_dates={"PA": "20200601"}, sessions={"a1": "screening"})
    result = plan([Study("PA", "a0", "20200101"), Study("PA", "a1", "20200520")], mapping=mapping)
    assert "152 days before sub-001's baseline" in (result.studies["a0"].problem or "")
    assert result.studies["a1"].session == "screening"


# --------------------------------------------------------------------------- mapping file


def test_mapping_file_round_trip(tmp_path: Path) -> None:
    mapping = ConversionMapping(
        participants={"PID-1": "001"},
        baseline_dates={"PID-1": "20200115"},
        sessions={"1.2.3": "M00"},
        series_roles={"1.2.3.4": "T1w_gad"},
        description_roles={"T1 weird": "skip"},
        notes={("StudyInstanceUID", "1.2.3", "session"): "StudyDate 20200115"},
    )
    path = write_mapping(tmp_path / "map.tsv", mapping)
    assert read_mapping(path, roles=ROLES) == mapping
    assert mapping.role_of("1.2.3.4", "T1 weird") == "T1w_gad"  # the UID wins
    assert mapping.role_of("9.9", " T1 weird ") == "skip"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("PatientID\tPID-SECRET\trole\tT1w\n", "cannot set 'role' by 'PatientID'"),
        ("PatientID\tPID-SECRET\tparticipant\tsub-1\n", "must be letters and digits"),
        ("SeriesDescription\tT1\trole\tT3w\n", "role 'T3w' is not one of"),
        ("PatientID\tPID-SECRET\tbaseline_date\t2020-01-15\n", "must be a date YYYYMMDD"),
        (
            "PatientID\tPID-SECRET\tparticipant\t001\nPatientID\tPID-SECRET\tparticipant\t002\n",
            "line 3: this PatientID was already given another participant",
        ),
        (
            "PatientID\tPID-SECRET\tparticipant\t001\nPatientID\tPID-OTHER\tparticipant\t001\n",
            "given to two PatientIDs",
        ),
    ],
    ids=["wrong-setting", "bad-label", "bad-role", "bad-date", "twice", "shared-label"],
)
def test_mapping_errors_name_the_line_never_the_identifier(
    tmp_path: Path, rows: str, message: str
) -> None:
    path = tmp_path / "map.tsv"
    path.write_text("field\tvalue\tset\tto\n" + rows)
    with pytest.raises(MappingError, match=message) as caught:
        read_mapping(path, roles=ROLES)
    assert "SECRET" not in str(caught.value)
    assert "OTHER" not in str(caught.value)


def test_mapping_file_needs_its_header(tmp_path: Path) -> None:
    path = tmp_path / "map.tsv"
    path.write_text("PatientID\tX\tparticipant\t001\n")
    with pytest.raises(MappingError, match="first line must be the header"):
        read_mapping(path, roles=ROLES)


# --------------------------------------------------------------------------- de-identification


def test_redactor_covers_name_parts_and_date_spellings() -> None:
    redactor = Redactor.from_attributes(
        {"PatientName": ("NOWAK^JAN^X",), "PatientBirthDate": ("19650811",), "StudyID": ("7",)}
    )
    assert redactor.text("nowak_jan 1965-08-11 11.08.1965 id 7") == (
        "[redacted]_[redacted] [redacted] [redacted] id 7"
    )


def test_scrub_sidecar_drops_listed_keys_and_identifying_values() -> None:
    redactor = Redactor.from_attributes({"PatientName": ("HFS",), "OperatorsName": ("Rorden",)})
    sidecar = {
        "InstitutionName": "Somewhere",
        "PatientPosition": "HFS",
        "ProcedureStepDescription": "x",
        "SeriesDescription": "T1 by rorden",
        "EchoTime": 0.015,
        "ImageType": ["ORIGINAL", "PRIMARY"],
    }
    clean, dropped = scrub_sidecar(
        sidecar, redactor, ["InstitutionName", "ProcedureStepDescription"]
    )
    assert clean == {"EchoTime": 0.015, "ImageType": ["ORIGINAL", "PRIMARY"]}
    assert dropped == ["PatientPosition", "SeriesDescription"]


def test_only_person_names_are_split_into_parts() -> None:
    redactor = Redactor.from_attributes(
        {"InstitutionName": ("Prisma Health Hospital",), "OperatorsName": ("Rorden Chris",)}
    )
    assert redactor.text("Prisma_fit at Prisma Health Hospital, by chris") == (
        "Prisma_fit at [redacted], by [redacted]"
    )
