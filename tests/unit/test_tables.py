"""Tidy tables: schema, round trip, determinism, atomic writes and data dictionaries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from mriproc import __version__
from mriproc.endpoints import ENDPOINTS
from mriproc.io.atomic import atomic_path, atomic_write_text
from mriproc.tables import (
    ENDPOINT_COLUMNS,
    ERROR_COLUMNS,
    LESION_CATEGORIES,
    LESION_COLUMNS,
    EndpointRow,
    ErrorRow,
    LesionRow,
    TableError,
    read_table,
    write_dataset_description,
    write_endpoints,
    write_errors,
    write_lesions,
)

SPEC_UNITS = {
    "t2_lesion_volume": "mL",
    "t2_lesion_count": "n",
    "black_hole_volume": "mL",
    "black_hole_count": "n",
    "cel_count": "n",
    "cel_volume": "mL",
    "new_t2_count": "n",
    "enlarging_t2_count": "n",
    "active_scan": "0/1",
    "pcf": "fraction",
    "bpf": "fraction",
    "pcf_change_pct": "%",
    "pbvc": "%",
}


def rows() -> list[EndpointRow]:
    return [
        EndpointRow("sub-02", "ses-M12", 12, "ivig", "pcf", 0.81234567891),
        EndpointRow("sub-01", "ses-M12", 12, "placebo", "cel_count", None, "no post-contrast T1w"),
        EndpointRow("sub-01", "ses-M00", 0, "placebo", "t2_lesion_volume", 12.5, note="auto"),
        EndpointRow("sub-01", "ses-M00", 0, "placebo", "cel_count", 3),
        EndpointRow("sub-01", "ses-M12", 12, "placebo", "pcf_change_pct", -0.88),
        EndpointRow("sub-02", "ses-M12", 12, "ivig", "active_scan", 1),
    ]


def test_catalogue_has_every_spec_endpoint_with_its_unit() -> None:
    units = {e.name: e.unit for e in ENDPOINTS}
    for name, unit in SPEC_UNITS.items():
        assert units[name] == unit
    assert len(units) == len(ENDPOINTS)  # no duplicates


def test_endpoints_round_trip(tmp_path: Path) -> None:
    long_path, wide_path = write_endpoints(rows(), tmp_path, protocol_name="esims")
    table = read_table(long_path)
    assert list(table.columns) == list(ENDPOINT_COLUMNS)
    assert len(table) == 6
    # Sorted: participant, visit, catalogue order.
    assert list(table["endpoint"][:2]) == ["t2_lesion_volume", "cel_count"]
    missing = table[table["endpoint"] == "cel_count"].iloc[1]
    assert missing["session"] == "ses-M12"
    assert math.isnan(missing["value"])
    assert missing["status"] == "no post-contrast T1w"
    pcf = table[table["endpoint"] == "pcf"].iloc[0]
    assert pcf["value"] == pytest.approx(0.81234568)
    assert pcf["unit"] == "fraction"
    wide = read_table(wide_path)
    assert len(wide) == 3  # one row per scan
    sub1_m12 = wide[(wide.participant_id == "sub-01") & (wide.session == "ses-M12")].iloc[0]
    assert math.isnan(sub1_m12["cel_count"])
    assert sub1_m12["pcf_change_pct"] == pytest.approx(-0.88)
    assert math.isnan(sub1_m12["pbvc"])  # never given: n/a


def test_counts_are_integers_and_na_is_spelled_bids_style(tmp_path: Path) -> None:
    long_path, _ = write_endpoints(rows(), tmp_path, protocol_name="esims")
    lines = long_path.read_text().splitlines()
    assert "sub-01\tses-M00\t0\tplacebo\tcel_count\t3\tn\tok\t" in lines
    assert "sub-01\tses-M12\t12\tplacebo\tcel_count\tn/a\tn\tno post-contrast T1w\t" in lines


def test_same_rows_in_any_order_give_identical_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_endpoints(rows(), a, protocol_name="esims")
    write_endpoints(list(reversed(rows())), b, protocol_name="esims")
    for name in ("endpoints.tsv", "endpoints_wide.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_data_dictionary_describes_every_column(tmp_path: Path) -> None:
    long_path, wide_path = write_endpoints(rows(), tmp_path, protocol_name="esims")
    sidecar = json.loads(long_path.with_suffix(".json").read_text())
    for column in ENDPOINT_COLUMNS:
        assert sidecar[column]["Description"]
    assert set(sidecar["endpoint"]["Levels"]) == {e.name for e in ENDPOINTS}
    assert sidecar["GeneratedBy"][0]["Name"] == "mriproc"
    assert sidecar["GeneratedBy"][0]["Version"] == __version__
    assert sidecar["GeneratedBy"][0]["Protocol"] == "esims"
    assert {"numpy", "nibabel", "antspyx", "nipype"} <= set(sidecar["SoftwareVersions"])
    wide = json.loads(wide_path.with_suffix(".json").read_text())
    assert wide["pcf"]["Units"] == "fraction"
    assert wide["t2_lesion_volume"]["Units"] == "mL"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": None, "status": "ok"}, "a missing value needs a status"),
        ({"value": None, "status": " "}, "a missing value needs a status"),
        ({"value": float("nan")}, "not finite"),
        ({"value": 1.0, "status": "no T1w"}, "status must be 'ok'"),
        ({"endpoint": "lesion_load"}, "unknown endpoint"),
        ({"participant_id": "01"}, "participant_id must look like sub-"),
        ({"session": "M00"}, "session must look like ses-"),
        ({"note": "two\tcells"}, "tabs or newlines"),
    ],
)
def test_rows_that_break_the_schema_are_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {
        "participant_id": "sub-01",
        "session": "ses-M00",
        "visit_month": 0,
        "arm": "placebo",
        "endpoint": "pcf",
        "value": 0.8,
    }
    fields.update(kwargs)
    with pytest.raises(TableError, match=message):
        EndpointRow(**fields)  # type: ignore[arg-type]


def test_fractional_count_and_duplicate_endpoint_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="whole number"):
        write_endpoints(
            [EndpointRow("sub-01", "ses-M00", 0, "a", "cel_count", 1.5)],
            tmp_path,
            protocol_name="x",
        )
    twice = [EndpointRow("sub-01", "ses-M00", 0, "a", "pcf", 0.8)] * 2
    with pytest.raises(TableError, match="given twice"):
        write_endpoints(twice, tmp_path, protocol_name="x")
    assert not (tmp_path / "endpoints.tsv").exists()


def test_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "endpoints.tsv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new con")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["endpoints.tsv"]


def test_atomic_path_keeps_the_double_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "sub-01_mask.nii.gz") as tmp:
        assert tmp.name.endswith(".nii.gz")
        assert tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub-01_mask.nii.gz").read_bytes() == b"x"


def test_lesions_round_trip(tmp_path: Path) -> None:
    lesion_rows = [
        LesionRow("sub-01", "ses-M12", 12, "L002", 1, 0.25, 10.0, -20.5, 30.0, "new", True, None),
        LesionRow("sub-01", "ses-M00", 0, "L001", 1, 1.5, 1.0, 2.0, 3.0, "baseline", False, True),
    ]
    path = write_lesions(lesion_rows, tmp_path, protocol_name="esims")
    table = read_table(path)
    assert list(table.columns) == list(LESION_COLUMNS)
    assert list(table["lesion_id"]) == ["L001", "L002"]
    assert list(table["enhancing"]) == [0, 1]
    assert math.isnan(table["black_hole"][1])
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["volume_ml"]["Units"] == "mL"
    assert set(sidecar["category"]["Levels"]) == set(LESION_CATEGORIES)
    with pytest.raises(TableError, match="category 'growing'"):
        LesionRow("sub-01", "ses-M00", 0, "L1", 1, 1.0, 0, 0, 0, "growing", None, None)


def test_errors_table_is_written_even_when_empty(tmp_path: Path) -> None:
    path = write_errors([], tmp_path, protocol_name=None)
    assert read_table(path).empty
    path = write_errors(
        [
            ErrorRow(
                "sub-01", "ses-M12", "input", "sub-01_ses-M12_T2w.nii.gz: empty file\n(0 bytes)"
            )
        ],
        tmp_path,
        protocol_name="esims",
    )
    table = read_table(path)
    assert list(table.columns) == list(ERROR_COLUMNS)
    assert table["reason"][0] == "sub-01_ses-M12_T2w.nii.gz: empty file (0 bytes)"
    assert pd.isna(table["crash_file"][0])


def test_dataset_description_is_a_bids_derivative(tmp_path: Path) -> None:
    path = write_dataset_description(
        tmp_path, source_datasets=["/data/bids"], protocol_name="esims"
    )
    description = json.loads(path.read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Version"] == __version__
    assert description["SourceDatasets"] == [{"URL": "/data/bids"}]


def test_read_table_checks_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.tsv"
    path.write_text("participant_id\tvalue\nsub-01\t1\n")
    with pytest.raises(TableError, match="do not match the schema"):
        read_table(path)


def _visit_outputs(root: Path, work: Path, keys: list[str], **extra: object) -> Path:
    """A visit's derivatives written by the real writer (tiny images)."""
    from mriproc.outputs import write_visit_outputs

    work.mkdir(exist_ok=True)
    images = {}
    for key in keys:
        images[key] = str(work / f"{key}.nii.gz")
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), images[key])
    arguments: dict[str, Any] = dict(
        reading_space="T2w",
        contrasts={"T2w": ("T2w", None)},
        sources={"T2w": "/data/sub-01_ses-M00_T2w.nii.gz"},
        images=images,
        transforms={},
        measures={"pcf": 0.8},
        qc={},
        protocol_name="esims",
    )
    return write_visit_outputs(root, "01", "M00", **(arguments | extra))


def test_visit_outputs_are_replaced_as_a_set_and_only_when_complete(tmp_path: Path) -> None:
    """A rerun removes what it no longer writes; a failed write leaves the last set.

    Before: files of an earlier run that the new run did not write (a black-hole
    mask, say) stayed beside the new ones, and a write failing midway left a mix.
    """
    root = tmp_path / "mriproc"
    record = _visit_outputs(root, tmp_path / "work", ["brain", "blackhole"])
    anat = record.parent
    first = sorted(p.name for p in anat.iterdir())
    assert "sub-01_ses-M00_desc-blackhole_mask.nii.gz" in first
    listed = json.loads(record.read_text())["files"]
    assert sorted(Path(f).name for f in listed) == first

    with pytest.raises(KeyError):  # the writer fails midway: an image key it does not know
        _visit_outputs(root, tmp_path / "work", ["cel", "unknown"], measures={"pcf": 0.7})
    assert sorted(p.name for p in anat.iterdir()) == first
    assert json.loads(record.read_text())["measures"] == {"pcf": 0.8}

    _visit_outputs(root, tmp_path / "work", ["brain"], measures={"pcf": 0.7})
    second = sorted(p.name for p in anat.iterdir())
    assert "sub-01_ses-M00_desc-blackhole_mask.nii.gz" not in second
    assert "sub-01_ses-M00_desc-brain_mask.nii.gz" in second
    assert json.loads(record.read_text())["measures"] == {"pcf": 0.7}
    # A file the visit does not own (the longitudinal stage's) is left alone.
    (anat / "sub-01_ses-M00_desc-longitudinal_measures.json").write_text("{}")
    _visit_outputs(root, tmp_path / "work", ["brain"])
    assert (anat / "sub-01_ses-M00_desc-longitudinal_measures.json").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".staging")]
