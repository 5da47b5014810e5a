"""The campaign page opened in a real browser (Debian's chromium driven by Playwright): it renders
without console errors or network requests, every section and figure is there and non-empty, and
a run whose trajectory was deleted is listed under the unreadable runs. The screenshot is kept in
outputs/test-artifacts/ (or $PAB_TEST_ARTIFACTS).

Where chromium cannot be installed (not root, no apt) these tests skip and say why."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pab_campaign.store import TRAJECTORY, iter_run_dirs
from tests.helpers import REPO, cli

pytestmark = pytest.mark.slow
SECTIONS = ("overview", "summary", "curves", "classes", "robustness", "spectra", "audit", "states", "diff")
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary, installed by scripts/browser/install.sh when missing."""
    found = subprocess.run([str(REPO / "scripts" / "browser" / "install.sh")], capture_output=True, text=True,
                           timeout=900)
    if found.returncode == 3:
        pytest.skip(found.stderr.strip().splitlines()[-1])
    assert found.returncode == 0, found.stderr
    return found.stdout.strip().splitlines()[-1]


def artifacts() -> Path:
    folder = Path(os.environ.get("PAB_TEST_ARTIFACTS", REPO / "outputs" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(chromium: str, page_path: Path, screenshot: Path) -> dict:
    """Load `page_path` headless; the console messages, requested URLs, load time (s), and per
    section and figure what the browser rendered."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        console, requests = [], []
        page.on("console", lambda message: console.append((message.type, message.text)))
        page.on("pageerror", lambda error: console.append(("pageerror", str(error))))
        page.on("request", lambda request: requests.append(request.url))
        started = time.monotonic()
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        loaded = time.monotonic() - started
        sections = page.eval_on_selector_all(
            "section", "nodes => nodes.map(n => [n.dataset.section, n.innerText.length, "
            "n.querySelector('[data-absent]') !== null])")
        figures = page.eval_on_selector_all(
            "figure img", "imgs => imgs.map(i => [i.closest('figure').dataset.figure, i.complete, i.naturalWidth, "
            "i.naturalHeight])")
        unreadable = page.eval_on_selector_all("table[data-table=unreadable] td",
                                               "cells => cells.map(c => c.innerText)")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return {"console": console, "requests": requests, "loaded": loaded, "sections": sections, "figures": figures,
            "unreadable": unreadable}


def test_demo_campaign_page_renders_every_section_offline(chromium, demo_campaign, tmp_path):
    campaign = tmp_path / "demo"
    # Other tests write analyses into the shared demo campaign; this page is of one with none yet.
    shutil.copytree(demo_campaign, campaign,
                    ignore=lambda folder, _: ["summary"] if folder == str(demo_campaign) else [])
    lost = sorted(iter_run_dirs(campaign))[0]
    (lost / TRAJECTORY).unlink()
    written = cli(["html", str(campaign)])
    assert written.returncode == 0, written.stderr
    page_path = campaign / "summary" / "report.html"
    assert str(page_path) in written.stdout
    assert page_path.stat().st_size < 5e6

    seen = open_page(chromium, page_path, artifacts() / "campaign_page.png")
    assert seen["console"] == []
    assert seen["requests"] == [page_path.resolve().as_uri()]
    by_section = {key: (length, absent) for key, length, absent in seen["sections"]}
    assert tuple(by_section) == SECTIONS
    assert all(length > 50 for length, _ in by_section.values())
    # The default tracking records classes and spectra but no robustness; no analysis has been run yet.
    assert {key for key, (_, absent) in by_section.items() if absent} == {"robustness", "audit", "states", "diff"}
    figures = {key: (complete, width, height) for key, complete, width, height in seen["figures"]}
    assert {"curves", "gaps", "class-progression", "spectra"} <= set(figures)
    assert all(complete and width > 200 and height > 100 for complete, width, height in figures.values())
    run_id, reason = seen["unreadable"]
    assert run_id == lost.name and "missing trajectory.parquet" in reason
    assert seen["loaded"] < 2.0, f"the page took {seen['loaded']:.2f} s to load"
