"""`audit`: the Marginal Baseline Eval — do candidate metrics predict the target beyond a baseline?"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from pab_campaign.cli.common import Commands, SplitList, print_skipped
from pab_campaign.render import Cell, Column, fmt, print_line, print_table, styled

if TYPE_CHECKING:
    import pandas as pd

VERDICT_STYLES = {"survives": "green", "washout": "red", "sign-inversion": "magenta", "reverse-inversion": "magenta",
                  "hidden-after-control": "cyan", "baseline": "bold", "constant": "yellow"}


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]"


def _print_audit_table(title: str, rows: pd.DataFrame) -> None:
    """The audit table: one row per metric (per group, each group its own section when grouped)."""
    grouped = rows["group"].nunique() > 1
    left = ("group", "metric", "verdict")
    headers = (["group"] if grouped else []) + ["metric", "n", "raw ρ", "p", "raw CI", "partial ρ", "p",
                                                "partial CI", "verdict"]
    cells: list[list[Cell]] = []
    for row in rows.to_dict("records"):
        cells.append(([row["group"]] if grouped else []) + [
            row["metric"], str(row["n"]), fmt(row["raw_rho"], 3), fmt(row["raw_p"], 2),
            _interval(row["raw_ci_low"], row["raw_ci_high"]), fmt(row["partial_rho"], 3), fmt(row["partial_p"], 2),
            _interval(row["partial_ci_low"], row["partial_ci_high"]),
            styled(row["verdict"], VERDICT_STYLES.get(row["verdict"]))])
    last_metric = rows["metric"].iloc[-1]
    section_ends = {i for i, metric in enumerate(rows["metric"]) if grouped and metric == last_metric}
    print_table(title, [Column(h, justify="left" if h in left else "right") for h in headers], cells, section_ends)


def _print_driver_table(drivers: pd.DataFrame) -> None:
    """ρ of each metric (rows) with each driver per group (columns); * marks strictly monotone group means."""
    pivot = drivers.pivot_table(index="metric", columns=["driver", "group"], values="rho", sort=False, dropna=False)
    monotone = drivers.pivot_table(index="metric", columns=["driver", "group"], values="monotone", sort=False,
                                   dropna=False)
    columns = ["metric", *(Column(f"{driver}\n{group}", justify="right") for driver, group in pivot.columns)]
    rows = [[metric, *(fmt(v, 2) + ("*" if monotone.loc[metric, c] == 1 else "") for c, v in values.items())]
            for metric, values in pivot.iterrows()]
    print_table("Acid test — Spearman ρ of each metric with each driver (* = group means strictly monotone in the "
                "driver)", columns, rows)


def _written(paths: list[Path]) -> str:
    """'wrote a.csv, b.csv and 4 figures in <dir>' for the files `write_audit` returned."""
    files = [str(p) for p in paths if p.suffix != ".png"]
    figures = [p for p in paths if p.suffix == ".png"]
    if figures:
        files.append(f"{len(figures)} figures in {figures[0].parent}")
    return "wrote " + (", ".join(files[:-1]) + " and " + files[-1] if len(files) > 1 else files[0])


def cmd_audit(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.audit import AuditRequest, run_audit, write_audit
    from pab_campaign.analysis.campaign import MetricSpec, open_campaign

    campaign = open_campaign(args.campaign)
    request = AuditRequest(
        metrics=[MetricSpec.parse(m) for m in args.metric or []], baseline=MetricSpec.parse(args.baseline),
        target=MetricSpec.parse(args.target), controls=list(args.controls), at_epoch=args.at_epoch,
        groupby=args.groupby, drivers=list(args.drivers), all_metrics=args.all_metrics, n_boot=args.n_boot,
        seed=args.seed)
    result = run_audit(campaign, request)
    data = result.data
    controls = ", ".join([data.baseline, *data.numeric_controls, *data.categorical_controls])
    _print_audit_table(f"MBE audit — target {data.target} (last epoch); partial ρ given {controls}; "
                       f"bootstrap 95 % CI over {request.n_boot} resamples", result.table)
    if request.drivers:
        _print_driver_table(result.drivers)
    written = write_audit(campaign, result, plots=not args.no_plots)
    for note in result.notes:
        print_line(f"note: {note}", "yellow")
    print_line(_written(written))
    print_skipped(campaign.skipped)
    return 0


def _resamples(value: str) -> int:
    """`--n-boot`: a whole number ≥ 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--n-boot {value} must be >= 1, e.g. --n-boot 1000")
    return int(value)


def register(commands: Commands) -> None:
    audit = commands.add(
        "audit", cmd_audit,
        "MBE audit: do candidate metrics predict the target beyond a baseline? (raw vs partial Spearman ρ)",
        "pab-campaign audit outputs/mbe_heterogeneous_grid --metric probe/fim_norm --baseline val/loss@20 "
        "--target val/acc\n"
        "         pab-campaign audit outputs/mbe_arch_invariance --all-metrics --baseline val/loss@20 "
        "--target val/acc --groupby model.norm --drivers dataset.train_fraction dataset.label_noise")
    candidates = audit.add_mutually_exclusive_group(required=True)
    candidates.add_argument("--metric", nargs="+", action=SplitList,
                            help="candidate metrics, context/metric[key]@epoch")
    candidates.add_argument("--all-metrics", action="store_true", help="every scalar metric the campaign tracked")
    audit.add_argument("--baseline", required=True, help="the trivial baseline, e.g. val/loss@20")
    audit.add_argument("--target", required=True, help="the final result, e.g. val/acc (taken at the last epoch)")
    audit.add_argument("--controls", nargs="+", action=SplitList, default=[],
                       help="further controls: hyper-parameters (numbers ranked, text one-hot) or metrics")
    audit.add_argument("--at-epoch", type=int, default=None,
                       help="epoch K of candidates and baseline (default: the baseline's @epoch, else the last)")
    audit.add_argument("--groupby", default=None, help="also audit within each value of this hyper-parameter")
    audit.add_argument("--drivers", nargs="+", action=SplitList, default=[],
                       help="numeric hyper-parameters to correlate every metric with (acid test), per group")
    audit.add_argument("--n-boot", type=_resamples, default=1000, help="bootstrap resamples of runs (default 1000)")
    audit.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    audit.add_argument("--no-plots", action="store_true", help="skip the per-metric PNG figures")
