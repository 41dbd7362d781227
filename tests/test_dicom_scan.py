"""Reading DICOM trees and sorting series: scan, completeness checks, classification rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_trees import ROSSI, scramble_into, set_attribute, study, truncate, write_series

from mriproc.config import ProtocolError
from mriproc.io.dicom import DicomSeries, Slice, scan_dicom_tree, slice_stack
from mriproc.series_roles import DUAL_ECHO, SKIP, classify_series, load_heuristics

RULES = load_heuristics()
IDENTIFYING = RULES.identifying_attributes
STUDY = study("20200115", "ACC-1", "s1")


def scan(root: Path):  # type: ignore[no-untyped-def]
    return scan_dicom_tree(root, identifying_attributes=IDENTIFYING)


# --------------------------------------------------------------------------- scanning


def test_series_are_grouped_by_uid_whatever_the_folders_and_names(tmp_path: Path) -> None:
    dual = write_series(tmp_path / "a", ROSSI, STUDY, 2, "PD_T2", echo_times_ms=(20.0, 80.0))
    t1 = write_series(tmp_path / "b", ROSSI, STUDY, 3, "T1_SE")
    mixed = tmp_path / "tree" / "deep" / "er"
    scramble_into(dual[:5], mixed, "x")
    scramble_into(dual[5:], tmp_path / "tree", "y")
    scramble_into(t1, mixed, "z")
    (mixed / "notes.txt").write_text("not DICOM\n")
    (tmp_path / "tree" / "empty").write_bytes(b"")
    (tmp_path / "tree" / "DICM-but-short").write_bytes(b"\0" * 128 + b"DICM")
    _dicomdir(tmp_path / "tree" / "DICOMDIR")

    found = scan(tmp_path / "tree")

    assert [(s.series_number, len(s.files)) for s in found.series] == [(2, 12), (3, 6)]
    assert found.other_files == 3  # with a DICOMDIR
    assert len(found.damaged) == 1  # DICM magic with nothing after it
    assert found.series[0].echo_times_ms == (20.0, 80.0)
    assert found.identifiers["PatientID"] == ("PID-4711X",)
    assert found.identifiers["InstitutionName"] == ("Ospedale Fittizio Neuroradiologia",)


def _dicomdir(path: Path) -> None:
    """A media-directory object: DICOM, but no image and no series."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.FileSetID = "EXPORT"
    ds.save_as(path, enforce_file_format=True)


def test_truncated_pixel_data_is_found_without_reading_pixels(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 3, "T1_SE")
    truncate(files[2], files[2].stat().st_size - 100)
    (series,) = scan(tmp_path / "s").series
    assert len(series.files) == 5
    ((path, why),) = series.bad_files
    assert path == files[2]
    assert "pixel data cut short" in why


def test_a_file_cut_inside_its_header_is_damaged_not_silently_dropped(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 3, "T1_SE")
    truncate(files[0], 300)
    found = scan(tmp_path / "s")
    assert [p for p, _ in found.damaged] == [files[0]]
    assert len(found.series[0].files) == 5


def test_compressed_pixel_data_is_checked_for_its_end(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 3, "T1_SE", transfer_syntax="rle")
    assert not scan(tmp_path / "s").series[0].bad_files
    truncate(files[1], files[1].stat().st_size - 40)
    (series,) = scan(tmp_path / "s").series
    assert "end-of-sequence marker" in series.bad_files[0][1]


def test_a_missing_slice_is_a_gap_in_the_stack(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 2, "PD_T2", echo_times_ms=(20.0, 80.0))
    files[3].unlink()  # third-from-top slice of the first echo
    stack = slice_stack(scan(tmp_path / "s").series[0].slices)
    assert stack.slices_per_echo == {20.0: 5, 80.0: 6}
    assert len(stack.gaps) == 1
    assert stack.gaps[0][1:] == pytest.approx((10.0, 5.0))


# --------------------------------------------------------------------------- classification


def series(
    description: str = "",
    *,
    echoes: tuple[float, ...] = (15.0,),
    tr: float | None = 550.0,
    ti: float | None = None,
    agent: str = "",
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M"),
    modality: str = "MR",
    slices: int = 20,
    repeats: int = 1,
    orientations: int = 1,
) -> DicomSeries:
    """A series header without files (classification reads only attributes and planes)."""
    planes = []
    axes = [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), (1, 0, 0, 0, 0, -1)]
    for echo in echoes:
        for k in range(slices):
            for _ in range(repeats):
                orientation = tuple(float(v) for v in axes[k % orientations])
                planes.append(Slice((0.0, 0.0, 5.0 * k), orientation, echo))
    return DicomSeries(
        patient_id="P",
        study_uid="1.2",
        series_uid="1.2.3",
        attributes={
            "Modality": modality,
            "SeriesDescription": description,
            "ImageType": list(image_type),
            "RepetitionTime": tr,
            "InversionTime": ti,
            "ContrastBolusAgent": agent,
        },
        files=(Path("f"),),
        slices=tuple(planes),
    )


@pytest.mark.parametrize(
    ("header", "roles", "why"),
    [
        (series("PD_T2_SE", echoes=(20.0, 80.0), tr=2500), ("PDw", "T2w"), "dual echo"),
        (series("T1_SE_AX"), ("T1w",), "T1w from timing"),
        (series("T1_SE_AX", agent="Gd-DTPA"), ("T1w_gad",), "ContrastBolusAgent"),
        (series("T1 SE AX +C"), ("T1w_gad",), "description"),
        (series("t1_se_tra_post_gd"), ("T1w_gad",), "description"),
        (series("T1 pre Gd"), ("T1w",), "T1w from timing"),
        (series("T1_SE_AX", agent="NONE"), ("T1w",), "T1w from timing"),
        (series("3D MPRAGE", echoes=(3.0,), tr=2200, ti=900), ("T1w",), "TI 900"),
        (series("AX FLAIR", echoes=(120.0,), tr=9000, ti=2500), ("FLAIR",), "FLAIR"),
        (series("AX T2 TSE", echoes=(100.0,), tr=4000), ("T2w",), "T2w from timing"),
        (series("AX PD", echoes=(15.0,), tr=3000), ("PDw",), "PDw from timing"),
        (series("t2_flair", echoes=(None,), tr=None), ("FLAIR",), "from the description"),
    ],
    ids=[
        "dual-echo",
        "t1",
        "t1-agent",
        "t1-plus-c",
        "t1-post-gd",
        "t1-pre-gd",
        "agent-none",
        "mprage",
        "flair",
        "t2",
        "pd",
        "keywords-without-timing",
    ],
)
def test_anatomical_series_get_their_roles(
    header: DicomSeries, roles: tuple[str, ...], why: str
) -> None:
    result = classify_series(header, RULES)
    assert result.roles == roles
    assert why in result.reason


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (series("AAHead_Scout_32ch"), "localiser"),
        (series("T1_SE", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")), "localiser"),
        (series("T1 3-plane", orientations=3), "localiser"),
        (series("T1_SE", orientations=3), "3 orientations"),
        (series("ep2d_diff_3scan_trace"), "diffusion"),
        (series("T2 axial", repeats=30), "30 volumes per slice position"),
        (series("rest_bold_2mm"), "functional"),
        (series("T1_SE", image_type=("DERIVED", "SECONDARY", "MPR")), "derived"),
        (series("HEAD CT", modality="CT"), "modality CT"),
        (series("T1_SE", slices=2), "only 2 slice(s)"),
        (series("ME", echoes=(10.0, 20.0, 30.0), tr=50), "multi-echo"),
        (series("GRE", echoes=(4.9, 7.4), tr=500), "not a PD/T2 dual echo"),
        (series("mystery", echoes=(50.0,), tr=1200), "weighting not recognised"),
    ],
    ids=[
        "scout",
        "image-type-localizer",
        "three-plane",
        "orientations",
        "dwi",
        "4-d",
        "bold",
        "derived",
        "ct",
        "two-slices",
        "multi-echo",
        "field-map-echoes",
        "unknown-weighting",
    ],
)
def test_other_series_are_skipped_with_the_reason(header: DicomSeries, why: str) -> None:
    result = classify_series(header, RULES)
    assert not result.converted
    assert why in result.reason


def test_the_mapping_overrides_the_rules() -> None:
    assert classify_series(series("T1_SE_AX"), RULES, override="T1w_gad").roles == ("T1w_gad",)
    assert classify_series(series("T1_SE_AX"), RULES, override=SKIP).reason == (
        "skipped by the mapping file"
    )
    refused = classify_series(series("T1_SE_AX"), RULES, override=DUAL_ECHO)
    assert not refused.converted
    assert "needs 2 echo time(s), but the series has 1" in refused.reason


def test_non_mr_files_keep_their_modality_in_the_reason(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 3, "HEAD")
    set_attribute(files, "Modality", "CT")
    (found,) = scan(tmp_path / "s").series
    assert classify_series(found, RULES).reason == "modality CT is not converted"


def test_heuristics_files_are_checked(tmp_path: Path) -> None:
    shipped = Path(RULES.source).read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        shipped.replace("flair: 'flair'", "FLAIR: '(flair'").replace(
            "FLAIR: 'flair'", "FLAIR: '(flair'"
        )
    )
    with pytest.raises(ProtocolError, match=r"keywords\.FLAIR: not a valid regular expression"):
        load_heuristics(bad)
    bad.write_text(shipped + "\nsurprise: 1\n")
    with pytest.raises(ProtocolError, match="surprise: unknown key"):
        load_heuristics(bad)
