"""±inf is not a number a statistic can use: report, curves, `--epoch best` and the audit leave it out
and say which runs had it."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from pab_campaign.analysis.campaign.campaign import open_campaign
from pab_campaign.analysis.mbe.audit import AuditRequest, run_audit
from pab_campaign.analysis.summary.report import build_curves, build_report
from pab_campaign.metrics import MetricSpec
from tests.helpers import cli, write_run

LOSSES = {0: [2.0, 1.0, 0.50], 1: [2.0, 1.2, 0.60], 2: [2.0, 1.1, math.inf], 3: [2.0, 0.9, 0.40]}


def _campaign(root, infinite_loss_at: dict[int, list[float]] | None = None):
    """Four seeds of one configuration; seed 2 ends with val/loss = inf."""
    for seed, loss in {**LOSSES, **(infinite_loss_at or {})}.items():
        write_run(root, f"run-{seed}", {"optimizer.lr": 0.1, "seed": seed},
                  {("val", "loss"): loss, ("val", "acc"): [0.1, 0.5, 0.6 + seed / 100],
                   ("probe", "signal"): [0.0, float(seed), [0.3, 0.1, 0.8, 0.4][seed]]})
    return root


def test_report_leaves_inf_out_of_the_statistics_and_names_the_run(tmp_path):
    report = build_report(open_campaign(_campaign(tmp_path / "c")), metrics=["val/loss"])
    finite = [0.5, 0.6, 0.4]
    row = report.summary.iloc[0]
    assert row["val/loss.mean"] == np.mean(finite)
    assert row["val/loss.std"] == np.std(finite, ddof=1)
    assert row["val/loss.ci95"] == stats.t.ppf(0.975, 2) * np.std(finite, ddof=1) / math.sqrt(3)
    assert any("val/loss is ±inf" in note and "run-2" in note for note in report.notes)
    shown = cli(["report", str(tmp_path / "c"), "--metrics", "val/loss"])
    assert shown.returncode == 0, shown.stderr
    assert "val/loss is ±inf in 1 run(s) (run-2)" in " ".join(shown.stdout.split())


def test_best_epoch_is_the_minimum_finite_loss(tmp_path):
    campaign = open_campaign(_campaign(tmp_path / "c", {1: [2.0, -math.inf, 0.6]}))
    runs = campaign.runs.set_index("run_id")
    assert runs.loc["run-1", "best_epoch"] == 2 and runs.loc["run-1", "val/loss@best"] == 0.6
    assert runs.loc["run-0", "best_epoch"] == 2
    report = build_report(campaign, metrics=["val/acc"], epoch="best")
    assert report.summary.iloc[0]["val/acc.mean"] == np.mean([0.6, 0.61, 0.5, 0.63])  # run-2: epoch 1 (inf at 2)


def test_curves_leave_inf_out_and_say_so(tmp_path):
    campaign = open_campaign(_campaign(tmp_path / "c"))
    _, curves = build_curves(campaign, metrics=["val/loss"])
    last = curves[curves["epoch"] == 2].iloc[0]
    assert last["runs"] == 3 and last["mean"] == np.mean([0.5, 0.6, 0.4])
    assert any("val/loss is ±inf" in note and "run-2" in note for note in campaign.notes)


def test_audit_leaves_inf_out_and_names_the_run(tmp_path):
    root = _campaign(tmp_path / "c")
    write_run(root, "run-4", {"optimizer.lr": 0.1, "seed": 4},
              {("val", "loss"): [2.0, 1.3, 0.7], ("val", "acc"): [0.1, 0.5, 0.55], ("probe", "signal"): [0, 4, 0.9]})
    write_run(root, "run-5", {"optimizer.lr": 0.1, "seed": 5},
              {("val", "loss"): [2.0, 0.8, 0.3], ("val", "acc"): [0.1, 0.5, 0.7], ("probe", "signal"): [0, 5, 0.2]})
    write_run(root, "run-6", {"optimizer.lr": 0.1, "seed": 6},
              {("val", "loss"): [2.0, 1.0, 0.45], ("val", "acc"): [0.1, 0.5, 0.66],
               ("probe", "signal"): [0, math.inf, 0.5]})
    request = AuditRequest(metrics=[MetricSpec.parse("probe/signal")], baseline=MetricSpec.parse("val/loss@1"),
                           target=MetricSpec.parse("val/acc"), n_boot=50)
    result = run_audit(open_campaign(root), request)
    row = result.table.set_index("metric").loc["probe/signal@1"]
    assert row["n"] == 6
    values = result.data.values.drop(index="run-6")
    assert abs(row["raw_rho"] - stats.spearmanr(values["probe/signal@1"], values["val/acc"]).statistic) < 1e-12
    assert any("probe/signal@1 is ±inf" in note and "run-6" in note for note in result.notes)
