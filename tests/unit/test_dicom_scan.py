"""Reading DICOM trees and sorting series: scan, completeness checks, classification rules."""

from __future__ import annotations

import dataclasses
import gzip
import tarfile
import zipfile
from pathlib import Path

import pydicom
import pytest
from dicom_trees import (
    COMPRESSORS,
    ROSSI,
    compress_tree,
    delete_attribute,
    scramble_into,
    set_attribute,
    study,
    tree_state,
    truncate,
    write_series,
)

from mriproc.config import ProtocolError
from mriproc.io.dicom import DicomSeries, Slice, scan_dicom_tree, slice_stack
from mriproc.series_roles import (
    DUAL_ECHO,
    SKIP,
    classify_series,
    load_heuristics,
    skip_uncorrected_copies,
)

RULES = load_heuristics()
IDENTIFYING = RULES.identifying_attributes
STUDY = study("20200115", "ACC-1", "s1")


def scan(root: Path, unpack_dir: Path | None = None):  # type: ignore[no-untyped-def]
    return scan_dicom_tree(root, identifying_attributes=IDENTIFYING, unpack_dir=unpack_dir)


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
    assert [d.path for d in found.damaged] == [files[0]]
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


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressed_dicom_is_read_from_a_copy_outside_the_tree(tmp_path: Path, kind: str) -> None:
    write_series(tmp_path / "plain" / "a", ROSSI, STUDY, 2, "PD_T2", echo_times_ms=(20.0, 80.0))
    write_series(tmp_path / "plain" / "b", ROSSI, STUDY, 3, "T1_SE")
    (tmp_path / "plain" / "notes.txt").write_text("not DICOM\n")
    compress_tree(tmp_path / "plain", tmp_path / "packed", kind=kind, keep_names=3)
    before = tree_state(tmp_path / "packed")
    unpack = tmp_path / "unpack"
    unpack.mkdir()

    plain, packed = scan(tmp_path / "plain"), scan(tmp_path / "packed", unpack)

    assert [(s.series_number, len(s.files)) for s in packed.series] == [(2, 12), (3, 6)]
    assert [s.slices for s in packed.series] == [s.slices for s in plain.series]
    assert packed.series[0].attributes == plain.series[0].attributes
    assert packed.not_dicom == 1  # notes.txt, compressed too
    assert packed.decompressed == 18 and not packed.damaged and not packed.not_read
    assert all(f.parent == unpack for s in packed.series for f in s.files)
    assert tree_state(tmp_path / "packed") == before  # nothing written next to the input
    assert packed.file_count == plain.file_count == 19
    # Without a folder to decompress into, the files are listed, not dropped.
    unread = scan(tmp_path / "packed")
    assert len(unread.not_read) == 18
    assert "not decompressed" in unread.not_read[0][1]


def test_damaged_compressed_files_are_named_and_still_give_their_series(tmp_path: Path) -> None:
    files = write_series(tmp_path / "plain", ROSSI, STUDY, 3, "T1_SE")
    tree = tmp_path / "tree"
    compress_tree(tmp_path / "plain", tree)
    cut = tree / (files[1].name + ".gz")
    truncate(cut, cut.stat().st_size - 60)  # an interrupted copy of the .gz
    (tree / "junk.dcm.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not gzip data" * 20)
    unpack = tmp_path / "unpack"
    unpack.mkdir()

    found = scan(tree, unpack)

    (series,) = found.series
    assert len(series.files) == 5
    ((path, why),) = series.bad_files
    assert path == cut  # the input file is named, not its decompressed copy
    assert why.startswith("gzip-compressed data damaged or cut short (EOFError)")
    assert series.description == "T1_SE" and series.series_number == 3
    ((damaged),) = found.damaged
    assert damaged.path == tree / "junk.dcm.gz"
    assert "cannot be decompressed" in damaged.problem


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tgz", "tar.xz"])
def test_archives_are_unpacked_and_their_files_read(tmp_path: Path, kind: str) -> None:
    """Zip and tar archives (compressed or not): members read, named by archive and member."""
    files = write_series(tmp_path / "plain", ROSSI, STUDY, 3, "T1_SE")
    truncate(files[-1], files[-1].stat().st_size - 100)  # damaged: named as archive/member
    tree = tmp_path / "tree"
    (tree / "site").mkdir(parents=True)
    archive = tree / "site" / f"export.{kind}"
    members = [f"{ROSSI.name}/IM{index:04d}" for index in range(len(files))]
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zipped:
            for path, member in zip(files, members, strict=True):
                zipped.write(path, member)
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.xz": "w:xz"}[kind]
        with tarfile.open(archive, mode) as tarred:
            for path, member in zip(files, members, strict=True):
                tarred.add(path, member)
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    found = scan(tree, unpack)
    (series,) = found.series
    assert len(series.files) == len(files) - 1
    assert series.description == "T1_SE" and not found.not_read and found.archives == 1
    # Read from copies with neutral names in the unpack folder ...
    assert all(f.is_relative_to(unpack) and "ROSSI" not in str(f) for f in series.files)
    # ... and named as archive/member.
    ((bad, _),) = series.bad_files
    assert bad == archive / members[-1]
    assert sorted(p.name for p in tree.rglob("*")) == [f"export.{kind}", "site"]  # nothing added


def test_a_damaged_archive_is_named_and_its_good_members_kept(tmp_path: Path) -> None:
    files = write_series(tmp_path / "plain", ROSSI, STUDY, 3, "T1_SE")
    tree = tmp_path / "tree"
    tree.mkdir()
    with tarfile.open(tree / "export.tar", "w") as tarred:
        for path in files:
            tarred.add(path, path.name)
    data = (tree / "export.tar").read_bytes()
    (tree / "cut.tar").write_bytes(data[: len(data) // 2 + 700])  # cut inside a member
    (tree / "cut.tar.gz").write_bytes(b"\x1f\x8b\x08\x00" + bytes(200))  # no tar inside
    (tree / "junk.zip").write_bytes(b"PK\x03\x04" + bytes(100))
    (tree / "export.tar").unlink()
    unpack = tmp_path / "unpack"
    unpack.mkdir()
    found = scan(tree, unpack)
    damaged = {d.path.name: d.problem for d in found.damaged}
    assert damaged["junk.zip"].startswith("zip archive that cannot be unpacked (BadZipFile)")
    assert "cut.tar" in damaged and "tar archive that cannot be unpacked" in damaged["cut.tar"]
    assert (
        "cannot be read" in damaged["cut.tar.gz"]
        or "cannot be decompressed" in damaged["cut.tar.gz"]
    )
    # The members before the cut are still read.
    (series,) = found.series
    assert 1 <= len(series.files) < len(files)


def test_other_archives_are_listed_as_not_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "export.7z").write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(64))
    found = scan(tree, tmp_path)
    assert not found.series and found.not_dicom == 0
    assert found.not_read == (
        (tree / "export.7z", "7z archive, not unpacked: unpack it and run again"),
    )


def test_a_bare_data_set_without_preamble_is_read(tmp_path: Path) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    files = write_series(tmp_path / "s", ROSSI, STUDY, 3, "T1_SE")
    for path in files:  # as old PACS exports write them: no preamble, no meta group
        buffer = DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, True
        write_dataset(buffer, pydicom.dcmread(path))
        path.write_bytes(buffer.getvalue())
    (series,) = scan(tmp_path / "s").series
    assert len(series.files) == 6 and not series.bad_files
    assert series.description == "T1_SE"


def test_a_series_with_damaged_pixel_data_keeps_its_number_and_description(
    tmp_path: Path,
) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 7, "t1_mprage_sag")
    for path in files:
        truncate(path, path.stat().st_size - 100)
    (series,) = scan(tmp_path / "s").series
    assert series.files == () and len(series.bad_files) == 6
    assert (series.series_number, series.description) == (7, "t1_mprage_sag")
    assert series.attributes["Modality"] == "MR"
    result = classify_series(series, RULES)
    assert (result.roles, result.decision) == ((), "unreadable")


def test_a_file_cut_before_its_series_uid_keeps_the_description_it_has(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 7, "t1_mprage_sag")
    data = files[0].read_bytes()
    uid = pydicom.dcmread(files[0]).SeriesInstanceUID.encode()
    truncate(files[0], data.index(uid) - 8)  # just before (0020,000E)
    found = scan(tmp_path / "s")
    (damaged,) = found.damaged
    assert damaged.path == files[0]
    assert damaged.description == "t1_mprage_sag"
    assert "no SeriesInstanceUID" in damaged.problem


def test_images_without_geometry_are_not_damaged(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 99, "T1_SE_AX")
    delete_attribute(files, "ImagePositionPatient")
    set_attribute(files, "SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")  # Secondary Capture
    found = scan(tmp_path / "s")
    (series,) = found.series
    assert not found.damaged and not series.bad_files
    assert len(series.unplaced) == 6 and series.series_number == 99
    result = classify_series(series, RULES)
    assert not result.converted
    assert result.reason == (
        "screen capture or secondary capture (from SOP class Secondary Capture Image Storage)"
    )


def test_gzip_is_recognised_by_content_whatever_the_name(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", ROSSI, STUDY, 3, "T1_SE")
    for path in files:
        path.write_bytes(gzip.compress(path.read_bytes()))  # same name, gzip content
    assert len(scan(tmp_path / "s", tmp_path).series[0].files) == 6


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
    **extra: object,
) -> DicomSeries:
    """A series header without files (classification reads only attributes and planes).

    ``extra``: more attributes (SequenceName, ProtocolName, SOPClassUID, ...).
    """
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
            **extra,
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


# A Siemens gre_field_mapping: short TE and TR, as a T1-weighted spoiled gradient echo.
FIELD_MAP_TIMING = {"echoes": (7.38,), "tr": 488.0}


@pytest.mark.parametrize(
    "header",
    [
        series("gre_field_mapping", **FIELD_MAP_TIMING),
        series("", **FIELD_MAP_TIMING, ProtocolName="gre_field_mapping"),
        series("AX 2D", **FIELD_MAP_TIMING, SequenceName="*fm2d2r", ScanningSequence="GR"),
        series("B0map", **FIELD_MAP_TIMING),
        series("gre_field_mapping", echoes=(4.92, 7.38), tr=488.0),
        series("gre_field_mapping", **FIELD_MAP_TIMING, image_type=("ORIGINAL", "PRIMARY", "P")),
        series("AX 2D", **FIELD_MAP_TIMING, image_type=("ORIGINAL", "PRIMARY", "FM", "ND")),
    ],
    ids=["description", "protocol-name", "sequence-name", "b0map", "magnitude", "phase", "fm"],
)
def test_a_field_map_with_t1_like_timing_is_not_t1w(header: DicomSeries) -> None:
    result = classify_series(header, RULES)
    assert result.roles == ()
    assert result.decision == "excluded"
    assert result.label in ("field map", "phase, real or imaginary image (not magnitude)")
    if "P" not in header.attributes["ImageType"]:  # type: ignore[operator]
        assert result.label == "field map"


@pytest.mark.parametrize(
    "header",
    [
        # Siemens PASL: an EPI with the BOLD sequence name *epfid2d1_64.
        series("ep2d_pasl", tr=2500, repeats=50, SequenceName="*epfid2d1_64"),
        series("ep2d_pasl", tr=2500, SequenceName="*epfid2d1_64", ScanningSequence="EP"),
        series("tgse_pcasl_3d", echoes=(16.0,), tr=4600, SequenceName="*tgse3d1_2304"),
        series("AX 3D", echoes=(16.0,), tr=4600, image_type=("ORIGINAL", "PRIMARY", "ASL")),
        series("relCBF", image_type=("DERIVED", "PRIMARY", "PERFUSION", "RELCBF")),
        series("ep2d_pasl_M0", tr=5000),
        series("3D", echoes=(16.0,), tr=4600, AcquisitionContrast="PERFUSION"),
    ],
    ids=["pasl-4d", "pasl-epfid", "pcasl", "image-type", "relcbf", "m0", "acq-contrast"],
)
def test_asl_is_not_bold_and_not_structural(header: DicomSeries) -> None:
    result = classify_series(header, RULES)
    assert result.roles == ()
    assert result.label == "arterial spin labelling (ASL) or perfusion"
    assert "BOLD" not in result.reason


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (series("T1_SE_AX", SOPClassUID="1.2.840.10008.5.1.4.1.1.7"), "secondary capture"),
        (
            series("T1_SE_AX", SOPClassUID="1.2.840.10008.5.1.4.1.1.7.4"),
            "secondary capture (from SOP class",
        ),
        (series("T1_SE_AX", image_type=("ORIGINAL", "SECONDARY")), "secondary capture"),
        (series("T1_SE_AX", image_type=("ORIGINAL", "PRIMARY", "P", "ND")), "phase"),
        (series("AX 3D", AcquisitionContrast="DIFFUSION"), "diffusion"),
        (series("AX", image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "TRACEW")), "diffusion"),
        (series("MoCoSeries", tr=2000), "functional MRI (BOLD)"),
        (series("AX", image_type=("ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC")), "mosaic"),
        (series("t1_mprage_sag_MPR_tra", image_type=("DERIVED", "PRIMARY", "MPR")), "derived"),
    ],
    ids=[
        "sc",
        "sc-multiframe",
        "image-type-secondary",
        "phase",
        "acq-contrast-diffusion",
        "tracew",
        "moco",
        "mosaic",
        "mpr",
    ],
)
def test_non_structural_series_are_recognised_from_their_attributes(
    header: DicomSeries, why: str
) -> None:
    result = classify_series(header, RULES)
    assert (result.roles, result.decision) == ((), "excluded")
    assert why in result.reason


def test_the_mapping_overrides_the_rules() -> None:
    assert classify_series(series("T1_SE_AX"), RULES, override="T1w_gad").roles == ("T1w_gad",)
    assert classify_series(series("T1_SE_AX"), RULES, override=SKIP).reason == (
        "skipped by the mapping file"
    )
    # The user's word on one series wins over the skip rules too.
    fmap = series("gre_field_mapping", **FIELD_MAP_TIMING)  # type: ignore[arg-type]
    assert classify_series(fmap, RULES, override="T1w").roles == ("T1w",)
    refused = classify_series(series("T1_SE_AX"), RULES, override=DUAL_ECHO)
    assert not refused.converted
    assert "needs 2 echo time(s), but the series has 1" in refused.reason


ND = ("ORIGINAL", "PRIMARY", "M", "ND", "NORM")
DIS2D = ("ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D")


def _numbered(
    number: int,
    description: str,
    image_type: tuple[str, ...],
    *,
    tr: float = 550.0,
    **changes: str,
) -> DicomSeries:
    """A T1 header with its own SeriesNumber and UID (``changes``: patient_id, study_uid)."""
    header = series(description, image_type=image_type, tr=tr, SeriesNumber=number)
    return dataclasses.replace(header, series_uid=f"1.2.3.{number}", **changes)


def test_uncorrected_copies_pair_with_the_nearest_corrected_series_of_their_session() -> None:
    plain = ("ORIGINAL", "PRIMARY", "M")
    headers = [
        _numbered(3, "t1_se_tra", ND),  # saved twice, and repeated: 3/4 and 7/8 are copies
        _numbered(4, "t1_se_tra", DIS2D),
        _numbered(7, "t1_se_tra", ND),
        _numbered(8, "t1_se_tra", DIS2D),
        _numbered(10, "T1 SE", ND),  # its corrected copy is in another study
        _numbered(11, "T1 SE", DIS2D, study_uid="9.9"),
        _numbered(12, "T1 SE 2", ND),  # the other has other timing: another acquisition
        _numbered(13, "T1 SE 2", DIS2D, tr=600.0),
        _numbered(14, "T1 AX", ND),  # both uncorrected: no corrected partner
        _numbered(15, "T1 AX", ND),
        _numbered(16, "T1 SAG", ND),  # same description, no DIS2D/DIS3D: not a copy
        _numbered(17, "T1 SAG", plain),
        _numbered(20, "T1 COR_ND", ND),  # given its role by SeriesInstanceUID
        _numbered(21, "T1 COR", DIS2D),
        _numbered(22, "T1 TRA_ND", ND),  # the descriptions tell them apart
        _numbered(23, "T1 TRA", plain),
    ]
    classified = [(h, classify_series(h, RULES)) for h in headers]
    assert all(c.roles == ("T1w",) for _, c in classified)

    result = skip_uncorrected_copies(classified, RULES, keep={"1.2.3.20"})

    skipped = {
        h.series_number: c.reason for h, c in zip(headers, result, strict=True) if not c.converted
    }
    tail = "; the distortion-corrected series is converted"
    assert skipped == {
        3: "uncorrected copy (ImageType ND) of series 4 't1_se_tra'" + tail,
        7: "uncorrected copy (ImageType ND) of series 8 't1_se_tra'" + tail,
        22: "uncorrected copy (ImageType ND) of series 23 'T1 TRA'" + tail,
    }
    assert {(c.decision, c.label) for c in result if not c.converted} == {
        ("copy", "uncorrected copy of a distortion-corrected series")
    }


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
    bad.write_text(
        shipped.replace(
            "attributes: {AcquisitionContrast: '^(PERFUSION)$'}",
            "attributes: {PatientWeight: '.'}",
        )
    )
    with pytest.raises(ProtocolError, match=r"skip\[2\]\.attributes: PatientWeight not read"):
        load_heuristics(bad)
