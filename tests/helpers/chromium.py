"""Headless Chromium for the report tests (Debian's ``chromium`` package).

``scripts/install_chromium.sh`` installs it with apt when it is missing; where that
is impossible (no root, no apt, no mirror) the tests that need it are skipped with
the script's reason.  Pages are opened from ``file://`` URLs with Chromium's own
command line (``--dump-dom``, ``--screenshot``); no browser driver package is needed.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = ROOT / "scripts" / "install_chromium.sh"

# Appended to a copy of a page: after the load event (every image fetched and
# decoded or failed), record each image's state in an element --dump-dom prints.
_IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((img) => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify(images);
  document.body.appendChild(out);
});
</script>"""


def chromium_or_skip() -> str:
    """The chromium executable, installed by the project's script if needed; else skip."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    result = subprocess.run(
        ["sh", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"headless chromium not available ({INSTALL_SCRIPT.name}: {reason})")
    return lines[-1]


def _run(browser: str, profile: Path, *options: str, url: str) -> str:
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *options,
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-2000:]}"
    return result.stdout


def rendered_page(browser: str, page: Path, work: Path) -> tuple[str, list[dict[str, Any]]]:
    """The DOM Chromium built for ``page`` and the load state of each of its images.

    A copy of the page with a small checking script is opened (the report itself
    has no scripts); it sits beside the original so that relative links resolve.
    """
    text = page.read_text(encoding="utf-8")
    assert "</body>" in text, f"{page}: no </body>"
    probe = page.with_name(f".probe-{page.name}")
    probe.write_text(text.replace("</body>", _IMAGE_CHECK + "\n</body>"), encoding="utf-8")
    try:
        dom = _run(
            browser,
            work / "profile",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url=probe.as_uri(),
        )
    finally:
        probe.unlink()
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert found, f"{page}: Chromium did not run the image check (page did not load?)"
    images = json.loads(html.unescape(found.group(1)))
    return dom, images


def screenshot(browser: str, page: Path, destination: Path, work: Path) -> Path:
    """A PNG of ``page`` as Chromium draws it (1400 px wide, first 2400 px)."""
    _run(
        browser,
        work / "profile",
        "--window-size=1400,2400",
        "--hide-scrollbars",
        f"--screenshot={destination}",
        url=page.as_uri(),
    )
    assert destination.is_file() and destination.stat().st_size > 0
    return destination
