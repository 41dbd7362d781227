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

from mriproc.endpoints import (
    ActiveScanParams,
    BlackHoleParams,
    CelParams,
    EndpointGroup,
    NewEnlargingParams,
    PbvcParams,
    PcfParams,
    T2LesionParams,
    bounds,
)

__all__ = [
    "ContrastSpec",
    "LabellingParams",
    "Protocol",
    "ProtocolError",
    "RegistrationParams",
    "RegistrationPreset",
    "VisitSchedule",
    "available_protocols",
    "config_from_mapping",
    "load_protocol",
    "load_registration_preset",
    "protocol_from_mapping",
    "read_yaml",
    "resolve_protocol_path",
]

_Config = typing.TypeVar("_Config")


class ProtocolError(ValueError):
    """A protocol file that cannot be used; the message names file, key and problem."""


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
class RegistrationPreset:
    """antsRegistration and N4 parameters (``pipelines/presets/registration.yaml``)."""

    metric: Literal["mattes", "GC", "meansquares"]
    histogram_bins: int = field(metadata=bounds(8, 256))
    sampling_rate: float = field(metadata=bounds(0.01, 1.0))
    iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    shrink_factors: tuple[int, ...] = field(metadata={"min_len": 1})
    smoothing_sigmas: tuple[float, ...] = field(metadata={"min_len": 1})
    syn_metric: Literal["mattes", "CC", "meansquares"]
    syn_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    syn_gradient_step: float = field(metadata=bounds(0.01, 1.0))
    syn_flow_sigma: float = field(metadata=bounds(0.0, 10.0))
    syn_total_sigma: float = field(metadata=bounds(0.0, 10.0))
    n4_shrink_factor: int = field(metadata=bounds(1, 8))
    n4_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    template_voxel_mm: float = field(metadata=bounds(0.5, 4.0))
    # Metric sampling of the rigid registrations: a visit's contrasts onto its reading
    # space, and two visits to each other (halfway); ``sampling_rate`` serves the
    # template fit's affine stage.
    rigid_sampling_rate: float = field(metadata=bounds(0.01, 1.0))
    # Affine stage of the template fit (per level, like ``iterations``); SyN follows.
    template_affine_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    # Longitudinal SyN (Jacobian-integration PBVC) between two visits in their halfway
    # space, resampled to isotropic voxels of ``jacobian_voxel_mm``.
    jacobian_voxel_mm: float = field(metadata=bounds(0.5, 4.0))
    jacobian_syn_metric: Literal["mattes", "CC", "meansquares"]
    jacobian_syn_sampling: int = field(metadata=bounds(1, 256))  # CC radius or MI bins
    jacobian_syn_iterations: tuple[int, ...] = field(metadata={"min_len": 1})
    name: str = "custom"  # its key in the presets file


@dataclass(frozen=True, slots=True)
class RegistrationParams:
    """The registration preset the runs use, and the co-registration quality check."""

    # A preset's name in ``pipelines/presets/registration.yaml`` (resolved when the
    # protocol is loaded: no node reads the presets file), or a mapping of its keys.
    preset: RegistrationPreset
    # Normalized mutual information (1 = unrelated, 2 = identical) of a co-registered
    # contrast with its fixed image over the head: below it, the contrast is refused.
    min_nmi: float = field(metadata=bounds(1.0, 2.0))
    # ``per_visit``: every visit fits the template itself.  ``per_participant``: the
    # baseline fits it and each follow-up carries the baseline's fit through its
    # rigid registration to the baseline (the longitudinal stage's halfway
    # registration, computed first); follow-ups run without their baseline fit their own.
    template_fit: Literal["per_visit", "per_participant"]
    # The template fit's quality check: the intracranial volume it maps into the
    # reading-space image's field of view (mL).  Outside these limits the fit is
    # refused and the visit fails with the figure (an image covering a few slices, a
    # wrong image, a failed fit): no endpoint is measured on it, and no follow-up
    # carries it.
    min_icv_ml: float = field(metadata=bounds(0.0, 5000.0))
    max_icv_ml: float = field(metadata=bounds(0.0, 5000.0))


@dataclass(frozen=True, slots=True)
class LabellingParams:
    """What "a lesion" is: connectivity of components and their minimum size."""

    connectivity: Literal[6, 18, 26]
    min_in_plane_diameter_mm: float = field(metadata=bounds(0.0, 50.0))


@dataclass(frozen=True, slots=True)
class PlausibilityParams:
    """Bounds beyond which a value is kept but flagged for review (:mod:`mriproc.plausibility`)."""

    # Brain-volume change from baseline (PBVC, PCF change, in %): a loss beyond
    # allowance + per_year x years, or a gain beyond the allowance alone.
    brain_change_allowance_pct: float = field(metadata=bounds(0.0, 100.0))
    brain_loss_per_year_pct: float = field(metadata=bounds(0.0, 100.0))
    # T2 lesion volume between consecutive visits: a change of at least this many mL
    # that is also at least this ratio (larger / smaller volume).
    t2_lesion_volume_jump_ml: float = field(metadata=bounds(0.0, 10_000.0))
    t2_lesion_volume_jump_ratio: float = field(metadata=bounds(1.0, 1000.0))


def load_registration_preset(name: str) -> RegistrationPreset:
    """A named registration preset (``precise`` or ``fast``).

    >>> load_registration_preset("fast").shrink_factors
    (4, 2, 1)
    """
    path = Path(str(resources.files(_PROTOCOL_PACKAGE).joinpath("presets", "registration.yaml")))
    data = read_yaml(path, "registration presets")
    if name not in data:
        raise ProtocolError(f"{path}: no registration preset {name!r} (have {', '.join(data)})")
    return _preset_from_mapping({**data[name], "name": name}, source=str(path), where=f"{name}.")


def _preset_from_mapping(data: object, *, source: str, where: str) -> RegistrationPreset:
    if not isinstance(data, Mapping):
        raise ProtocolError(f"{source}: {where.rstrip('.')}: expected a mapping")
    preset: RegistrationPreset = _build(RegistrationPreset, data, source=source, where=where)
    levels = {len(preset.iterations), len(preset.shrink_factors), len(preset.smoothing_sigmas)}
    if len(levels) != 1:
        raise ProtocolError(
            f"{source}: {where.rstrip('.')}: iterations, shrink_factors and smoothing_sigmas "
            "need one entry per level"
        )
    return preset


@dataclass(frozen=True, slots=True)
class Protocol:
    """One imaging protocol: contrasts, reading space, visits, endpoint parameters."""

    name: str
    description: str
    contrasts: dict[str, ContrastSpec]
    reading_space: str
    dual_echo: tuple[str, ...]
    geometry_tolerance_mm: float = field(metadata=bounds(0.0, 1.0))
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

    def to_mapping(self) -> dict[str, Any]:
        """The protocol as plain data, its registration preset written out in full.

        What a workflow hands its nodes (JSON-serializable, so Nipype's cache key is
        the protocol's content): :func:`protocol_from_mapping` rebuilds the same
        protocol from it without reading a file.

        >>> p = load_protocol("esims")
        >>> protocol_from_mapping(p.to_mapping(), source=p.source) == p
        True
        """
        plain: dict[str, Any] = _plain(self)
        return plain

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
    if p.registration.min_icv_ml >= p.registration.max_icv_ml:
        fail("registration.min_icv_ml", "must be less than registration.max_icv_ml")


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


def _plain(value: Any) -> Any:
    """Dataclasses as mappings of their file keys, tuples as lists (YAML/JSON types)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("yaml", True)
        }
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


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

    if hint is RegistrationPreset:
        if isinstance(value, str):
            try:
                return load_registration_preset(value)
            except ProtocolError as err:
                raise ProtocolError(f"{source}: {key}: {err}") from err
        return _preset_from_mapping(value, source=source, where=f"{key}.")
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
