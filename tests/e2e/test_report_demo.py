"""``mriproc demo`` end to end, and the QC report pages of its run.

The tests reuse the run of ``mriproc demo`` (the ``demo_run`` fixture): a copy of its
output gets a failed scan, a missing and a damaged mask, and the report made from it is
opened in headless Chromium.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urldefrag

import matplotlib.image
import numpy as np
import pytest
from chromium import chromium_or_skip, rendered_page, screenshot

from mriproc.cli import EXIT_OK, main
from mriproc.report import write_report
from mriproc.tables import EndpointRow, ErrorRow, read_table, write_endpoints, write_errors


@dataclass(frozen=True)
class DemoRun:
    """What ``mriproc demo --out OUT`` returned and printed, and the run folder it made."""

    exit_code: int
    stdout: str
    stderr: str
    run_dir: Path


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``mriproc demo`` once for this module: the whole chain, checked here and reported on."""
    out = tmp_path_factory.mktemp("demo")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "--out", str(out)])
    (run_dir,) = out.iterdir()
    return DemoRun(code, stdout.getvalue(), stderr.getvalue(), run_dir)


# --------------------------------------------------------------------------- demo


def test_demo_runs_the_whole_chain(demo_run: DemoRun) -> None:
    """Simulate, validate, run, stats and report; the printed paths exist and the numbers match."""
    assert demo_run.exit_code == EXIT_OK, demo_run.stderr
    out = demo_run.stdout
    for stage in ("[1/5] Simulating", "[3/5] Processing 8 visits", "[5/5] QC report"):
        assert stage in out
    assert "  4/4 sub-004 (ivig, 2 visits)" in out  # simulation progress
    assert "  1/12 visit_sub_" in out and "  12/12 " in out  # 8 visits, 4 longitudinal stages
    results = demo_run.run_dir / "out" / "mriproc"
    for label, path in (
        ("Endpoints:", results / "endpoints.tsv"),
        ("Statistics:", results / "stats" / "summary.html"),
        ("QC report:", results / "report" / "index.html"),
    ):
        assert f"{label}" in out and str(path) in out
        assert path.is_file()
    assert read_table(results / "errors.tsv").empty
    wide = read_table(results / "endpoints_wide.tsv")
    assert len(wide) == 8 and set(wide.arm) == {"placebo", "ivig"}
    # The measured values printed are those of the table.
    row = wide[(wide.participant_id == "sub-004") & (wide.session == "ses-M12")].iloc[0]
    assert f"{row.pcf:.4g}" in out and f"{row.pbvc:.4g}" in out
    comparisons = read_table(results / "stats" / "comparisons.tsv")
    assert comparisons["p_value"].notna().any()  # two participants per arm: estimable
    # The run stage leaves the record `mriproc run` leaves: command, options, protocol.
    (config,) = (results / "logs").glob("*/mriproc.toml")
    recorded = tomllib.loads(config.read_text())
    assert recorded["run"]["command"][:2] == ["mriproc", "run"]
    assert recorded["protocol"]["registration"]["preset"]["name"] == "fast"  # written out


FAILED = ("sub-002", "ses-M12")
FAILURE = "coreg_t1w: sub-002_ses-M12_T1w.nii.gz did not register to T2w (test)"


@pytest.fixture(scope="module")
def flawed_run(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo's output with one failed scan, one missing and one damaged mask."""
    assert demo_run.exit_code == EXIT_OK, demo_run.stderr
    out = tmp_path_factory.mktemp("flawed") / "out"
    shutil.copytree(demo_run.run_dir / "out", out, ignore=shutil.ignore_patterns("work", "report"))
    root = out / "mriproc"
    table = read_table(root / "endpoints.tsv")
    rows = []
    for r in table.to_dict(orient="records"):
        failed = (r["participant_id"], r["session"]) == FAILED
        value = None if failed or np.isnan(r["value"]) else float(r["value"])
        status = "processing failed: " + FAILURE if failed else str(r["status"])
        rows.append(
            EndpointRow(
                str(r["participant_id"]),
                str(r["session"]),
                float(r["visit_month"]),
                str(r["arm"]),
                str(r["endpoint"]),
                value,
                status,
            )
        )
    write_endpoints(rows, root, protocol_name="esims")
    write_errors([ErrorRow(*FAILED, "visit", FAILURE)], root, protocol_name="esims")
    shutil.rmtree(root / "sub-002" / "ses-M12")  # a failed visit writes no derivatives
    (root / "sub-001" / "ses-M00" / "anat" / "sub-001_ses-M00_desc-cel_mask.nii.gz").unlink()
    damaged = root / "sub-003" / "ses-M00" / "anat" / "sub-003_ses-M00_desc-blackhole_mask.nii.gz"
    damaged.write_bytes(damaged.read_bytes()[:200])
    assert main(["report", str(out)]) == EXIT_OK
    return root / "report"


def test_report_flags_the_failed_scan_and_notes_missing_masks(flawed_run: Path) -> None:
    cohort = (flawed_run / "cohort.html").read_text()
    flagged = cohort.split('id="flagged"')[1]
    assert '<a href="sub-002.html#ses-M12">' in flagged and FAILURE in flagged
    assert '<a href="sub-002.html#ses-M12">' in cohort.split('id="errors"')[1]
    failed_page = (flawed_run / "sub-002.html").read_text()
    section = failed_page.split('<section id="ses-M12">')[1].split("</section>")[0]
    assert 'class="flag"' in section and "images not available" in section
    assert "<img" not in section and FAILURE in section
    first = (flawed_run / "sub-001.html").read_text()
    assert "enhancing lesions (CEL): not available:" in first
    assert "sub-001_ses-M00_desc-cel_mask.nii.gz not found" in first
    third = (flawed_run / "sub-003.html").read_text()
    assert (
        "black holes: not drawn: sub-003_ses-M00_desc-blackhole_mask.nii.gz cannot be read" in third
    )


def test_report_is_reproducible(flawed_run: Path) -> None:
    before = {p.name: p.read_bytes() for p in flawed_run.glob("*.html")}
    write_report(flawed_run.parent.parent)
    after = {p.name: p.read_bytes() for p in flawed_run.glob("*.html")}
    assert after == before


def _links(dom: str) -> list[str]:
    return re.findall(r'<a href="([^"]+)"', dom)


def test_report_opens_in_headless_chromium(flawed_run: Path, tmp_path: Path) -> None:
    """Every page reachable from the index loads in Chromium with every image decoded."""
    browser = chromium_or_skip()
    pages: dict[str, str] = {}
    to_visit = ["index.html"]
    images_seen = 0
    while to_visit:
        name = to_visit.pop()
        if name in pages:
            continue
        page = flawed_run / name
        assert page.is_file(), f"link to a missing page: {name}"
        dom, images = rendered_page(browser, page, tmp_path)
        broken = [i for i in images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
        assert not broken, f"{name}: images that did not load: {broken}"
        images_seen += len(images)
        pages[name] = dom
        for link in _links(dom):
            target, _ = urldefrag(link)
            if target.endswith(".html") and "/" not in target:
                to_visit.append(target)
    participants = sorted(set(read_table(flawed_run.parent / "endpoints.tsv").participant_id))
    assert {f"{p}.html" for p in participants} <= set(pages), sorted(pages)
    # 2 visits with mosaics per subject but the failed one, + trajectories + distributions.
    assert images_seen == 2 * len(participants) - 1 + len(participants) + 1
    # Every link to a section lands on an element with that id.
    for dom in pages.values():
        for link in _links(dom):
            target, anchor = urldefrag(link)
            if anchor and target in pages:
                assert f'id="{anchor}"' in pages[target], link
    shot = screenshot(browser, flawed_run / "sub-001.html", tmp_path / "sub-001.png", tmp_path)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[1] == 1400 and pixels[..., :3].std() > 0.05  # drawn, not blank
