"""The campaign page's content, built from generated campaigns: sections, tables, inline figures,
the sections that say how to produce them, escaping, and the bad paths of `pab-campaign html`."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from pab_campaign.analysis.campaign import open_campaign
from pab_campaign.analysis.html import build_page, render
from pab_campaign.store import summary_dir
from tests.helpers import assert_one_line_error, cli, make_grid, write_run

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
    assert not re.search(r"(src|href)=\"(https?:|//)", html)


def test_audit_results_appear_once_an_audit_wrote_them(tmp_path):
    campaign = _keyed_campaign(tmp_path / "c")
    summary_dir(campaign).mkdir()
    pd.DataFrame({"metric": ["probe/x@3"], "partial_rho": [0.12]}).to_csv(summary_dir(campaign) / "audit.csv",
                                                                          index=False)
    page = build_page(open_campaign(campaign), "cmd")
    audit = next(section for section in page.sections if section.key == "audit")
    assert audit.missing is None and audit.tables[0].rows[0][0].text == "probe/x@3"


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
