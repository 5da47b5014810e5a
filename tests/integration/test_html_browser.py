"""The campaign page opened in a real browser (Debian's chromium driven by Playwright), once with
scripts on and once off, in one browser launch: no console error and no request other than the file
itself either way; every section and figure is there; with scripts on the charts mount and work
(hovering a curve shows group, epoch, mean and CI; a legend click hides a group; a log y axis redraws);
with scripts off the PNG figures show. Screenshots of both are kept in outputs/test-artifacts/ (or
$PAB_TEST_ARTIFACTS).

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


def visit(browser, page_path: Path, scripts: bool, screenshot: Path) -> dict:
    """Load `page_path` with scripts on or off; the console messages, requested URLs, seconds until
    interactive (scripts on) or loaded, what each section and figure rendered, and, with scripts on,
    what hovering, a legend click and the log toggle did."""
    context = browser.new_context(viewport={"width": 1300, "height": 900}, java_script_enabled=scripts)
    page = context.new_page()
    console, requests, seen = [], [], {}
    page.on("console", lambda message: console.append((message.type, message.text)))
    page.on("pageerror", lambda error: console.append(("pageerror", str(error))))
    page.on("request", lambda request: requests.append(request.url))
    started = time.monotonic()
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    if scripts:
        page.wait_for_selector("body[data-interactive=ready]", timeout=10_000)
    seen["ready"] = time.monotonic() - started
    seen["sections"] = page.eval_on_selector_all(
        "section", "nodes => nodes.map(n => [n.dataset.section, n.innerText.length, "
        "n.querySelector('[data-absent]') !== null])")
    seen["pictures"] = page.eval_on_selector_all(
        "figure img", "imgs => imgs.map(i => [i.closest('figure').dataset.figure, i.complete, i.naturalWidth, "
        "i.naturalHeight, i.getBoundingClientRect().height])")
    seen["unreadable"] = page.eval_on_selector_all("table[data-table=unreadable] td",
                                                   "cells => cells.map(c => c.innerText)")
    page.screenshot(path=str(screenshot), full_page=True)
    seen["below_nav"] = [_jump(page, "summary")]
    if scripts:  # a narrow window wraps the nav onto more lines
        page.set_viewport_size({"width": 480, "height": 900})
        seen["below_nav"].append(_jump(page, "curves"))
        seen["log_label"] = page.evaluate("() => { const label = document.querySelector('label.toggle'); "
                                          "return label.getBoundingClientRect().height "
                                          "/ parseFloat(getComputedStyle(label).lineHeight); }")
        page.set_viewport_size({"width": 1300, "height": 900})
        seen |= _interact(page)
    context.close()
    return seen | {"console": console, "requests": requests}


def _jump(page, section: str) -> float:
    """Click the nav link to `section`: pixels from the bottom of the sticky nav down to the top of
    the section's heading (negative: the nav hides it)."""
    page.click(f"nav a[href='#{section}']")
    return page.evaluate(f"() => document.querySelector('#{section} h2').getBoundingClientRect().top"
                         " - document.querySelector('nav').getBoundingClientRect().bottom")


def _interact(page) -> dict:
    """Hover the first curves panel, click the first legend entry, choose a log y axis."""
    figure = page.locator("figure[data-figure=curves]")
    seen = {"mounted": page.eval_on_selector_all("figure.mounted", "f => f.map(x => x.dataset.figure)")}
    over = figure.locator(".panel").first.locator(".u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_selector(".tip.on", timeout=5_000)
    seen["tooltip"] = page.inner_text(".tip")
    first = figure.locator(".legend .item").first
    seen["legend_group"] = first.get_attribute("data-group")
    first.click()
    seen["legend_off"] = "off" in (first.get_attribute("class") or "")
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    seen["tooltip_after_hide"] = page.inner_text(".tip")
    seen["titles_auto"] = figure.locator(".u-title").all_inner_texts()
    figure.locator("select[data-control=yscale]").select_option("log")
    seen["titles_log"] = figure.locator(".u-title").all_inner_texts()
    gaps = page.locator("figure[data-figure=gaps]")
    gaps.locator("select[data-control=yscale]").select_option("log")
    seen["gap_titles_log"] = gaps.locator(".u-title").all_inner_texts()
    seen["still_off"] = "off" in (figure.locator(".legend .item").first.get_attribute("class") or "")
    seen["captions"] = [figure.locator("figcaption").inner_text()]
    select = figure.locator("select[data-control=groupby]")
    for value in select.locator("option").evaluate_all("options => options.map(o => o.value)")[1:]:
        select.select_option(value)
        seen["captions"].append(figure.locator("figcaption").inner_text())
    return seen


def test_demo_campaign_page_offline_with_scripts_on_and_off(chromium, demo_campaign, tmp_path):
    from playwright.sync_api import sync_playwright

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
    assert page_path.stat().st_size < 3e6

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_FLAGS)
        on = visit(browser, page_path, True, artifacts() / "campaign_page_js_on.png")
        off = visit(browser, page_path, False, artifacts() / "campaign_page_js_off.png")
        browser.close()

    for seen in (on, off):
        assert seen["console"] == []
        assert seen["requests"] == [page_path.resolve().as_uri()]
        by_section = {key: (length, absent) for key, length, absent in seen["sections"]}
        assert tuple(by_section) == SECTIONS
        assert all(length > 50 for length, _ in by_section.values())
        # The default tracking records classes and spectra but no robustness; no analysis has been run yet.
        assert {key for key, (_, absent) in by_section.items() if absent} == {"robustness", "audit", "states", "diff"}
        run_id, reason = seen["unreadable"]
        assert run_id == lost.name and "missing trajectory.parquet" in reason
        assert seen["ready"] < 2.0, f"the page took {seen['ready']:.2f} s"
        assert all(gap >= 0 for gap in seen["below_nav"]), seen["below_nav"]  # a jump's heading is not under the nav
    # Scripts off: every figure is a picture on the page.
    pictures = {key: rest for key, *rest in off["pictures"]}
    assert {"curves", "gaps", "class-progression", "spectra"} <= set(pictures)
    assert all(complete and width > 200 and height > 100 and shown > 100
               for complete, width, height, shown in pictures.values())
    # Scripts on: the curves are charts (their pictures hidden), the others stay pictures.
    assert {"curves", "gaps"} <= set(on["mounted"])
    shown = {key: height for key, _, _, _, height in on["pictures"]}
    assert shown["curves"] == 0 and shown["class-progression"] > 100
    tooltip = on["tooltip"]
    assert "model.name=" in tooltip and "at epoch" in tooltip and "mean" in tooltip and "CI95" in tooltip
    assert "runs" in tooltip
    assert on["log_label"] < 1.5  # 'log y' on one line in a narrow window
    assert on["legend_off"] and on["legend_group"] not in on["tooltip_after_hide"].splitlines()[0]
    assert all(title.endswith("(log y)") for title in on["titles_log"]) and on["still_off"]
    # By default only a loss spanning more than two decades is on a log scale, never an accuracy.
    assert not any(title.endswith("(log y)") for title in on["titles_auto"] if "/acc" in title)
    # A panel with values at or below zero (a generalization gap) stays linear, and says why.
    assert any(title.endswith("(linear: has values ≤ 0)") for title in on["gap_titles_log"])
    # The caption tells what the chosen grouping shows: the finest first, all runs as one group last.
    captions = on["captions"]
    assert len(captions) >= 3 and len(set(captions)) == len(captions)
    assert "grouped by model.name" in captions[0] and "all runs as one group" in captions[-1]
    assert all(caption.startswith("Loss (nats) and accuracy per split. Lines:") for caption in captions)
