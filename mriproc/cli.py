"""The ``mriproc`` command line (BIDS-Apps conventions; never prompts).

Exit status: 0 success; 1 failure or an incomplete dataset; 2 usage error or an
unusable dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mriproc import __version__
from mriproc.config import Protocol, ProtocolError, available_protocols, load_protocol

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "bids_apps_argv",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

logger = logging.getLogger("mriproc")


def _plugin_args(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            'must be a JSON object, e.g. \'{"sbatch_args": "-p short"}\''
        )
    return value


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"need distinct comma-separated names, got {text!r}")
    if not all(name.replace("_", "").replace("-", "").isalnum() for name in names):
        raise argparse.ArgumentTypeError(f"names may hold letters, digits, - and _ only: {text!r}")
    return names


def _months(text: str) -> tuple[int, ...]:
    try:
        months = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"need comma-separated whole months, got {text!r}"
        ) from None
    if months[0] != 0 or list(months) != sorted(set(months)):
        raise argparse.ArgumentTypeError(f"visits must start at 0 and increase, got {text!r}")
    return months


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _add_protocol(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        default="esims",
        metavar="NAME|FILE",
        help=f"imaging protocol: a shipped one ({', '.join(available_protocols())}) or a YAML "
        "file (default: esims)",
    )


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        metavar="LABEL",
        help="process only these participants (with or without sub-)",
    )
    parser.add_argument(
        "--session-label",
        "--session_label",
        nargs="+",
        metavar="LABEL",
        help="process only these sessions (with or without ses-)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mriproc`` (also used to document the CLI)."""
    parser = argparse.ArgumentParser(
        prog="mriproc",
        description="MRI endpoints for multiple-sclerosis treatment trials.",
    )
    parser.add_argument("--version", action="version", version=f"mriproc {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="process a BIDS dataset (BIDS-Apps: BIDS_DIR OUT_DIR LEVEL)")
    run.add_argument("bids_dir", type=Path, metavar="BIDS_DIR")
    run.add_argument("output_dir", type=Path, metavar="OUT_DIR")
    run.add_argument("analysis_level", choices=["participant", "group"])
    _add_selection(run)
    _add_protocol(run)
    run.add_argument("--work-dir", "-w", type=Path, help="Nipype working directory (cache)")
    run.add_argument("--nprocs", type=_positive_int, default=None, help="processes for MultiProc")
    run.add_argument("--mem-gb", type=_positive_float, default=None, help="memory for MultiProc")
    run.add_argument(
        "--plugin",
        choices=["Linear", "MultiProc", "SLURM", "SLURMGraph"],
        default="MultiProc",
        help="Nipype execution plugin (default: MultiProc)",
    )
    run.add_argument(
        "--plugin-args", type=_plugin_args, default=None, metavar="JSON", help="plugin options"
    )
    run.add_argument(
        "--rater-masks",
        type=Path,
        default=None,
        metavar="DIR",
        help="BIDS-Derivatives folder of raters' T2 lesion masks "
        "(sub-*/ses-*/anat/*_desc-t2lesion_mask.nii.gz): used for the lesion endpoints "
        "of their sessions; rater_agreement.tsv compares them with the automated masks",
    )

    validate = sub.add_parser(
        "validate", help="summarise what a BIDS dataset holds for a protocol, per session"
    )
    validate.add_argument("bids_dir", type=Path, metavar="BIDS_DIR")
    _add_protocol(validate)
    _add_selection(validate)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

    convert = sub.add_parser(
        "convert",
        help="convert scanner DICOM to a de-identified BIDS dataset",
        description="Convert scanner DICOM (a folder tree of any depth, or a zip or tar "
        "archive; files may be gzip, bzip2 or xz compressed, and archives anywhere in the "
        "tree are unpacked into a temporary folder, never next to the input) to a "
        "de-identified BIDS dataset.",
        epilog="Every file not converted is counted by reason ('not converted: ...'). "
        "Exit status: 0 when everything a user may want was converted (series left out on "
        "purpose -- localisers, field maps, ASL, diffusion, BOLD, derived images, other "
        "modalities, mapping-file skips -- and files that are not DICOM are counted, not "
        "failures); 1 when a series failed, a file or archive was damaged or not read (7z or "
        "rar: unpack it), or an MR series' weighting was not recognised; 2: usage error.",
    )
    convert.add_argument(
        "dicom_dir", type=Path, metavar="DICOM_DIR", help="a folder, or a .zip/.tar/.tar.gz file"
    )
    convert.add_argument("bids_dir", type=Path, metavar="BIDS_DIR")
    convert.add_argument(
        "--mapping",
        type=Path,
        metavar="FILE",
        help="TSV (field, value, set, to) giving participant labels by PatientID, session "
        "labels by StudyInstanceUID and series roles by SeriesInstanceUID or SeriesDescription",
    )
    convert.add_argument(
        "--participants",
        type=Path,
        metavar="FILE",
        help="TSV of participant covariates (arm, age, ...) keyed by participant_id or PatientID",
    )
    convert.add_argument(
        "--mapping-out",
        type=Path,
        metavar="FILE",
        help="write the PatientID -> participant mapping (and session labels) here, in the "
        "--mapping format; must be outside BIDS_DIR",
    )
    convert.add_argument(
        "--heuristics",
        type=Path,
        metavar="FILE",
        help="classification rules (default: the shipped pipelines/dicom/heuristics.yaml)",
    )

    simulate = sub.add_parser("simulate", help="write a simulated MS trial with ground truth")
    simulate.add_argument("output_dir", type=Path, metavar="OUT_DIR")
    simulate.add_argument("--subjects", type=_positive_int, default=4, help="number of subjects")
    simulate.add_argument(
        "--arms",
        type=_names,
        default=("placebo", "ivig"),
        help=(
            "comma-separated arm names; subjects are allocated in turn (default: "
            "placebo,ivig); an arm named rescan has no biological change (null pairs)"
        ),
    )
    simulate.add_argument(
        "--visits", type=_months, default=(0, 12, 24), help="visit months from 0 (default: 0,12,24)"
    )
    simulate.add_argument("--resolution", choices=["esims", "1mm"], default="esims")
    simulate.add_argument("--format", choices=["bids", "dicom", "both"], default="bids")
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    simulate.add_argument(
        "--snr", type=_positive_float, default=25.0, help="white-matter SNR on PDw (default: 25)"
    )
    simulate.add_argument("--flair", action="store_true", help="also acquire FLAIR")
    simulate.add_argument(
        "--appearance",
        choices=["classic", "realistic"],
        default="classic",
        help=(
            "how scanners render tissue: classic (literature values, the brain fit's own "
            "model) or realistic (drawn per site: GM/WM contrast, bright hippocampi, "
            "septum and periventricular caps, FLAIR CSF flow, small and faint lesions)"
        ),
    )
    simulate.add_argument(
        "--preview", action="store_true", help="write a PNG of every subject's last visit"
    )
    _add_protocol(simulate)

    stats = sub.add_parser(
        "stats",
        help="trial statistics from the endpoint tables (writes OUT_DIR/mriproc/stats/)",
    )
    stats.add_argument("output_dir", type=Path, metavar="OUT_DIR")
    stats.add_argument(
        "--endpoints",
        type=Path,
        default=None,
        metavar="FILE",
        help="endpoint table to analyse (default: OUT_DIR/mriproc/endpoints.tsv)",
    )
    stats.add_argument(
        "--participants",
        type=Path,
        default=None,
        metavar="FILE",
        help="participants.tsv with the arm column and covariates (default: "
        "OUT_DIR/mriproc/participants.tsv, OUT_DIR/participants.tsv, or the one of the "
        "BIDS dataset recorded in OUT_DIR/mriproc/dataset_description.json)",
    )
    stats.add_argument(
        "--reference-arm",
        default=None,
        metavar="ARM",
        help="arm the others are compared with (default: placebo if present, else the "
        "first arm in sorted order)",
    )
    report = sub.add_parser(
        "report",
        help="self-contained HTML QC report of a run (writes OUT_DIR/mriproc/report/)",
    )
    report.add_argument("output_dir", type=Path, metavar="OUT_DIR")

    demo = sub.add_parser(
        "demo",
        help="simulate a small two-arm trial and run everything on it (run, stats, report)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("mriproc-demo"),
        help="folder for the demo (default: ./mriproc-demo)",
    )
    for command in sub.choices.values():  # -v after the command too, as in BIDS Apps
        command.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=argparse.SUPPRESS,
            help="more log output (-v info, -vv debug)",
        )
    return parser


def _setup_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mriproc: %(levelname)s: %(message)s"))
    root = logging.getLogger("mriproc")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def run_folders_problem(bids_dir: Path, output_dir: Path, work_dir: Path) -> str | None:
    """Why ``mriproc run`` cannot use these (resolved) folders, in one line, or None.

    OUT_DIR and the work dir must lie outside the BIDS dataset (input discovery
    would read the outputs as inputs), except under its ``derivatives/``, which
    discovery never reads; each must be, or be creatable as, a writable folder.

    >>> run_folders_problem(Path("/d/bids"), Path("/d/bids/out"), Path("/tmp/w"))[:40]
    'OUT_DIR /d/bids/out is inside the BIDS d'
    """
    for what, folder in (("OUT_DIR", output_dir), ("work dir", work_dir)):
        if folder.is_relative_to(bids_dir) and not folder.is_relative_to(bids_dir / "derivatives"):
            return (
                f"{what} {folder} is inside the BIDS dataset {bids_dir}: its outputs would be "
                f"read back as inputs; choose a folder outside it, or under "
                f"{bids_dir / 'derivatives'}"
            )
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            return f"{what} {folder}: {existing} is a file, not a folder"
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            return f"{what} {folder}: {existing} is not writable"
    return None


def _run(args: argparse.Namespace) -> int:
    from mriproc.run import WorkDirInUseError, work_dir_lock
    from mriproc.t2lesions import classifier_problem

    protocol = load_protocol(args.protocol)
    output_dir: Path = args.output_dir.resolve()
    work_dir: Path = (args.work_dir or args.output_dir / "work").resolve()
    problem = classifier_problem(protocol.t2_lesions, protocol.source)
    problem = problem or run_folders_problem(args.bids_dir.resolve(), output_dir, work_dir)
    if problem is None and args.analysis_level == "participant":
        problem = _nothing_to_run(args, protocol)
    if problem:  # said before any folder is made: a refused run leaves nothing behind
        logger.error("%s", problem)
        return EXIT_USAGE
    with contextlib.ExitStack() as held:
        if args.analysis_level == "participant":
            try:
                held.enter_context(work_dir_lock(work_dir))
            except WorkDirInUseError as err:
                logger.error("%s", err)
                return EXIT_USAGE
        return _run_in(args, protocol, output_dir, work_dir)


def _nothing_to_run(args: argparse.Namespace, protocol: Protocol) -> str | None:
    """Why a participant-level run has nothing to do (not BIDS, no session selected)."""
    from mriproc.io.bids import DatasetError, discover_dataset

    try:
        dataset = discover_dataset(
            args.bids_dir.resolve(),
            protocol,
            participant_labels=args.participant_label,
            session_labels=args.session_label,
            check_images=False,
        )
    except DatasetError as err:
        return str(err)
    if dataset.sessions or dataset.without_data:
        return None
    found = "; ".join(dataset.problems) or "no session matches the selection"
    return f"{args.bids_dir}: nothing to process ({found})"


def _run_in(args: argparse.Namespace, protocol: Protocol, output_dir: Path, work_dir: Path) -> int:
    """``mriproc run`` once its folders are checked (and the work dir held)."""
    from mriproc.cohort import gather_cohort
    from mriproc.io.bids import DatasetError
    from mriproc.io.provenance import new_run_id, run_log_dir, write_run_config
    from mriproc.run import run_participants
    from mriproc.tables import write_dataset_description

    run_id = new_run_id()
    log_dir = run_log_dir(output_dir, run_id)
    plugin_args = dict(args.plugin_args or {})
    if args.plugin == "MultiProc":
        plugin_args.setdefault("n_procs", args.nprocs or 2)
        if args.mem_gb:
            plugin_args.setdefault("memory_gb", args.mem_gb)
    options = {k: v for k, v in vars(args).items() if k not in ("plugin_args", "argv")}
    options.update(work_dir=work_dir, plugin_args=plugin_args, run_id=run_id)
    write_run_config(log_dir, run_id=run_id, command=args.argv, options=options, protocol=protocol)
    try:
        if args.analysis_level == "group":
            cohort = gather_cohort(output_dir / "mriproc", args.bids_dir.resolve(), protocol)
            write_dataset_description(
                output_dir / "mriproc",
                source_datasets=[str(args.bids_dir.resolve())],
                protocol_name=protocol.name,
            )
            sys.stdout.write(
                f"Gathered {cohort.participants - len(cohort.not_processed)} of "
                f"{cohort.participants} participant(s); {cohort.failures} error row(s).\n"
                + (
                    "Not processed yet: "
                    + ", ".join(f"sub-{p}" for p in cohort.not_processed)
                    + "\n"
                    if cohort.not_processed
                    else ""
                )
                + f"Endpoints: {cohort.endpoints}\nErrors:    {cohort.errors}\n"
            )
            return EXIT_OK if not cohort.not_processed and not cohort.failures else EXIT_FAILURE
        result = run_participants(
            args.bids_dir.resolve(),
            output_dir,
            protocol,
            work_dir=work_dir,
            log_dir=log_dir,
            participant_labels=args.participant_label,
            session_labels=args.session_label,
            plugin=args.plugin,
            plugin_args=plugin_args,
            rater_masks=args.rater_masks.resolve() if args.rater_masks else None,
        )
    except DatasetError as err:
        logger.error("%s", err)
        return EXIT_USAGE
    sys.stdout.write(
        f"Processed {result.processed} session(s); {result.failed} failed, "
        f"{result.skipped} skipped (missing or unusable contrasts); "
        f"{result.failures} row(s) in errors.tsv from this run.\n"
        f"Endpoints: {result.endpoints}\nErrors:    {result.errors}\nLog:       {log_dir}\n"
    )
    return EXIT_OK if result.failures == 0 else EXIT_FAILURE


def _stats(args: argparse.Namespace) -> int:
    from mriproc.stats import StatsInputError, run_stats

    try:
        result = run_stats(
            args.output_dir,
            endpoints=args.endpoints,
            participants=args.participants,
            reference_arm=args.reference_arm,
        )
    except StatsInputError as err:
        logger.error("%s", err)
        return EXIT_USAGE
    comparisons = result.analysis.comparisons
    estimated = int(comparisons["p_value"].notna().sum())
    sys.stdout.write(
        f"Analysed {len(result.analysis.data.participants)} participant(s) in "
        f"{len(result.analysis.data.arms)} arm(s) (reference: "
        f"{result.analysis.data.reference_arm}); {estimated} of {len(comparisons)} "
        "between-arm comparisons estimable.\n"
        f"Summary: {result.stats_dir / 'summary.html'}\n"
        f"Tables:  {result.stats_dir}\n"
    )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from mriproc.report import ReportInputError, write_report

    try:
        result = write_report(args.output_dir)
    except ReportInputError as err:
        logger.error("%s", err)
        return EXIT_USAGE
    sys.stdout.write(
        f"Wrote {len(result.pages)} page(s); {result.flagged} scan(s) flagged.\n"
        f"Report: {result.index}\n"
    )
    return EXIT_OK


def _convert(args: argparse.Namespace) -> int:
    from mriproc.convert import ConvertError, convert_dicom
    from mriproc.io.conversion_mapping import MappingError, read_mapping
    from mriproc.series_roles import DUAL_ECHO, SKIP, load_heuristics

    rules = load_heuristics(args.heuristics)
    try:
        mapping = (
            read_mapping(args.mapping, roles=[*rules.roles, DUAL_ECHO, SKIP])
            if args.mapping
            else None
        )
        covariates = _read_covariates(args.participants) if args.participants else None
        result = convert_dicom(
            args.dicom_dir,
            args.bids_dir,
            rules=rules,
            mapping=mapping,
            covariates=covariates,
            mapping_out=args.mapping_out,
        )
    except (MappingError, ConvertError) as err:
        logger.error("%s", err)
        return EXIT_USAGE
    failed = result.count("failed")
    left_out = sum(group.files for group in result.left_out)
    sys.stdout.write(
        f"Converted {result.count('converted')} series ({len(result.new_sessions)} new "
        f"session(s)); {result.count('exists')} already in the dataset, "
        f"{result.count('skipped')} skipped (not anatomical MRI), {failed} failed; "
        f"{left_out} of {result.files} file(s) not converted"
        + (" (by reason above)" if left_out else "")
        + f".\nReport: {result.report}\n"
    )
    return EXIT_OK if result.complete else EXIT_FAILURE


def _read_covariates(path: Path) -> Any:
    import pandas as pd

    from mriproc.convert import ConvertError

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, na_values=["n/a"], keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ConvertError(
            f"{path}: cannot read the participants file ({type(err).__name__})"
        ) from err
    if "participant_id" not in table and "PatientID" not in table:
        raise ConvertError(f"{path}: needs a participant_id or a PatientID column")
    return table


def _validate(args: argparse.Namespace) -> int:
    from mriproc.validate import validate_dataset

    protocol = load_protocol(args.protocol)
    report = validate_dataset(
        args.bids_dir,
        protocol,
        participant_labels=args.participant_label,
        session_labels=args.session_label,
    )
    text = report.to_json() if args.json else "\n".join(report.lines())
    sys.stdout.write(text + "\n")
    return report.exit_code


def _demo(args: argparse.Namespace) -> int:
    from mriproc.demo import DEMO_SPEC, run_demo

    out: Path = args.out
    if out.exists() and not out.is_dir():
        logger.error("%s: exists and is not a folder; choose another --out", out)
        return EXIT_USAGE
    spec = DEMO_SPEC
    sys.stdout.write(
        "mriproc demo\n"
        f"A small simulated two-arm ESIMS-like trial ({spec.n_subjects} participants, "
        f"{', '.join(spec.arms)}; visits at months {', '.join(map(str, spec.months))}; PD/T2\n"
        "dual echo and T1 before and after gadolinium) goes through the whole chain:\n"
        "simulate, validate, mriproc run ... participant, mriproc stats, mriproc report.\n\n"
    )
    sys.stdout.flush()
    result = run_demo(out, stream=sys.stdout)
    sys.stdout.write(
        _demo_comparison(result.endpoints, result.bids_dir) + "\n\n"
        f"BIDS dataset:   {result.bids_dir}\n"
        f"Ground truth:   {result.bids_dir / 'derivatives' / 'groundtruth' / 'endpoints.tsv'}\n"
        f"Endpoints:      {result.endpoints}\n"
        f"Errors:         {result.errors}\n"
        f"Statistics:     {result.stats_summary}\n"
        f"QC report:      {result.report}\n"
    )
    if result.failed_sessions:
        logger.error(
            "%d session(s) failed or were skipped: see %s", result.failed_sessions, result.errors
        )
        return EXIT_FAILURE
    return EXIT_OK


def _demo_comparison(endpoints: Path, bids_dir: Path) -> str:
    """Measured next to true values of a few endpoints, one line per scan, then the
    values flagged as implausible (kept, left out of the statistics) with the reason."""
    from mriproc.tables import FLAGGED, read_table

    shown = ["t2_lesion_volume", "pcf", "pbvc"]
    keys = ["participant_id", "session", "arm"]
    measured = read_table(endpoints.with_name("endpoints_wide.tsv"))
    truth = read_table(bids_dir / "derivatives" / "groundtruth" / "endpoints_wide.tsv")
    both = measured[keys + shown].merge(
        truth[keys + shown], on=keys, suffixes=("", " truth"), how="left"
    )
    both = both[keys + [f"{name}{suffix}" for name in shown for suffix in ("", " truth")]]
    text = "Measured and true values (T2 lesion volume mL, PCF, PBVC %):\n" + both.to_string(
        index=False, na_rep="n/a", float_format=lambda v: f"{v:.4g}"
    )
    long = read_table(endpoints)
    flagged = long[long["status"].astype(str).str.startswith(FLAGGED)]
    if flagged.empty:
        return text + "\nNo value is outside the protocol's plausibility bounds."
    lines = [
        f"  {participant} {session} {endpoint} = {value:.4g}: {str(status).removeprefix(FLAGGED)}"
        for participant, session, endpoint, value, status in zip(
            flagged["participant_id"],
            flagged["session"],
            flagged["endpoint"],
            flagged["value"].astype(float),
            flagged["status"],
            strict=True,
        )
    ]
    return (
        text + f"\nFlagged for review ({len(lines)} value(s) outside the protocol's plausibility "
        "bounds; kept in the tables, left out of the statistics):\n" + "\n".join(lines)
    )


def _simulate(args: argparse.Namespace) -> int:
    from mriproc.simulate import TrialSpec, simulate_trial
    from mriproc.simulate.preview import write_preview

    protocol = load_protocol(args.protocol)
    out: Path = args.output_dir
    if out.exists() and any(out.iterdir()):
        logger.error("%s: exists and is not empty; simulate writes into a new or empty folder", out)
        return EXIT_USAGE
    spec = TrialSpec(
        n_subjects=args.subjects,
        arms=args.arms,
        months=args.visits,
        resolution=args.resolution,
        write_bids=args.format in ("bids", "both"),
        write_dicom=args.format in ("dicom", "both"),
        flair=args.flair,
        seed=args.seed,
        snr=args.snr,
        appearance=args.appearance,
    )
    last = len(spec.months) - 1
    previews: list[Path] = []

    def preview(subject: Any, visit: int, data: dict[str, Any]) -> None:
        if args.preview and visit == last:
            session = f"M{spec.months[visit]:02d}"
            path = (
                out
                / "derivatives"
                / "groundtruth"
                / f"sub-{subject.label}_ses-{session}_preview.png"
            )
            previews.append(
                write_preview(path, f"sub-{subject.label} ses-{session} ({subject.arm})", data)
            )

    simulate_trial(out, spec, protocol, on_visit=preview)
    truth = out / "derivatives" / "groundtruth"
    sys.stdout.write(
        f"Simulated {spec.n_subjects} subject(s) x {len(spec.months)} visit(s) in {out}\n"
        f"Ground truth: {truth / 'endpoints.tsv'}, {truth / 'lesions.tsv'}\n"
        + "".join(f"Preview: {p}\n" for p in previews)
    )
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "convert": _convert,
    "validate": _validate,
    "simulate": _simulate,
    "demo": _demo,
    "stats": _stats,
    "report": _report,
}


_ANALYSIS_LEVELS = ("participant", "group")


def bids_apps_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the BIDS-Apps form ``BIDS_DIR OUT_DIR participant|group ...`` as ``run``.

    BIDS-Apps runners (and containers whose entry point is ``mriproc``) call the app
    with the three positional arguments and no subcommand.  Anything else, including
    options before the subcommand such as ``-v``, is returned unchanged.

    >>> bids_apps_argv(["/data", "/out", "participant", "--nprocs", "2"])
    ['run', '/data', '/out', 'participant', '--nprocs', '2']
    >>> bids_apps_argv(["validate", "/data"])
    ['validate', '/data']
    """
    argv = list(argv)
    start = 0  # -v/--verbose may come first: mriproc -v BIDS_DIR OUT_DIR participant
    while start < len(argv) and (argv[start] == "--verbose" or _is_verbose_flag(argv[start])):
        start += 1
    rest = argv[start:]
    if (
        len(rest) >= 3
        and rest[0] not in _COMMANDS
        and not rest[0].startswith("-")
        and rest[2] in _ANALYSIS_LEVELS
    ):
        return [*argv[:start], "run", *rest]
    return argv


def _is_verbose_flag(arg: str) -> bool:
    return len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mriproc`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Besides ``mriproc COMMAND ...`` it accepts the BIDS-Apps form
    ``mriproc BIDS_DIR OUT_DIR participant|group [options]`` (:func:`bids_apps_argv`).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(bids_apps_argv(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return int(exc.code or 0)
    args.argv = ["mriproc", *(sys.argv[1:] if argv is None else argv)]
    _setup_logging(args.verbose)
    try:
        return _COMMANDS[args.command](args)
    except ProtocolError as err:
        logger.error("%s", err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
