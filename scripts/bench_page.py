"""Size and load-to-interactive time of the campaign page for a synthetic N-run campaign, against a
12-run one measured in the same run (ratios printed). Runs are written with the project's own writer
(tests/helpers.write_run: run.json + trajectory.parquet); the page by `pab-campaign html`; the load in
headless chromium (one launch) until the page's charts have mounted (body[data-interactive=ready]).
Budgets: 12 runs <= 3 MB; 2,000 runs <= 10 MB and interactive in <= 2 s.

    python scripts/bench_page.py --runs 2000 --epochs 30
"""
from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.helpers import write_run  # noqa: E402


def write_campaign(root: Path, runs: int, epochs: int, seed: int = 0) -> None:
    """`runs` runs over model (2) × lr (10) × width (10) × seeds, val/test/train loss and accuracy per epoch."""
    rng = np.random.default_rng(seed)
    grid = itertools.product(range(runs // 200 + 1), ("mlp", "cnn"), np.geomspace(1e-3, 0.3, 10).round(5),
                             (8, 16, 32, 48, 64, 96, 128, 192, 256, 512))
    epoch = np.arange(epochs + 1)
    for index, (s, model, lr, width) in zip(range(runs), grid):
        rate = 0.05 + lr + rng.uniform(0, 0.05)
        loss = 2.3 * np.exp(-rate * epoch) + 0.01 + rng.normal(0, 0.01, epochs + 1).clip(-0.005)
        values = {(c, "loss"): list(loss * (1 + 0.1 * k)) for k, c in enumerate(("train", "val", "test"))}
        values |= {(c, "acc"): list(1 - np.exp(-rate * epoch) * 0.9) for c in ("train", "val", "test")}
        write_run(root, f"r{index:05d}", {"model.name": model, "optimizer.lr": float(lr), "model.width": width,
                                          "seed": s}, values)


def build(campaign: Path) -> tuple[Path, float]:
    """The page of `campaign` and the seconds `pab-campaign html` took."""
    started = time.monotonic()
    out = campaign.parent / f"{campaign.name}.html"
    subprocess.run([sys.executable, "-m", "pab_campaign.cli", "html", str(campaign), "--out", str(out)], check=True,
                   capture_output=True, cwd=REPO)
    return out, time.monotonic() - started


def load(browser, page_path: Path, repeats: int = 3) -> tuple[float, list, list]:
    """Median seconds from navigation to interactive, the console messages and requested URLs."""
    times, console, requests = [], [], []
    for _ in range(repeats):
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        page = context.new_page()
        page.on("console", lambda message: console.append(message.text))
        page.on("request", lambda request: requests.append(request.url))
        started = time.monotonic()
        page.goto(page_path.as_uri(), wait_until="load")
        page.wait_for_selector("body[data-interactive=ready]", timeout=30_000)
        times.append(time.monotonic() - started)
        context.close()
    return float(np.median(times)), console, sorted(set(requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = subprocess.run([str(REPO / "scripts" / "browser" / "install.sh")], capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for runs in (12, args.runs):
            campaign = Path(tmp) / f"c{runs}"
            started = time.monotonic()
            write_campaign(campaign, runs, args.epochs)
            written = time.monotonic() - started
            page, seconds = build(campaign)
            results[runs] = (page, written, seconds, page.stat().st_size / 1e6)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for runs, (page, written, seconds, size) in results.items():
                ready, console, requests = load(browser, page)
                results[runs] += (ready,)
                print(f"{runs:>5} runs × {args.epochs} epochs: wrote runs in {written:.1f} s, page built in "
                      f"{seconds:.1f} s, {size:.2f} MB, interactive in {ready:.2f} s (median of 3); "
                      f"console: {console or 'clean'}; requests other than the file: "
                      f"{[r for r in requests if r != page.as_uri()] or 'none'}")
            browser.close()
        small, large = results[12], results[args.runs]
        print(f"ratio {args.runs} / 12 runs: size {large[3] / small[3]:.2f}×, interactive time "
              f"{large[4] / small[4]:.2f}×, build time {large[2] / small[2]:.2f}×")
        print(f"budgets: 12-run page {small[3]:.2f} MB (≤ 3), {args.runs}-run page {large[3]:.2f} MB (≤ 10), "
              f"interactive {large[4]:.2f} s (≤ 2)")


if __name__ == "__main__":
    main()
