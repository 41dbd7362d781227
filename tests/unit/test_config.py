"""Protocol files: shipped ones load, and every kind of bad input is rejected clearly."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mriproc.config import (
    Protocol,
    ProtocolError,
    available_protocols,
    load_protocol,
    load_registration_preset,
    protocol_from_mapping,
    resolve_protocol_path,
)


@pytest.fixture
def esims_data() -> dict[str, Any]:
    path = resolve_protocol_path("esims")
    return yaml.safe_load(path.read_text())


def write(tmp_path: Path, data: Any, name: str = "proto.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_protocols_are_found_by_name() -> None:
    assert available_protocols() == ["esims", "flair"]
    for name in available_protocols():
        protocol = load_protocol(name)
        assert protocol.name == name
        assert protocol.reading_space in protocol.contrasts
        assert Path(protocol.source).name == f"{name}.yaml"


def test_protocol_is_frozen() -> None:
    protocol = load_protocol("esims")
    with pytest.raises(dataclasses.FrozenInstanceError):
        protocol.reading_space = "PDw"  # type: ignore[misc]


def test_esims_matches_the_spec_defaults() -> None:
    p = load_protocol("esims")
    assert set(p.contrasts) == {"PDw", "T2w", "T1w", "T1w_gad"}
    assert p.contrasts["T1w_gad"].suffix == "T1w" and p.contrasts["T1w_gad"].ce == "gadolinium"
    assert p.reading_space == "T2w"
    assert p.dual_echo == ("PDw", "T2w")
    assert p.visits.months == {"M00": 0, "M12": 12, "M24": 24}
    assert p.labelling.connectivity == 26
    assert p.labelling.min_in_plane_diameter_mm == 3.0
    assert p.t2_lesions.channels == ("PDw", "T2w")
    assert p.black_holes.exclude_enhancing is True
    assert p.cel.min_voxels == 2  # 1-voxel foci excluded
    assert set(p.cel.exclude_structures) == {"vessels", "dural_sinuses", "choroid_plexus"}
    assert p.cel.require_t2_correspondence is True
    assert p.new_enlarging.new_max_overlap_voxels == 0
    assert p.new_enlarging.small_lesion_max_area_cm2 == 0.67
    assert p.new_enlarging.small_lesion_min_growth_pct == 45.0
    assert p.new_enlarging.large_lesion_min_growth_pct == 24.0
    assert p.active_scan.min_cel == 1 and p.active_scan.min_new_or_enlarging == 1
    assert p.pcf.slab_thickness_mm == 20.0
    assert set(p.pcf.parenchyma_classes) == {"GM", "WM", "lesion"}
    assert p.pbvc.method in ("jacobian", "boundary_shift")


def test_flair_reads_in_flair_space() -> None:
    p = load_protocol("flair")
    assert p.reading_space == "FLAIR"
    assert p.t2_lesions.channels[0] == "FLAIR"
    assert p.dual_echo == ()


def test_load_by_path(tmp_path: Path, esims_data: dict[str, Any]) -> None:
    esims_data["name"] = "mysite"
    protocol = load_protocol(write(tmp_path, esims_data))
    assert isinstance(protocol, Protocol)
    assert protocol.name == "mysite"


def test_unknown_name_lists_shipped_protocols() -> None:
    with pytest.raises(ProtocolError, match=r"nosuch: no such protocol file.*esims, flair"):
        load_protocol("nosuch")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour="red"), r"colour: unknown key"),
        (lambda d: d["labelling"].update(conectivity=6), r"labelling\.conectivity: unknown key"),
        (lambda d: d["labelling"].pop("connectivity"), r"labelling\.connectivity: required key"),
        (lambda d: d.pop("pcf"), r"pcf: required key is missing"),
        (
            lambda d: d["labelling"].update(connectivity=8),
            r"labelling\.connectivity: expected one of 6, 18, 26",
        ),
        (
            lambda d: d["labelling"].update(connectivity=True),
            r"labelling\.connectivity: expected one of",
        ),
        (lambda d: d["cel"].update(min_voxels="two"), r"cel\.min_voxels: expected an integer"),
        (lambda d: d["cel"].update(min_voxels=0), r"cel\.min_voxels: 0 is out of range"),
        (lambda d: d["cel"].update(require_t2_correspondence="yes"), r"expected true or false"),
        (
            lambda d: d["pcf"].update(slab_thickness_mm=-5),
            r"pcf\.slab_thickness_mm: -5\.0 is out of range",
        ),
        (lambda d: d["pcf"].update(slab_thickness_mm=float("nan")), r"expected a finite number"),
        (lambda d: d["t2_lesions"].update(channels=[]), r"t2_lesions\.channels: needs at least 1"),
        (
            lambda d: d["t2_lesions"].update(channels="PDw"),
            r"t2_lesions\.channels: expected a list",
        ),
        (
            lambda d: d["t2_lesions"].update(channels=["PDw", "DWI"]),
            r"t2_lesions\.channels: 'DWI' is not a contrast",
        ),
        (lambda d: d.update(reading_space="FLAIR"), r"reading_space: 'FLAIR' is not a contrast"),
        (
            lambda d: d["contrasts"].update(PDw={"suffix": "PD"}),
            r"contrasts\.PDw\.suffix: expected one of",
        ),
        (
            lambda d: d["contrasts"].update(T2w={"suffix": "PDw"}),
            r"contrasts: two roles have the same",
        ),
        (lambda d: d["visits"].update(baseline="M06"), r"visits\.baseline: 'M06' is not a session"),
        (
            lambda d: d["visits"]["months"].update(M00=3),
            r"visits\.months: the baseline 'M00' must be month 0",
        ),
        (lambda d: d.update(dual_echo=["PDw"]), r"dual_echo: names the two echoes"),
        (
            lambda d: d["pbvc"].update(method="siena"),
            r"pbvc\.method: expected one of 'jacobian', 'boundary_shift'",
        ),
        (lambda d: d.update(source="x"), r"source: unknown key"),
        (lambda d: d["pcf"].update(min_channels=3), r"pcf\.min_channels: is more than the 2"),
        (lambda d: d["cel"].update(requires=["T1w_gad"]), r"cel\.requires: names the pre-"),
        (lambda d: d["black_holes"].update(requires=[]), r"black_holes\.requires: names the one"),
        (
            lambda d: d["pcf"].update(channels=["PDw"], min_channels=1),
            r"pcf\.channels: must include the reading space 'T2w'",
        ),
        (
            lambda d: d["registration"].update(min_icv_ml=3000.0),
            r"registration\.min_icv_ml: must be less than registration\.max_icv_ml",
        ),
        (lambda d: d["registration"].pop("max_icv_ml"), r"registration\.max_icv_ml: required"),
        (
            lambda d: d["registration"].update(preset="slow"),
            r"registration\.preset: .*no registration preset 'slow' \(have precise, fast\)",
        ),
        (
            lambda d: d["registration"].update(preset={"metric": "mattes"}),
            r"registration\.preset\.histogram_bins: required key is missing",
        ),
        (
            lambda d: d["plausibility"].update(t2_lesion_volume_jump_ratio=0.5),
            r"plausibility\.t2_lesion_volume_jump_ratio: 0\.5 is out of range",
        ),
    ],
)
def test_bad_protocols_name_file_key_and_problem(
    tmp_path: Path, esims_data: dict[str, Any], edit: Any, message: str
) -> None:
    data = copy.deepcopy(esims_data)
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(ProtocolError, match=message) as info:
        load_protocol(path)
    assert str(info.value).startswith(str(path))


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProtocolError, match=r"bad\.yaml: not valid YAML"):
        load_protocol(bad)
    listy = write(tmp_path, ["a", "b"], "list.yaml")
    with pytest.raises(ProtocolError, match=r"list\.yaml: the protocol must be a mapping"):
        load_protocol(listy)


def test_protocol_from_mapping_keeps_source(esims_data: dict[str, Any]) -> None:
    protocol = protocol_from_mapping(esims_data, source="inline")
    assert protocol.source == "inline"
    assert dataclasses.asdict(protocol)["labelling"] == {
        "connectivity": 26,
        "min_in_plane_diameter_mm": 3.0,
    }


@pytest.mark.parametrize("name", ["esims", "flair"])
def test_a_protocol_travels_as_plain_data_and_comes_back_the_same(name: str) -> None:
    """What a node receives (JSON types, preset written out) rebuilds the protocol."""
    protocol = load_protocol(name)
    data = json.loads(json.dumps(protocol.to_mapping()))
    assert protocol_from_mapping(data, source=protocol.source) == protocol
    assert data["registration"]["preset"]["name"] == protocol.registration.preset.name


def test_the_registration_preset_is_resolved_on_loading(
    tmp_path: Path, esims_data: dict[str, Any]
) -> None:
    named = load_protocol("esims").registration.preset
    assert named == load_registration_preset("precise")
    # A preset written out in the protocol file itself (a site's own schedule).
    data = copy.deepcopy(esims_data)
    data["registration"]["preset"] = {
        **dataclasses.asdict(named),
        "name": "site_a",
        "sampling_rate": 0.1,
    }
    inline = load_protocol(write(tmp_path, data)).registration.preset
    assert (inline.name, inline.sampling_rate, inline.iterations) == (
        "site_a",
        0.1,
        named.iterations,
    )
    data["registration"]["preset"]["iterations"] = [10]
    with pytest.raises(ProtocolError, match=r"registration\.preset: .* one entry per level"):
        load_protocol(write(tmp_path, data))


def test_required_contrasts_follow_the_protocol() -> None:
    esims = load_protocol("esims")
    assert esims.required_contrasts("t2_lesions") == ("PDw", "T2w")
    assert esims.required_contrasts("black_holes") == ("T1w", "PDw", "T2w")
    # The tissue model is fitted on the channels a visit has: PCF needs the reading space.
    assert esims.required_contrasts("pcf") == ("T2w",)
    flair = load_protocol("flair")
    assert flair.required_contrasts("cel") == ("T1w", "T1w_gad", "FLAIR")
    no_correspondence = dataclasses.replace(
        esims, cel=dataclasses.replace(esims.cel, require_t2_correspondence=False)
    )
    # Every endpoint needs the reading space: no visit is processed without it.
    assert no_correspondence.required_contrasts("cel") == ("T1w", "T1w_gad", "T2w")
