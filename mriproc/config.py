"""Imaging protocols: typed, frozen configuration loaded from ``pipelines/*.yaml``.

A protocol file names the contrasts of an imaging protocol, its reading space, its
visit schedule and every parameter of every endpoint.  :func:`load_protocol` turns
it into a frozen :class:`Protocol`, rejecting unknown keys, wrong types,
out-of-range values and missing fields with a message that names the file, the key
and the problem.  Nothing in mriproc has an endpoint default of its own: the
protocol file is the single place where such numbers live.

>>> protocol = load_protocol("esims")
>>> protocol.reading_space, protocol.labelling.connectivity
('T2w', 26)
>>> protocol.required_contrasts("cel")
('T1w', 'T1w_gad', 'PDw', 'T2w')
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from mriproc.endpoints import EndpointGroup

__all__ = [
    "ActiveScanParams",
    "BlackHoleParams",
    "CelParams",
    "ContrastSpec",
    "LabellingParams",
    "NewEnlargingParams",
    "PbvcParams",
    "PcfParams",
    "Protocol",
    "ProtocolError",
    "RegistrationParams",
    "RegistrationPreset",
    "T2LesionParams",
    "VisitSchedule",
    "available_protocols",
    "config_from_mapping",
    "load_protocol",
    "load_registration_preset",
    "read_yaml",
    "resolve_protocol_path",
]

_Config = typing.TypeVar("_Config")

TissueClass = Literal["GM", "WM", "CSF", "lesion"]
ExcludedStructure = Literal["vessels", "dural_sinuses", "choroid_plexus"]


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message names file, key and problem."""


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, float | None]:
    return {"min": lo, "max": hi}


@dataclass(frozen=True, slots=True)
class ContrastSpec:
    """How one contrast role is found in a BIDS dataset."""

    suffix: Literal["PDw", "T2w", "T1w", "FLAIR"]
    ce: str | None = None


@dataclass(frozen=True, slots=True)
class VisitSchedule:
    """Session labels of the protocol's visits and their months since baseline."""

    baseline: str
    months: dict[str, float]


@dataclass(frozen=True, slots=True)
class RegistrationParams:
    """Which named registration preset the runs use, and the co-registration quality check."""

    preset: Literal["precise", "fast"]
    # Normalized mutual information (1 = unrelated, 2 = identical) of a co-registered
    # contrast with its fixed image over the head: below it, the contrast is refused.
    min_nmi: float = field(metadata=_range(1.0, 2.0))


@dataclass(frozen=True, slots=True)
class LabellingParams:
    """What "a lesion" is: connectivity of components and their minimum size."""

    connectivity: Literal[6, 18, 26]
    min_in_plane_diameter_mm: float = field(metadata=_range(0.0, 50.0))


@dataclass(frozen=True, slots=True)
class T2LesionParams:
    """T2-hyperintense lesion segmentation."""

    channels: tuple[str, ...] = field(metadata={"min_len": 1})
    white_matter_margin_mm: float = field(metadata=_range(0.0, 20.0))
    wm_prior_min: float = field(metadata=_range(0.0, 1.0))  # template WM: where seeds may be
    nawm_min_wm_fraction: float = field(metadata=_range(0.5, 1.0))
    gm_min_fraction: float = field(metadata=_range(0.5, 1.0))
    seed_z: float = field(metadata=_range(0.0, 50.0))
    channel_min_z: float = field(metadata=_range(-10.0, 50.0))
    min_lesion_fraction: float = field(metadata=_range(0.0, 1.0))
    grow_mm: float = field(metadata=_range(0.0, 20.0))
    local_ring_mm: tuple[float, float]


@dataclass(frozen=True, slots=True)
class BlackHoleParams:
    """T1 black holes: T2 lesions hypointense on pre-contrast T1."""

    requires: tuple[str, ...]
    threshold_reference: Literal["cortical_gm_mean"]
    exclude_enhancing: bool
    gm_min_fraction: float = field(metadata=_range(0.5, 1.0))  # grey matter: the reference
    cortical_depth_mm: float = field(metadata=_range(1.0, 50.0))  # cortex: near the surface
    rim_mm: float = field(metadata=_range(0.0, 10.0))  # lesion rim left out (partial volume)


@dataclass(frozen=True, slots=True)
class CelParams:
    """Contrast-enhancing lesions."""

    requires: tuple[str, ...]
    min_voxels: int = field(metadata=_range(1, 1000))
    exclude_structures: tuple[ExcludedStructure, ...]
    require_t2_correspondence: bool
    seed_z: float = field(metadata=_range(0.0, 100.0))
    grow_z: float = field(metadata=_range(0.0, 100.0))
    surface_margin_mm: float = field(metadata=_range(0.0, 30.0))
    csf_prior_max: float = field(metadata=_range(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class NewEnlargingParams:
    """New and enlarging T2 lesions between two visits."""

    new_max_overlap_voxels: int = field(metadata=_range(0, 1000))
    small_lesion_max_area_cm2: float = field(metadata=_range(0.0, 100.0))
    small_lesion_min_growth_pct: float = field(metadata=_range(0.0, 1000.0))
    large_lesion_min_growth_pct: float = field(metadata=_range(0.0, 1000.0))
    # A lesion found only at the later visit is new when the earlier image's lesion
    # signal at its place is below this fraction of the later one (else the earlier
    # segmentation missed it, and it is compared by size like any other).
    new_max_earlier_fraction: float = field(metadata=_range(0.0, 1.0))


@dataclass(frozen=True, slots=True)
class ActiveScanParams:
    """A scan is active with at least this many CEL or new/enlarging lesions."""

    min_cel: int = field(metadata=_range(1, 1000))
    min_new_or_enlarging: int = field(metadata=_range(1, 1000))


@dataclass(frozen=True, slots=True)
class PcfParams:
    """Partial cerebral fraction over an axial slab defined in MNI152 space."""

    slab_inferior_mni_z_mm: float = field(metadata=_range(-72.0, 110.0))
    slab_thickness_mm: float = field(metadata=_range(1.0, 180.0))
    parenchyma_classes: tuple[TissueClass, ...] = field(metadata={"min_len": 1})
    channels: tuple[str, ...] = field(metadata={"min_len": 1})  # unmixed into tissue fractions
    # PCF, BPF and the brain-volume changes need a tissue model from at least this
    # many of the channels (the lesion stage uses the model whatever it has).
    min_channels: int = field(metadata=_range(1, 10))
    parenchyma_margin_mm: float = field(metadata=_range(0.0, 10.0))  # beyond the brain mask
    csf_margin_mm: float = field(metadata=_range(0.0, 20.0))  # beyond the intracranial mask
    skull_edge_depth_mm: float = field(metadata=_range(0.0, 20.0))  # bone partial volume
    brain_envelope_closing_mm: float = field(metadata=_range(0.0, 30.0))  # bridges sulci


@dataclass(frozen=True, slots=True)
class PbvcParams:
    """Registration-based percentage brain volume change (:mod:`mriproc.atrophy`)."""

    method: Literal["jacobian", "boundary_shift"]
    # Boundary shift: the brain surface and which of its vertices are measured.
    surface_smoothing_mm: float = field(metadata=_range(0.0, 5.0))
    thick_slice_ratio: float = field(metadata=_range(1.0, 20.0))
    max_normal_tilt_deg: float = field(metadata=_range(0.0, 90.0))
    # Profiles along the normals and the search for the edge's displacement.
    profile_half_length_mm: float = field(metadata=_range(0.5, 20.0))
    profile_step_mm: float = field(metadata=_range(0.05, 2.0))
    profile_window_mm: float = field(metadata=_range(0.2, 20.0))
    profile_smoothing_mm: float = field(metadata=_range(0.0, 5.0))
    search_mm: float = field(metadata=_range(0.1, 10.0))
    min_profile_correlation: float = field(metadata=_range(-1.0, 1.0))
    # Self-calibration: the image against a copy scaled by this much (linear, %).
    calibration_scale_pct: float = field(metadata=_range(0.1, 10.0))
    # A value is n/a (with the reason) when fewer edge points than this could be
    # measured in either direction, when the calibration found the scaled copy's
    # edges moved by a gain outside these limits, or when the forward and backward
    # runs disagree by more than this many percentage points.
    min_edge_points: int = field(metadata=_range(1, 10_000_000))
    min_calibration_gain: float = field(metadata=_range(0.0, 10.0))
    max_calibration_gain: float = field(metadata=_range(0.0, 10.0))
    max_direction_difference_pct: float = field(metadata=_range(0.0, 100.0))


@dataclass(frozen=True, slots=True)
class PlausibilityParams:
    """Bounds beyond which a value is kept but flagged for review (:mod:`mriproc.plausibility`)."""

    # Brain-volume change from baseline (PBVC, PCF change, in %): a loss beyond
    # allowance + per_year x years, or a gain beyond the allowance alone.
    brain_change_allowance_pct: float = field(metadata=_range(0.0, 100.0))
    brain_loss_per_year_pct: float = field(metadata=_range(0.0, 100.0))
    # T2 lesion volume between consecutive visits: a change of at least this many mL
    # that is also at least this ratio (larger / smaller volume).
    t2_lesion_volume_jump_ml: float = field(metadata=_range(0.0, 10_000.0))
    t2_lesion_volume_jump_ratio: float = field(metadata=_range(1.0, 1000.0))


@dataclass(frozen=True, slots=True)
class RegistrationPreset:
    """antsRegistration and N4 parameters (``pipelines/presets/registration.yaml``)."""

    metric: Literal["mattes", "GC", "meansquares"]
    histogram_bins: int = field(metadata=_range(8, 256))
    sampling_rate: float = field(metadata=_range(0.01, 1.0))
    iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    shrink_factors: tuple[int, ...] = field(metadata={"min_len": 1})
    smoothing_sigmas: tuple[float, ...] = field(metadata={"min_len": 1})
    syn_metric: Literal["mattes", "CC", "meansquares"]
    syn_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    syn_gradient_step: float = field(metadata=_range(0.01, 1.0))
    syn_flow_sigma: float = field(metadata=_range(0.0, 10.0))
    syn_total_sigma: float = field(metadata=_range(0.0, 10.0))
    n4_shrink_factor: int = field(metadata=_range(1, 8))
    n4_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    template_voxel_mm: float = field(metadata=_range(0.5, 4.0))
    # Affine stage of the template fit (per level, like ``iterations``); SyN follows.
    template_affine_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    # Longitudinal SyN (Jacobian-integration PBVC) between two visits in their halfway
    # space, resampled to isotropic voxels of ``jacobian_voxel_mm``.
    jacobian_voxel_mm: float = field(metadata=_range(0.5, 4.0))
    jacobian_syn_metric: Literal["mattes", "CC", "meansquares"]
    jacobian_syn_sampling: int = field(metadata=_range(1, 256))  # CC radius or MI bins
    jacobian_syn_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    name: str = field(default="", metadata={"yaml": False})  # its key in the file


def load_registration_preset(name: str) -> RegistrationPreset:
    """A named registration preset (``precise`` or ``fast``).

    >>> load_registration_preset("fast").shrink_factors
    (4, 2, 1)
    """
    path = Path(str(resources.files(_PROTOCOL_PACKAGE).joinpath("presets", "registration.yaml")))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if name not in data:
        raise ProtocolError(f"{path}: no registration preset {name!r} (have {', '.join(data)})")
    entry = data[name]
    if not isinstance(entry, Mapping):
        raise ProtocolError(f"{path}: {name}: expected a mapping")
    preset: RegistrationPreset = _build(
        RegistrationPreset, entry, source=str(path), where=f"{name}."
    )
    levels = {len(preset.iterations), len(preset.shrink_factors), len(preset.smoothing_sigmas)}
    if len(levels) != 1:
        raise ProtocolError(
            f"{path}: {name}: iterations, shrink_factors and smoothing_sigmas "
            "need one entry per level"
        )
    return dataclasses.replace(preset, name=name)


@dataclass(frozen=True, slots=True)
class Protocol:
    """One imaging protocol: contrasts, reading space, visits, endpoint parameters."""

    name: str
    description: str
    contrasts: dict[str, ContrastSpec]
    reading_space: str
    dual_echo: tuple[str, ...]
    geometry_tolerance_mm: float = field(metadata=_range(0.0, 1.0))
    visits: VisitSchedule
    registration: RegistrationParams
    labelling: LabellingParams
    t2_lesions: T2LesionParams
    black_holes: BlackHoleParams
    cel: CelParams
    new_enlarging: NewEnlargingParams
    active_scan: ActiveScanParams
    pcf: PcfParams
    pbvc: PbvcParams
    plausibility: PlausibilityParams
    source: str = field(default="", metadata={"yaml": False})  # the file it was read from

    def required_contrasts(self, group: EndpointGroup) -> tuple[str, ...]:
        """Contrast roles that an endpoint group needs in a session, in a stable order."""
        lesion_channels = self.t2_lesions.channels
        needs: tuple[str, ...]
        if group in ("t2_lesions", "new_enlarging"):
            needs = lesion_channels
        elif group == "black_holes":
            needs = self.black_holes.requires + lesion_channels
        elif group == "cel":
            needs = self.cel.requires
            if self.cel.require_t2_correspondence:
                needs += lesion_channels
        elif group == "active_scan":
            needs = self.cel.requires + lesion_channels
        elif group in ("pcf", "pbvc"):
            # The tissue model is fitted on the pcf.channels a session has; the
            # reading space is one of them (checked on loading).
            needs = ()
        else:  # pragma: no cover - Literal exhausts the cases
            raise ValueError(f"unknown endpoint group {group!r}")
        # No visit is processed without its reading-space image.
        return tuple(dict.fromkeys((*needs, self.reading_space)))

    def tissue_model_lacks(
        self, present: Collection[str], refused: Collection[str] = ()
    ) -> str | None:
        """Why a visit whose usable contrasts are ``present`` gets no PCF/BPF (None: it does).

        ``refused``: contrasts the visit had but the co-registration check refused.

        >>> load_protocol("flair").tissue_model_lacks(["FLAIR", "T1w_gad"], ["T1w"])
        'needs T2w (missing), T1w (refused by the co-registration check): at least 2 of FLAIR, T2w, T1w for the tissue model'
        """  # noqa: E501
        used = [role for role in self.pcf.channels if role in present]
        if len(used) >= self.pcf.min_channels:
            return None
        lacking = ", ".join(
            f"{r} ({'refused by the co-registration check' if r in refused else 'missing'})"
            for r in self.pcf.channels
            if r not in present
        )
        return (
            f"needs {lacking}: at least {self.pcf.min_channels} of "
            f"{', '.join(self.pcf.channels)} for the tissue model"
        )

    def compared_contrasts(self, group: EndpointGroup) -> tuple[str, ...]:
        """Contrast roles an endpoint group needs in the visit it is compared with.

        Active scans compare only lesions between visits: CEL are counted at the
        visit itself.
        """
        return self.required_contrasts("new_enlarging" if group == "active_scan" else group)


# --------------------------------------------------------------------------- loading

_PROTOCOL_PACKAGE = "mriproc.pipelines"


def available_protocols() -> list[str]:
    """Names of the protocols shipped with mriproc.

    >>> available_protocols()
    ['esims', 'flair']
    """
    root = resources.files(_PROTOCOL_PACKAGE)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_protocol_path(name_or_path: str | Path) -> Path:
    """A shipped protocol's file by name (``esims``), or an existing YAML file by path."""
    text = str(name_or_path)
    if text in available_protocols():
        return Path(str(resources.files(_PROTOCOL_PACKAGE).joinpath(f"{text}.yaml")))
    path = Path(text)
    if path.is_file():
        return path.resolve()  # nodes load it again from their own working directory
    raise ProtocolError(
        f"{text}: no such protocol file, and not one of the shipped protocols "
        f"({', '.join(available_protocols())})"
    )


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML configuration file; unreadable or invalid files raise ProtocolError."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ProtocolError(f"{path}: cannot read {what} file: {err}") from err
    except yaml.YAMLError as err:
        raise ProtocolError(f"{path}: not valid YAML: {err}") from err


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load and validate a protocol by shipped name or by path."""
    path = resolve_protocol_path(name_or_path)
    return protocol_from_mapping(read_yaml(path, "protocol"), source=str(path))


def protocol_from_mapping(data: object, *, source: str) -> Protocol:
    """Build a :class:`Protocol` from parsed YAML, validating every key."""
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{source}: the protocol must be a mapping of keys, got {_kind(data)}")
    protocol: Protocol = _build(Protocol, data, source=source, where="")
    protocol = dataclasses.replace(protocol, source=source)
    _check_cross_references(protocol)
    return protocol


def config_from_mapping(cls: type[_Config], data: object, *, source: str) -> _Config:
    """Build the frozen dataclass ``cls`` from parsed YAML, checking keys, types and ranges.

    The same rules as for protocol files (used for other configuration shipped in
    ``pipelines/``, e.g. the DICOM heuristics): unknown keys, missing keys, wrong
    types and out-of-range values raise :class:`ProtocolError` naming ``source``.
    """
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{source}: expected a mapping of keys, got {_kind(data)}")
    built: _Config = _build(cls, data, source=source, where="")
    return built


def _check_cross_references(p: Protocol) -> None:
    def fail(key: str, problem: str) -> typing.NoReturn:
        raise ProtocolError(f"{p.source}: {key}: {problem}")

    roles = set(p.contrasts)
    known = f"(contrasts are {', '.join(sorted(roles))})"
    if not roles:
        fail("contrasts", "at least one contrast is required")
    role_lists: dict[str, tuple[str, ...]] = {
        "reading_space": (p.reading_space,),
        "dual_echo": p.dual_echo,
        "t2_lesions.channels": p.t2_lesions.channels,
        "black_holes.requires": p.black_holes.requires,
        "cel.requires": p.cel.requires,
        "pcf.channels": p.pcf.channels,
    }
    for key, used in role_lists.items():
        for role in used:
            if role not in roles:
                fail(key, f"{role!r} is not a contrast of this protocol {known}")
    if len(p.cel.requires) != 2:
        fail("cel.requires", "names the pre- and the post-contrast T1w roles, in that order")
    if len(p.black_holes.requires) != 1:
        fail("black_holes.requires", "names the one pre-contrast T1w role")
    if p.pcf.min_channels > len(p.pcf.channels):
        fail("pcf.min_channels", f"is more than the {len(p.pcf.channels)} pcf.channels")
    if p.reading_space not in p.pcf.channels:
        fail(
            "pcf.channels",
            f"must include the reading space {p.reading_space!r}: the tissue model of a "
            "visit is fitted on the channels it has, and every processed visit has that one",
        )
    if p.dual_echo and len(p.dual_echo) != 2:
        fail("dual_echo", f"names the two echoes of one series, got {len(p.dual_echo)}")
    entities = [(spec.suffix, spec.ce) for spec in p.contrasts.values()]
    if len(set(entities)) != len(entities):
        fail("contrasts", "two roles have the same suffix and ce- entity")
    if p.visits.baseline not in p.visits.months:
        fail("visits.baseline", f"{p.visits.baseline!r} is not a session of visits.months")
    if p.visits.months[p.visits.baseline] != 0:
        fail("visits.months", f"the baseline {p.visits.baseline!r} must be month 0")
    if "lesion" in p.pcf.parenchyma_classes and "CSF" in p.pcf.parenchyma_classes:
        fail("pcf.parenchyma_classes", "CSF is not parenchyma")


def _kind(value: object) -> str:
    return type(value).__name__ if value is not None else "nothing (null)"


def _build(cls: type[Any], data: Mapping[Any, Any], *, source: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    # Fields marked yaml=False (where a value was read from) are not keys of the file.
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
    for key in data:
        if key not in fields:
            raise ProtocolError(
                f"{source}: {where}{key}: unknown key (known: {', '.join(sorted(fields))})"
            )
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        key = f"{where}{name}"
        if name not in data:
            has_default = spec.default is not dataclasses.MISSING
            if has_default:
                continue
            raise ProtocolError(f"{source}: {key}: required key is missing")
        value = _convert(hints[name], data[name], source=source, key=key)
        _check_limits(spec.metadata, value, source=source, key=key)
        values[name] = value
    return cls(**values)


def _check_limits(meta: Mapping[str, Any], value: Any, *, source: str, key: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ProtocolError(f"{source}: {key}: {value!r} is out of range [{lo}, {hi}]")
    min_len = meta.get("min_len")
    if min_len is not None and len(value) < min_len:
        raise ProtocolError(f"{source}: {key}: needs at least {min_len} item(s)")


def _convert(hint: Any, value: Any, *, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)

    def wrong(expected: str) -> ProtocolError:
        return ProtocolError(
            f"{source}: {key}: expected {expected}, got {value!r} ({_kind(value)})"
        )

    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise wrong("a mapping")
        return _build(typing.cast(type[Any], hint), value, source=source, where=f"{key}.")
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _convert(inner, value, source=source, key=key)
    if origin is Literal:
        # bool is an int in Python; a YAML `true` must not pass for 1.
        if isinstance(value, bool) or value not in args:
            raise wrong("one of " + ", ".join(repr(a) for a in args))
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise wrong("a list")
        return tuple(
            _convert(args[0], item, source=source, key=f"{key}[{i}]")
            for i, item in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise wrong("a mapping")
        return {
            _convert(args[0], k, source=source, key=f"{key}.{k}"): _convert(
                args[1], v, source=source, key=f"{key}.{k}"
            )
            for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        if value != value or value in (float("inf"), float("-inf")):
            raise wrong("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise wrong("a non-empty string")
        return value
    raise TypeError(f"unsupported protocol field type {hint!r} at {key}")  # pragma: no cover
