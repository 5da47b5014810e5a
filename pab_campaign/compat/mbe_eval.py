"""mbe-eval's API (mbe-eval 0.1.0, `from mbe_eval import MBEEvaluator`) over our Marginal Baseline
Eval: the same signature, order of arguments, report fields, printed table and two-panel figure.

Replace ``from mbe_eval import MBEEvaluator`` by ``from pab_campaign.compat.mbe_eval import
MBEEvaluator``; the verdict is the same (mbe-eval's rule, checked against mbe-eval in the tests), the
report adds the number of runs, bootstrap intervals, the effect class and a one-line diagnosis.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rich.panel import Panel

from pab_campaign.analysis.mbe.arrays import MBEReport, evaluate, simulate
from pab_campaign.analysis.mbe.figures import audit_figure
from pab_campaign.analysis.plots.style import save_png
from pab_campaign.errors import ConfigError
from pab_campaign.render import Cell, Column, console, print_line, print_table, styled

__all__ = ["MBEEvaluator", "MBEReport", "simulate_mbe_evaluation"]

TARGET_NAME = "Final Target"
DPI = 300  # as mbe-eval writes its figure
N_BOOT = 1000


# Characters of a metric name that would make its figure's file name a path (mbe-eval keeps the rest).
_SEPARATORS = re.compile(r"[/\\\0]")

class MBEEvaluator:
    """mbe-eval's evaluator: is a metric more than a proxy of a trivial baseline (e.g. early
    validation loss) in predicting a final target?

    Examples
    --------
    mbe-eval's demo (30 runs; the proposed metric is the early loss plus noise):

    >>> import tempfile
    >>> from pab_campaign.analysis.mbe.arrays import simulate
    >>> runs = simulate()
    >>> evaluator = MBEEvaluator("Gradient L2 Norm", "Validation Loss")
    >>> with tempfile.TemporaryDirectory() as folder:  # doctest: +ELLIPSIS
    ...     report = evaluator.evaluate(runs.loss_proxy, runs.early_loss, runs.final_acc, output_dir=folder)
    ╭...
    >>> report.is_loss_proxy, round(report.absolute_r, 3), round(report.partial_p, 2)
    (True, -0.952, 0.68)
    """

    def __init__(self, metric_name: str = "Proposed Metric", baseline_name: str = "Validation Loss") -> None:
        self.metric_name = metric_name
        self.baseline_name = baseline_name

    def evaluate(self, metric_vals: Sequence[float], baseline_vals: Sequence[float], target_vals: Sequence[float],
                 alpha: float = 0.05, output_dir: str | Path = "mbe_reports") -> MBEReport:
        """Stage 1 (Spearman ρ of metric and target) and stage 4 (partial Spearman ρ given the
        baseline), as mbe-eval: prints the table and the diagnosis, writes the two-panel figure
        `mbe_report_<metric_name>.png` (dpi 300) into `output_dir`, and returns the report.

        Parameters
        ----------
        metric_vals, baseline_vals, target_vals : sequence of float, shape (n,)
            One value per run, in mbe-eval's order: the metric, the baseline, the target.
        alpha : float
            Significance level: stage 1 passes when p < alpha, the metric is a loss proxy when the
            partial p > alpha.
        output_dir : str or Path
            Folder of the figure (created if needed).

        Returns
        -------
        MBEReport
            mbe-eval's fields (`metric_name, baseline_name, absolute_r, absolute_p, partial_r,
            partial_p, is_loss_proxy`) and ours (`n`, `stage1`, `effect_class`, bootstrap intervals,
            `diagnosis`). `is_loss_proxy` is None under 5 runs or when the metric or the target is constant
            (no rank correlation; mbe-eval decides anyway).
        """
        metric, baseline, target = (
            _one_value_per_run(name, values) for name, values in
            (("metric_vals", metric_vals), ("baseline_vals", baseline_vals), ("target_vals", target_vals)))
        console.print(Panel(styled(f"Marginal Baseline Eval (MBE) - {self.metric_name}", "bold cyan")))
        report = evaluate(metric, target=target, baseline=baseline, alpha=alpha, n_boot=N_BOOT,
                          metric_name=self.metric_name, target_name=TARGET_NAME, baseline_name=self.baseline_name)
        _print_report(report)
        path = Path(output_dir) / f"mbe_report_{_SEPARATORS.sub('_', self.metric_name.replace(' ', '_'))}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        values = pd.DataFrame({self.metric_name: metric, TARGET_NAME: target})
        figure = audit_figure(values, None, _audit_rows(report), self.metric_name, TARGET_NAME, self.baseline_name,
                              "mbe-eval report", report.alpha)
        save_png(figure, path, DPI)
        print_line(f"Generated graphical report at: {path}", "dim")
        return report


def _one_value_per_run(name: str, values: Sequence[float]) -> np.ndarray:
    """`values` as a float vector (a column or row of one value per run too); ConfigError for any
    other shape."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must hold numbers, one per run ({exc})") from None
    if array.ndim == 2 and 1 in array.shape:
        array = array.ravel()
    if array.ndim != 1:
        raise ConfigError(f"{name} has shape {array.shape}; give one value per run (a list or a 1-D array)")
    return array


def _verdict(report: MBEReport) -> str:
    """Stage 4 as the audit table names it: PASS, loss proxy, or why there is none."""
    if report.is_loss_proxy is None:
        return report.effect_class
    return "loss proxy" if report.is_loss_proxy else "PASS"


def _audit_rows(report: MBEReport) -> pd.DataFrame:
    """The one row of the audit table that the audit figure draws for `report`."""
    return pd.DataFrame([{
        "group": "all", "n": report.n, "raw_rho": report.absolute_r, "raw_p": report.absolute_p,
        "raw_p_adj": report.absolute_p, "raw_ci_low": report.absolute_ci[0], "raw_ci_high": report.absolute_ci[1],
        "stage1": report.stage1, "partial_rho": report.partial_r, "partial_p": report.partial_p,
        "partial_p_adj": report.partial_p, "partial_ci_low": report.partial_ci[0],
        "partial_ci_high": report.partial_ci[1], "verdict": _verdict(report), "effect_class": report.effect_class,
    }])


def _print_report(report: MBEReport) -> None:
    """mbe-eval's table (stage, test, correlation, p-value, verdict) and its diagnosis line."""
    stage4 = _verdict(report)
    green, red = "bold green", "bold red"
    rows: list[list[Cell]] = [
        ["1: Absolute", f"Correlation with {TARGET_NAME}", f"{report.absolute_r:.3f}", f"{report.absolute_p:.2e}",
         styled(report.stage1 or "-", green if report.stage1 == "PASS" else red)],
        ["4: MBE Control", f"Controlling for {report.baseline_name}", f"{report.partial_r:.3f}",
         f"{report.partial_p:.2e}", styled("PASS" if stage4 == "PASS" else "FAIL", green if stage4 == "PASS" else red)],
    ]
    columns: list[str | Column] = [Column("Stage", style="dim"), "Test", Column("Correlation", "right"),
                                   Column("p-value", "right"), Column("Verdict", "center")]
    print_table("MBE Evaluation Results", columns, rows)
    print_line(f"DIAGNOSIS: {report.diagnosis}", green if stage4 == "PASS" else red)


def simulate_mbe_evaluation() -> MBEReport:
    """mbe-eval's sample run: its 30 simulated runs (seed 42) and its proposed metric, a disguised
    loss proxy; prints its stage-1 Pearson r, then evaluates the metric and returns the report
    (mbe-eval 0.1.0's own demo stops with a KeyError under pingouin >= 0.7).

    >>> simulate_mbe_evaluation().is_loss_proxy  # doctest: +ELLIPSIS
    Stage 1 ...: r = -0.938 (p = 1.872e-14)
    ...
    True
    """
    from scipy.stats import pearsonr

    runs = simulate()
    pearson = pearsonr(runs.loss_proxy, runs.final_acc)
    print(f"Stage 1 (the demo's Pearson check) of the Proposed Metric with Final Accuracy: "
          f"r = {pearson.statistic:.3f} (p = {pearson.pvalue:.3e})")
    report = evaluate(runs.loss_proxy, target=runs.final_acc, baseline=runs.early_loss, n_boot=N_BOOT,
                      metric_name="Proposed Metric", target_name=TARGET_NAME, baseline_name="Validation Loss")
    print(f"Marginal (partial Spearman) ρ controlling for the early validation loss: {report.partial_r:.3f} "
          f"(p = {report.partial_p:.3f})")
    print(f"DIAGNOSIS: {report.diagnosis}")
    return report
