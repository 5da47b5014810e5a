"""The campaign page's content, built from generated campaigns: sections, tables, inline figures,
the sections that say how to produce them, escaping, and the bad paths of `pab-campaign html`."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.page.charts import REGRESSION_POINTS
from pab_campaign.analysis.page.render import build_page, render
from pab_campaign.store import summary_dir
from tests.helpers import assert_one_line_error, cli, make_grid, write_planted_campaign, write_run

KEYS = ("0", "1", "2")


def _keyed_campaign(root):
    """A 2 x 2 grid whose runs also record per-class accuracy, first-learned epochs, spectra and attacks."""
    make_grid(root, seeds=2, epochs=4)
    for index, key in enumerate(KEYS):
        params = {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 9 + index}
        write_run(root, f"keyed-{key}", params,
                  {(c, m): [0.5, 0.6, 0.7, 0.8, 0.9] for c in ("train", "val", "test") for m in ("acc", "loss")}
                  | {("probe", "clean_acc"): [0.5] * 5},
                  keyed={**{("val", "class_acc", k): [0.1 * i for i in range(5)] for k in KEYS},
                         **{("val", "class_learned_epoch", k): [float("nan")] * 3 + [3.0, 3.0] for k in KEYS},
                         ("weights", "erank", "layer.0"): [5.0, 4.0, 3.0, 2.0, 1.0],
                         ("probe", "fgsm_acc", "0.1"): [0.3] * 5, ("probe", "pgd_acc", "0.1"): [0.2] * 5})
    return root


def test_every_section_is_present_and_analyses_not_run_say_how(tmp_path):
    page = build_page(open_campaign(_keyed_campaign(tmp_path / "c")), "pab-campaign html c")
    keys = [section.key for section in page.sections]
    assert keys == ["overview", "summary", "curves", "classes", "robustness", "spectra", "audit", "states", "diff"]
    missing = {section.key: section.missing for section in page.sections if section.missing}
    assert set(missing) == {"audit", "states", "diff"}
    assert "pab-campaign audit" in missing["audit"].command and "pab-campaign states" in missing["states"].command
    figures = {figure.key for section in page.sections for figure in section.figures}
    assert {"curves", "class-progression", "robustness-epsilon", "robustness-epochs", "spectra"} <= figures
    html = render(page)
    assert html.count("data:image/png;base64,") == len([f for s in page.sections for f in s.figures])
    # a table's title sits above it, not in a <caption> that would wrap to a narrow table's width
    assert re.search(r'<p class="table-title" id="table-overview-statuses">Runs by status \(.*?\)</p>\s*'
                     r'<table data-table="statuses" aria-labelledby="table-overview-statuses">', html)
    assert "<caption>" not in html
    assert not re.search(r"(src|href)=\"(https?:|//)", html)


def test_class_accuracy_without_first_learned_epochs_still_shows_its_progression(tmp_path):
    root = tmp_path / "c"
    make_grid(root, seeds=1, epochs=3)
    write_run(root, "keyed", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 9},
              {(c, m): [0.5, 0.6, 0.7, 0.8] for c in ("train", "val", "test") for m in ("acc", "loss")},
              keyed={("val", "class_acc", k): [0.1 * i for i in range(4)] for k in KEYS})
    (section,) = [s for s in build_page(open_campaign(root), "pab-campaign html c").sections if s.key == "classes"]
    assert section.missing is None
    (figure,) = section.figures
    assert figure.key == "class-progression"
    assert "recorded no val/class_learned_epoch" in figure.caption


def test_the_analyses_appear_once_they_wrote_their_files(tmp_path):
    campaign = tmp_path / "phases"
    write_planted_campaign(campaign, 20)
    audited = cli(["audit", str(campaign), "--metric", "weights/f0,weights/f1", "--baseline", "weights/f2@5",
                   "--target", "val/acc", "--n-boot", "50"])
    assert audited.returncode == 0, audited.stderr
    phases = cli(["states", str(campaign), "--metrics", "weights/f0,weights/f1,weights/f2,weights/f3",
                  "--max-states", "3", "--restarts", "2", "--jobs", "1"])
    assert phases.returncode == 0, phases.stderr
    comparison = summary_dir(campaign) / "diff" / "a_vs_b"
    comparison.mkdir(parents=True)
    pd.DataFrame({"comparison": ["B-A"], "direction": [1], "variance_a": [0.01], "variance_b": [0.05],
                  "residual_variance": [0.06]}).to_csv(comparison / "directions.csv", index=False)
    pd.DataFrame({"comparison": ["B-A"] * 3, "direction": [1] * 3, "subpopulation": ["train+", "train+", "val-"],
                  "label": [8, 3, 1], "count": [45, 5, 50], "share": [0.9, 0.1, 1.0]}).to_csv(
        comparison / "composition.csv", index=False)

    sections = {section.key: section for section in build_page(open_campaign(campaign), "cmd").sections}
    assert not any(sections[key].missing for key in ("audit", "states", "diff"))
    audit_rows = {row[1].text: row for row in sections["audit"].tables[0].rows}
    assert set(audit_rows) == {"weights/f2@5", "weights/f0@5", "weights/f1@5"}
    assert all(row[8].text in ("PASS", "loss proxy", "baseline") for row in audit_rows.values())
    assert len(sections["audit"].figures) == 2 and sections["audit"].notes
    for figure in sections["audit"].figures:  # the chart draws the PNG's rank-regression curve too
        xs, curve = [point[0] for point in figure.chart["points"]], np.array(figure.chart["curve"])
        assert curve.shape == (REGRESSION_POINTS, 2) and (curve[0, 0], curve[-1, 0]) == (min(xs), max(xs))
        steps = np.diff(curve[:, 1])
        assert (steps >= 0).all() or (steps <= 0).all()
    assert [table.key for table in sections["states"].tables][:2] == ["selection", "phases"]
    assert {figure.key for figure in sections["states"].figures} >= {"selection", "transitions"}
    composition = sections["diff"].tables[1]
    assert [cell.text for cell in composition.rows[0]] == ["B-A", "1", "8: 90%, 3: 10%", "1: 100%"]
    # a page of some runs says that the analyses were made over the runs their command was given
    chosen = build_page(open_campaign(campaign, where=["seed<3"]), "cmd", where=["seed<3"]).sections
    for section in chosen[-3:]:
        assert section.notes[0].startswith("computed by its own command over the runs it was given") and \
            "--where seed<3" in section.notes[0]
    assert not any(note.startswith("computed by its own command") for s in sections.values() for note in s.notes)


def test_text_from_the_campaign_is_escaped(tmp_path):
    campaign = tmp_path / "c"
    make_grid(campaign, seeds=2)
    write_run(campaign, "bad", {"model.name": "<script>alert(1)</script>", "seed": 1},
              {("val", "acc"): [0.1, 0.2]}, status="failed")
    html = render(build_page(open_campaign(campaign), "cmd"))
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_command_writes_the_page_and_refuses_a_missing_out_directory(tmp_path):
    campaign = tmp_path / "c"
    make_grid(campaign, seeds=2)
    result = cli(["html", str(campaign), "--out", str(tmp_path / "page.html")])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
    bad = cli(["html", str(campaign), "--out", str(tmp_path / "nowhere" / "page.html")])
    assert_one_line_error(bad, "--out", "does not exist")
    assert not (tmp_path / "nowhere").exists()
    folder = cli(["html", str(campaign), "--out", str(tmp_path)])
    assert_one_line_error(folder, f"--out {tmp_path} is a directory")


def test_the_page_names_the_command_given_and_keeps_the_campaigns_notes(tmp_path, monkeypatch, capsys):
    from pab_campaign.cli import main

    campaign = tmp_path / "c"
    make_grid(campaign, seeds=2)
    write_run(campaign, "inf", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 7},
              {("train", "loss"): [1.0, float("inf")], ("val", "loss"): [1.0, 0.5], ("val", "acc"): [0.1, 0.2]})
    monkeypatch.setattr("sys.argv", ["kernel", "-f", "/root/kernel.json"])  # as in a notebook
    assert main(["html", str(campaign)]) == 0
    page = (summary_dir(campaign) / "report.html").read_text()
    assert f"pab-campaign html {campaign}" in page and "kernel.json" not in page
    assert "train/loss is ±inf" in page and "train/loss is ±inf" in capsys.readouterr().out


def test_keyed_metrics_in_report_and_curves(tmp_path):
    campaign = _keyed_campaign(tmp_path / "c")
    curves = cli(["curves", str(campaign), "--metrics", "val/class_acc[*]"])
    assert curves.returncode == 0, curves.stderr
    frame = pd.read_parquet(next(summary_dir(campaign).glob("curves_*.parquet")))
    assert sorted(frame["label"].unique()) == [f"val/class_acc[{k}]" for k in KEYS]
    last = frame[(frame["label"] == "val/class_acc[2]") & (frame["epoch"] == 4)]
    assert last["mean"].item() == pytest.approx(0.4)
    report = cli(["report", str(campaign), "--metrics", "probe/fgsm_acc[*]", "val/class_acc[1]", "--epoch", "last"])
    assert report.returncode == 0, report.stderr
    assert "probe/fgsm_acc[0.1]" in report.stdout and "val/class_acc[1]" in report.stdout
    assert_one_line_error(cli(["report", str(campaign), "--metrics", "val/class_acc[7]"]),
                          "no key '7'", "0, 1, 2")


def test_a_page_while_no_run_has_completed_and_with_an_older_audit_file(tmp_path):
    campaign = tmp_path / "c"
    for seed in range(3):
        write_run(campaign, f"r{seed}", {"model.name": "mlp", "seed": seed},
                  {("val", "acc"): [0.1, 0.2], ("val", "loss"): [2.0, 1.5]}, status="running")
    summary_dir(campaign).mkdir(parents=True)
    pd.DataFrame({"group": ["all"], "metric": ["weights/erank@3"], "n": [3], "raw_rho": [0.5],
                  "verdict": ["survives"]}).to_csv(summary_dir(campaign) / "audit.csv", index=False)
    result = cli(["html", str(campaign)])
    assert result.returncode == 0, result.stderr
    page = build_page(open_campaign(campaign), "cmd")
    missing = {section.key: section.missing.text for section in page.sections if section.missing}
    assert missing["curves"].startswith("No run has completed yet")
    assert "written by an earlier version" in missing["audit"]
    assert [t.key for t in page.sections[0].tables][:2] == ["properties", "statuses"]


def test_the_csp_allows_exactly_the_inline_script_and_style_and_chart_data_cannot_end_its_block(tmp_path):
    import base64
    import hashlib
    import json
    from html import unescape

    campaign = tmp_path / "c"
    make_grid(campaign, seeds=2)
    write_run(campaign, "odd", {"model.name": "</script><script>alert(1)</script>", "model.hidden": 8,
                                "optimizer.lr": 0.1, "seed": 1},
              {("val", "acc"): [0.1, 0.2], ("val", "loss"): [2.0, 1.0]})
    html = render(build_page(open_campaign(campaign), "cmd"))
    policy = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    assert "unsafe" not in policy and "default-src 'none'" in policy and "img-src data:" in policy
    script = re.findall(r"<script>(.*?)</script>", html, re.S)
    style = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(script) == 1 and len(style) == 1 and "uPlot" in script[0]

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {digest(script[0])};" in policy and f"style-src {digest(style[0])};" in policy
    assert "<script>alert" not in html
    data = r'<script type="application/json" class="chart-data">(.*?)</script>'
    blocks = [json.loads(text) for text in re.findall(data, html, re.S)]
    curves = next(block for block in blocks if block["kind"] == "curves")
    names = {group["name"] for grouping in curves["groupings"] for group in grouping["groups"]}
    assert "model.name=</script><script>alert(1)</script>" in names
    assert [grouping["title"].split(" (")[0] for grouping in curves["groupings"]] == [
        "model.name, optimizer.lr", "model.name", "optimizer.lr", "all runs"]


def test_summary_rows_are_capped_errors_show_their_first_line_and_one_run_has_no_interval(tmp_path, monkeypatch):
    from pab_campaign.analysis.page import sections as page_sections
    from pab_campaign.store import RunRecord, read_run_json, run_dir, write_run_json

    for lr in (0.1, 0.2, 0.3):
        write_run(tmp_path, f"r{lr}", {"optimizer.lr": lr, "seed": 0}, {("val", "acc"): [0.1, 0.5 + lr]})
    write_run(tmp_path, "broken", {"optimizer.lr": 0.1, "seed": 1}, {("val", "acc"): [0.1, 0.2]}, status="failed")
    record = read_run_json(run_dir(tmp_path, "broken"))
    trace = "ValueError: the loss went away\n" + "\n".join(f'  File "x.py", line {i}' for i in range(30))
    write_run_json(run_dir(tmp_path, "broken"), RunRecord(**{**record.__dict__, "error": trace}))
    monkeypatch.setattr(page_sections, "MAX_SUMMARY_GROUPS", 2)
    sections = {s.key: s for s in build_page(open_campaign(tmp_path), "cmd").sections}
    last = sections["summary"].tables[0]
    assert len(last.rows) == 2 and "the first 2 of 3 groups" in last.caption
    assert all(row[1].text == "1" and "±" not in row[2].text for row in last.rows)  # one run: its value alone
    (problem,) = next(t for t in sections["overview"].tables if t.key == "problems").rows
    assert problem[3].text == "ValueError: the loss went away\n… 30 more lines in its run.json"
