"""Participant-level jobs writing their tables and gathering the cohort's at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from cohort_skeleton import PROTOCOL, skeleton

from mriproc.cohort import gather_cohort, participant_tables, write_participant_tables
from mriproc.io.bids import discover_dataset
from mriproc.tables import ErrorRow, read_table


def _job(args: tuple[str, str, str]) -> None:
    """One participant-level job's table writing: its own file, then the cohort rebuild."""
    bids, out, participant = (Path(args[0]), Path(args[1]), args[2])
    dataset = discover_dataset(bids, PROTOCOL, check_images=False)
    error = ErrorRow(f"sub-{participant}", "ses-M00", "visit", f"failure of {participant}")
    for _ in range(3):
        write_participant_tables(out, participant_tables(out, dataset, participant, [error]))
        gather_cohort(out, bids, PROTOCOL)


def test_concurrent_participant_jobs_keep_every_row(tmp_path: Path) -> None:
    """Four jobs writing and gathering at once, three times each: no rows are lost."""
    bids = skeleton(tmp_path / "bids", 4)
    out = tmp_path / "out" / "mriproc"
    labels = [f"{i:02d}" for i in range(1, 5)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_job, [(str(bids), str(out), label) for label in labels])
    errors = read_table(out / "errors.tsv")
    assert sorted(errors.participant_id) == [f"sub-{label}" for label in labels]
    endpoints = read_table(out / "endpoints.tsv")
    failed = endpoints[endpoints.session == "ses-M00"]
    assert set(failed.status) == {f"processing failed: failure of {label}" for label in labels}
    assert not list(out.glob(".*.tmp*"))  # no temporary file left behind
