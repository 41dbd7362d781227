"""Data dictionaries and README of the raw datasets mriproc writes."""

from __future__ import annotations

import json
from pathlib import Path

from mriproc.io.bids_metadata import COLUMN_DESCRIPTIONS, ensure_readme, write_column_dictionaries


def test_every_column_is_described_and_a_users_entries_are_kept(tmp_path: Path) -> None:
    (tmp_path / "participants.tsv").write_text("participant_id\tarm\tsite\nsub-01\tx\tVienna\n")
    for label, columns in (
        ("01", "session_id\tvisit_month"),
        ("02", "session_id\tdays_from_baseline"),
    ):
        (tmp_path / f"sub-{label}").mkdir()
        (tmp_path / f"sub-{label}" / f"sub-{label}_sessions.tsv").write_text(columns + "\n")
    (tmp_path / "participants.json").write_text(json.dumps({"arm": {"Description": "mine"}}))
    written = write_column_dictionaries(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "participants.json",
        "sub-01/sub-01_sessions.json",
        "sub-02/sub-02_sessions.json",
    ]
    participants = json.loads((tmp_path / "participants.json").read_text())
    assert participants["arm"] == {"Description": "mine"}  # the user's, kept
    assert participants["participant_id"] == COLUMN_DESCRIPTIONS["participant_id"]
    assert "given with the data" in participants["site"]["Description"]  # unknown column
    sessions = json.loads((tmp_path / "sub-02" / "sub-02_sessions.json").read_text())
    assert set(sessions) == {"session_id", "days_from_baseline"}
    assert sessions["days_from_baseline"]["Units"] == "day"


def test_a_readme_is_written_only_when_there_is_none(tmp_path: Path) -> None:
    assert ensure_readme(tmp_path, "first").read_text() == "first\n"
    assert ensure_readme(tmp_path, "second").read_text() == "first\n"
    (tmp_path / "README").unlink()
    (tmp_path / "README.md").write_text("# theirs\n")
    assert ensure_readme(tmp_path, "third") == tmp_path / "README.md"
    assert not (tmp_path / "README").exists()
