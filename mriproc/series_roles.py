"""Which BIDS contrast a DICOM series is: rules from ``pipelines/dicom/heuristics.yaml``.

:func:`classify_series` gives every series either its roles (``PDw`` and ``T2w`` for
the two echoes of a dual-echo series, else one of ``T1w``, ``T1w_gad``, ``T2w``,
``PDw``, ``FLAIR``) or the reason it is not converted (not MR, a localiser,
diffusion, functional, derived, 4-D, too few slices, an unknown weighting), and in
both cases a one-line explanation for the conversion report.  The rules are data
(:class:`DicomHeuristics`, loaded by :func:`load_heuristics`); the mapping file
overrides them for single series.  :func:`skip_uncorrected_copies` then looks at the
series of a session together: a scanner's copy without distortion correction
(ImageType ND) of a series that is also there corrected is not converted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from mriproc.config import ContrastSpec, ProtocolError, config_from_mapping, read_yaml
from mriproc.io.dicom import ATTRIBUTES, DicomSeries, slice_stack

__all__ = [
    "DUAL_ECHO",
    "SKIP",
    "Classification",
    "Decision",
    "DicomHeuristics",
    "classify_series",
    "load_heuristics",
    "skip_uncorrected_copies",
]

DUAL_ECHO = "PDw_T2w"  # mapping-file role of a dual-echo series (split by echo time)
SKIP = "skip"  # mapping-file role of a series that is not converted


@dataclass(frozen=True, slots=True)
class SkipRule:
    """Series that are not anatomical MRI; any one matching condition is enough."""

    reason: str
    description: str | None = None  # regex on SeriesDescription and ProtocolName
    sequence: str | None = None  # regex on ScanningSequence, SequenceName, PulseSequenceName
    image_type: tuple[str, ...] = ()  # any of these values in ImageType
    image_type_first: tuple[str, ...] = ()  # ImageType's first value is one of these
    sop_class: tuple[str, ...] = ()  # SOPClassUID is one of these or below one (prefix.)
    attributes: dict[str, str] | None = None  # keyword -> regex on its value


@dataclass(frozen=True, slots=True)
class TimingRules:
    """Weighting from echo, repetition and inversion times (ms)."""

    flair_min_inversion_ms: float = field(metadata={"min": 0.0, "max": 10000.0})
    t1_inversion_ms: tuple[float, ...] = field(metadata={"min_len": 2})
    t1_max_echo_ms: float = field(metadata={"min": 0.0, "max": 1000.0})
    t1_max_repetition_ms: float = field(metadata={"min": 0.0, "max": 20000.0})
    t2_min_echo_ms: float = field(metadata={"min": 0.0, "max": 1000.0})
    pd_max_echo_ms: float = field(metadata={"min": 0.0, "max": 1000.0})
    long_repetition_min_ms: float = field(metadata={"min": 0.0, "max": 20000.0})


@dataclass(frozen=True, slots=True)
class UncorrectedCopies:
    """A scanner's copy of a series without distortion correction (Siemens ``ND``).

    Uncorrected: a value of ``image_type`` in ImageType, or a SeriesDescription
    matching ``description`` (the suffix ``_ND``; what it matches is removed before
    descriptions are compared).  Corrected: a value of ``corrected_image_type``
    (``DIS2D``, ``DIS3D``) in ImageType.
    """

    image_type: tuple[str, ...] = field(metadata={"min_len": 1})
    corrected_image_type: tuple[str, ...] = field(metadata={"min_len": 1})
    description: str


@dataclass(frozen=True, slots=True)
class DicomHeuristics:
    """Every rule of ``mriproc convert`` (``pipelines/dicom/heuristics.yaml``)."""

    modalities: tuple[str, ...] = field(metadata={"min_len": 1})
    skip: tuple[SkipRule, ...]
    min_slices: int = field(metadata={"min": 1, "max": 1000})
    timing: TimingRules
    uncorrected_copies: UncorrectedCopies
    keywords: dict[str, str]
    contrast_agent_absent: str
    post_contrast_description: str
    pre_contrast_description: str
    roles: dict[str, ContrastSpec]
    identifying_attributes: tuple[str, ...] = field(metadata={"min_len": 1})
    sidecar_remove: tuple[str, ...]
    source: str = field(default="", metadata={"yaml": False})


Decision = Literal["structural", "excluded", "copy", "undecided", "unreadable"]


@dataclass(frozen=True)
class Classification:
    """Roles of a series (empty: not converted) and why, in one line.

    ``decision`` says what kind of answer it is: ``structural`` (roles given),
    ``excluded`` (not an anatomical volume, on purpose: a field map, ASL, a localiser,
    another modality, skipped by the mapping file, ...), ``copy`` (the scanner's
    uncorrected copy of a series that is converted, on purpose too: see
    :func:`skip_uncorrected_copies`), ``undecided`` (an MR volume
    the rules could not place: the user may want it, and gives its role in a mapping
    file) or ``unreadable`` (no image of the series can be read, and nothing marks it
    as non-structural).  ``group`` is the short reason summaries count series by
    (the skip rule's reason, without what matched); empty means ``reason``.
    """

    roles: tuple[str, ...]
    reason: str
    decision: Decision = "excluded"
    group: str = ""

    @property
    def converted(self) -> bool:
        """True when the series becomes one or more BIDS images."""
        return bool(self.roles)

    @property
    def label(self) -> str:
        """The short reason (``group``, else ``reason``)."""
        return self.group or self.reason


def _structural(roles: tuple[str, ...], reason: str) -> Classification:
    return Classification(roles, reason, "structural")


def load_heuristics(path: str | Path | None = None) -> DicomHeuristics:
    """The shipped heuristics, or those of the YAML file ``path`` (checked like a protocol).

    >>> load_heuristics().roles["T1w_gad"]
    ContrastSpec(suffix='T1w', ce='gadolinium')
    """
    if path is None:
        path = Path(str(resources.files("mriproc.pipelines").joinpath("dicom", "heuristics.yaml")))
    path = Path(path)
    rules = config_from_mapping(DicomHeuristics, read_yaml(path, "heuristics"), source=str(path))
    patterns: dict[str, str | None] = {
        "contrast_agent_absent": rules.contrast_agent_absent,
        "post_contrast_description": rules.post_contrast_description,
        "pre_contrast_description": rules.pre_contrast_description,
        "uncorrected_copies.description": rules.uncorrected_copies.description,
        **{f"keywords.{k}": v for k, v in rules.keywords.items()},
        **{f"skip[{i}].description": r.description for i, r in enumerate(rules.skip)},
        **{f"skip[{i}].sequence": r.sequence for i, r in enumerate(rules.skip)},
        **{
            f"skip[{i}].attributes.{k}": v
            for i, r in enumerate(rules.skip)
            for k, v in (r.attributes or {}).items()
        },
    }
    for key, pattern in patterns.items():
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as err:
            raise ProtocolError(f"{path}: {key}: not a valid regular expression ({err})") from err
    for i, rule in enumerate(rules.skip):
        unknown = sorted(set(rule.attributes or {}) - set(ATTRIBUTES))
        if unknown:
            raise ProtocolError(
                f"{path}: skip[{i}].attributes: {', '.join(unknown)} not read by mriproc "
                f"(known: {', '.join(ATTRIBUTES)})"
            )
    for key in (*rules.keywords, "T1w_gad", "T1w", "T2w", "PDw", "FLAIR"):
        if key not in rules.roles:
            raise ProtocolError(f"{path}: roles: {key!r} is missing")
    lo, hi = rules.timing.t1_inversion_ms[:2]
    if len(rules.timing.t1_inversion_ms) != 2 or lo > hi:
        raise ProtocolError(f"{path}: timing.t1_inversion_ms: give [low, high]")
    return dataclasses.replace(rules, source=str(path))


def _search(pattern: str | None, text: str) -> bool:
    return pattern is not None and re.search(pattern, text, re.IGNORECASE) is not None


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g} ms"


def classify_series(
    series: DicomSeries, rules: DicomHeuristics, *, override: str | None = None
) -> Classification:
    """The roles of ``series`` (see the module docstring); ``override`` from a mapping file.

    Order: modality; a series without any image; the mapping file (``skip`` or a
    role: the user's word on one series wins over every rule); the skip rules (DICOM
    attributes and names, so that a field map, ASL, a secondary capture... is never
    structural, whatever its timing); a series whose images are all damaged;
    geometry; echo count; timing; and the description keywords when timing does not
    decide.
    """
    attrs = series.attributes
    modality = str(attrs.get("Modality") or "")
    if modality not in rules.modalities:
        return Classification(
            (),
            f"modality {modality or 'unknown'} is not converted",
            group=f"modality {modality or 'unknown'}",
        )
    if not series.files and not series.unplaced and not series.bad_files:
        what = ", ".join(sorted(set(series.other_objects))) or "no readable image"
        return Classification((), f"no images ({what})", group="no images (non-image objects)")
    if override == SKIP:
        return Classification((), "skipped by the mapping file")
    unreadable = Classification(
        (), "no readable image (every image file is damaged)", "unreadable", "damaged"
    )
    echoes = series.echo_times_ms
    if override is not None:
        if not series.files and not series.unplaced:
            return unreadable
        wanted = 2 if override == DUAL_ECHO else 1
        if len(echoes) != wanted:
            return Classification(
                (),
                f"the mapping file says {override}, which needs {wanted} echo time(s), "
                f"but the series has {len(echoes)}",
                "undecided",
                "the mapping file's role does not fit",
            )
        roles = ("PDw", "T2w") if override == DUAL_ECHO else (override,)
        return _structural(roles, "role from the mapping file")
    for rule in rules.skip:
        matched = _skip_match(rule, attrs)
        if matched is not None:
            return Classification((), f"{rule.reason} (from {matched})", group=rule.reason)
    if not series.files and not series.unplaced:
        return unreadable
    if not series.files:
        return Classification(
            (),
            "images without position or orientation (not a volume)",
            group="not a volume (no image geometry)",
        )
    stack = slice_stack(series.slices)
    if stack.orientations > 1:
        return Classification(
            (), f"localiser (slices in {stack.orientations} orientations)", group="localiser"
        )
    if stack.volumes > 1:
        return Classification(
            (),
            f"{stack.volumes} volumes per slice position (diffusion, functional or dynamic)",
            group="4-D series (diffusion, functional or dynamic)",
        )
    fewest = min(stack.slices_per_echo.values())
    if fewest < rules.min_slices:
        return Classification(
            (),
            f"only {fewest} slice(s) per echo (not a volume)",
            group="not a volume (too few slices)",
        )
    if len(echoes) == 2:
        return _dual_echo(echoes, rules)
    if len(echoes) > 2:
        return Classification(
            (),
            f"multi-echo series ({len(echoes)} echo times), not a dual echo",
            group="multi-echo series",
        )
    return _single_echo(series, series.description, rules)


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _joined(value: object) -> str:
    """A DICOM value as text; the values of a multi-valued one joined by backslashes."""
    return "\\".join(str(v) for v in _as_list(value))


def _skip_match(rule: SkipRule, attrs: Mapping[str, Any]) -> str | None:
    """What in ``attrs`` matches ``rule`` (for the report), or None."""
    names = " ".join(
        dict.fromkeys(
            str(attrs.get(k) or "").strip() for k in ("SeriesDescription", "ProtocolName")
        )
    )
    if _search(rule.description, names):
        return "SeriesDescription/ProtocolName"
    sequence = " ".join(
        _joined(attrs.get(k))
        for k in ("ScanningSequence", "SequenceName", "PulseSequenceName")
        if attrs.get(k)
    )
    if _search(rule.sequence, sequence):
        return "the sequence name"
    image_type = [str(v).strip().upper() for v in _as_list(attrs.get("ImageType"))]
    hit = next((v.upper() for v in rule.image_type if v.upper() in image_type), None)
    if hit is not None:
        return f"ImageType {hit}"
    if image_type[:1] and image_type[0] in [v.upper() for v in rule.image_type_first]:
        return f"ImageType {image_type[0]}"
    sop_class = str(attrs.get("SOPClassUID") or "")
    if sop_class and any(sop_class == p or sop_class.startswith(p + ".") for p in rule.sop_class):
        return f"SOP class {attrs.get('SOPClassName') or sop_class}"
    for keyword, pattern in (rule.attributes or {}).items():
        value = attrs.get(keyword)
        if value not in (None, "") and _search(pattern, _joined(value)):
            return keyword
    return None


def _dual_echo(echoes: tuple[float, ...], rules: DicomHeuristics) -> Classification:
    short, long = echoes
    timing = rules.timing
    if short <= timing.pd_max_echo_ms and long >= timing.t2_min_echo_ms:
        return _structural(
            ("PDw", "T2w"), f"dual echo: PDw at TE {_ms(short)}, T2w at TE {_ms(long)}"
        )
    return Classification(
        (),
        f"two echoes (TE {_ms(short)}, {_ms(long)}) that are not a PD/T2 dual echo",
        group="two echoes, not a PD/T2 dual echo",
    )


def _single_echo(series: DicomSeries, description: str, rules: DicomHeuristics) -> Classification:
    attrs = series.attributes
    t = rules.timing
    te = series.echo_times_ms[0] if series.echo_times_ms else None
    tr_value = attrs.get("RepetitionTime")
    tr = float(tr_value) if isinstance(tr_value, int | float) else None
    ti_value = attrs.get("InversionTime")
    ti = float(ti_value) if isinstance(ti_value, int | float) else None
    timing = f"TE {_ms(te)}, TR {_ms(tr)}" + (f", TI {_ms(ti)}" if ti else "")
    role: str | None = None
    if te is not None and ti is not None and ti >= t.flair_min_inversion_ms:
        role = "FLAIR" if te >= t.t2_min_echo_ms else None
    elif te is not None and te <= t.t1_max_echo_ms:
        low, high = t.t1_inversion_ms[:2]
        if (ti is not None and low <= ti <= high) or (
            tr is not None and tr <= t.t1_max_repetition_ms
        ):
            role = "T1w"
        elif tr is not None and tr >= t.long_repetition_min_ms and te <= t.pd_max_echo_ms:
            role = "PDw"
    elif te is not None and tr is not None and tr >= t.long_repetition_min_ms:
        if te >= t.t2_min_echo_ms:
            role = "T2w"
        elif te <= t.pd_max_echo_ms:
            role = "PDw"
    why = f"{role} from timing ({timing})"
    if role is None:
        role = next((r for r, p in rules.keywords.items() if _search(p, description)), None)
        why = f"{role} from the description (timing {timing} does not decide)"
    if role is None:
        return Classification(
            (),
            f"weighting not recognised ({timing}); give its role in a mapping file",
            "undecided",
            "weighting not recognised",
        )
    if role == "T1w":
        post = _post_contrast(str(attrs.get("ContrastBolusAgent") or ""), description, rules)
        if post:
            return _structural(("T1w_gad",), f"{why}; post-contrast: {post}")
    return _structural((role,), why)


def _post_contrast(agent: str, description: str, rules: DicomHeuristics) -> str | None:
    if not re.search(rules.contrast_agent_absent, agent, re.IGNORECASE):
        return "ContrastBolusAgent is set"
    if _search(rules.post_contrast_description, description) and not _search(
        rules.pre_contrast_description, description
    ):
        return "the description says so"
    return None


# --------------------------------------------------------------------------- uncorrected copies


def skip_uncorrected_copies(
    classified: Sequence[tuple[DicomSeries, Classification]],
    rules: DicomHeuristics,
    *,
    keep: Container[str] = (),
) -> list[Classification]:
    """The classifications of ``classified``, with uncorrected copies skipped.

    Siemens scanners can save a series twice: without distortion correction
    (ImageType ND, the SeriesDescription often ending in ``_ND``) and corrected
    (ImageType DIS2D or DIS3D).  Both would become images of the same role, and a
    session with two T1w images is refused downstream.  Within one session (patient
    and study), an uncorrected series (``rules.uncorrected_copies``) with the same
    roles, echo, repetition and inversion times and description (without the
    suffix) as a corrected one -- ImageType DIS2D/DIS3D, or the description without
    the suffix -- is skipped (decision ``copy``), its reason naming the series
    converted instead.  Each corrected series stands for one uncorrected copy, the
    nearest in series number.  An uncorrected series without such a partner keeps
    its roles, and so does one whose SeriesInstanceUID is in ``keep`` (its role
    comes from the mapping file).
    """
    result = [classification for _, classification in classified]
    rule = rules.uncorrected_copies
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, (series, classification) in enumerate(classified):
        if classification.decision == "structural" and classification.roles:
            key = (
                series.patient_id,
                series.study_uid,
                classification.roles,
                _base_description(series.description, rule),
                _timing(series),
            )
            groups.setdefault(key, []).append(index)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        uncorrected: list[tuple[int, str, bool]] = []  # index, why, by the description
        corrected: list[tuple[int, bool]] = []  # index, by ImageType
        for index in indices:
            one = classified[index][0]
            marked = _uncorrected_by(one, rule)
            if marked is None:
                dis = _image_type_has(one, rule.corrected_image_type) is not None
                corrected.append((index, dis))
            elif one.series_uid not in keep:
                uncorrected.append((index, *marked))
        number = {i: classified[i][0].series_number or 0 for i in indices}
        for index, why, by_description in sorted(uncorrected, key=lambda u: number[u[0]]):
            partners = [i for i, by_type in corrected if by_type or by_description]
            if not partners:
                continue
            partner = min(partners, key=lambda i: (abs(number[i] - number[index]), number[i]))
            corrected = [c for c in corrected if c[0] != partner]
            kept = classified[partner][0]
            shown = kept.series_number if kept.series_number is not None else "?"
            result[index] = Classification(
                (),
                f"uncorrected copy ({why}) of series {shown} '{kept.description.strip()}'; "
                "the distortion-corrected series is converted",
                "copy",
                "uncorrected copy of a distortion-corrected series",
            )
    return result


def _image_type_has(series: DicomSeries, values: Sequence[str]) -> str | None:
    """The first of ``values`` in the ImageType of ``series``, or None."""
    image_type = {str(v).strip().upper() for v in _as_list(series.attributes.get("ImageType"))}
    return next((v.upper() for v in values if v.upper() in image_type), None)


def _uncorrected_by(series: DicomSeries, rule: UncorrectedCopies) -> tuple[str, bool] | None:
    """What marks ``series`` as uncorrected (ImageType first), and whether its description
    does (then a partner without the suffix needs no ImageType DIS2D/DIS3D); or None."""
    value = _image_type_has(series, rule.image_type)
    found = re.search(rule.description, series.description.strip(), re.IGNORECASE)
    if value is not None:
        return f"ImageType {value}", found is not None
    if found is not None:
        return f"SeriesDescription suffix {found.group(0)}", True
    return None


def _base_description(description: str, rule: UncorrectedCopies) -> str:
    """``description`` without what ``rule.description`` matches, for comparison.

    >>> rule = UncorrectedCopies(("ND",), ("DIS2D",), "_ND$")
    >>> _base_description("t1_MPRAGE_sag_ND ", rule), _base_description("T1_mprage_sag", rule)
    ('t1_mprage_sag', 't1_mprage_sag')
    """
    text = description.strip()
    found = re.search(rule.description, text, re.IGNORECASE)
    if found is not None:
        text = text[: found.start()] + text[found.end() :]
    return " ".join(text.lower().split())


def _timing(series: DicomSeries) -> tuple[object, ...]:
    """Echo, repetition and inversion times (copies of one acquisition share them)."""
    times: list[object] = [series.echo_times_ms]
    for keyword in ("RepetitionTime", "InversionTime"):
        value = series.attributes.get(keyword)
        times.append(round(float(value), 2) if isinstance(value, int | float) else None)
    return tuple(times)
