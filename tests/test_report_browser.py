"""Render a per-patient report in headless Chromium and check what a reader actually sees."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cytokit.report import ReportOptions, build_reports

from test_report import EVIL, make_results

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--allow-file-access-from-files",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.skip("no headless Chromium on this machine (.ci/run installs Debian's chromium package)")


def _run(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    root = make_results(tmp_path_factory.mktemp("browser_results"), patients=("P07", EVIL))
    written = build_reports(root, options=ReportOptions(pdf=False), generated="2026-01-01")
    return next(p for p in written if p.name == "P07.html"), next(p for p in written if p.name != "P07.html")


def test_rendered_dom_text_and_structure(report_html, tmp_path):
    exe = _chromium()
    page, evil_page = report_html
    dom = _run(exe, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    for heading in ("Identification", "Derived values", "Visit W0", "Visit W24", "Visit W74", "Quality control"):
        assert f">{heading}" in dom
    assert dom.count("<table") >= 8
    assert dom.count("<img") >= 7
    evil_dom = _run(exe, tmp_path / "profile2", "--dump-dom", evil_page.as_uri()).stdout
    assert "<script" not in evil_dom.lower()  # the patient id was rendered as text, not executed
    assert "&lt;script&gt;alert" in evil_dom


def test_screenshot_is_a_real_page(report_html, tmp_path):
    exe = _chromium()
    page, _ = report_html
    png = tmp_path / "shot.png"
    _run(exe, tmp_path / "profile", f"--screenshot={png}", "--window-size=1100,1600", page.as_uri())
    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert img.shape == (1600, 1100)
    dark = (img < 128).mean()
    assert 0.005 < dark < 0.5  # text and tables drawn, not a blank or black page
    assert img[:200].std() > 10  # the header area holds text
