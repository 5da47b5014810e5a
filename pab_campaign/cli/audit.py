"""`audit`: the Marginal Baseline Eval — do candidate metrics predict the target beyond a baseline?"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from pab_campaign.cli.common import (
    Commands,
    SplitList,
    add_campaign_filter,
    add_json_flag,
    add_output_options,
    print_json,
    print_skipped,
    whole_number,
)
from pab_campaign.errors import CampaignError
from pab_campaign.render import Cell, Column, fmt, print_line, print_table, styled

if TYPE_CHECKING:
    import pandas as pd

VERDICT_STYLES = {"PASS": "green", "FAIL": "red", "loss proxy": "bold red", "baseline": "bold",
                  "constant": "yellow", "insufficient-data": "yellow"}
# The choices of --correction: those of analysis.stats.CORRECTIONS (a test keeps the two equal), written
# out so that parsing the command line imports no numerical library.
CORRECTIONS = ("holm", "fdr_bh", "none")
CLASS_STYLES = {"survives": "green", "washout": "red", "sign-inversion": "magenta", "reverse-inversion": "magenta",
                "hidden-after-control": "cyan", "inconclusive": "dim", "baseline": "bold", "constant": "yellow"}


def _rho(rho: float, low: float, high: float, digits: int) -> str:
    """'-0.509 [-0.67, -0.28]': ρ to `digits` significant digits, its interval to two decimals ('-'
    when there is no ρ)."""
    if math.isnan(rho):
        return "-"
    return fmt(rho, digits) + ("" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]")


def _p(p: float, adjusted: float, digits: int) -> str:
    """'1.7e-05 → 3.4e-05': the raw p and the adjusted one ('-' when there is none)."""
    if math.isnan(p):
        return "-"
    return fmt(p, digits) + ("" if math.isnan(adjusted) else f" → {fmt(adjusted, digits)}")


def _print_audit_tables(title: str, table: pd.DataFrame, digits: int) -> None:
    """The audit table, one per group (all runs first): one row per metric."""
    headers = ["metric", "n", "raw ρ [95 % CI]", "p → adjusted", "stage 1", "partial ρ [95 % CI]", "p → adjusted",
               "stage 4", "effect class"]
    left = ("metric", "stage 1", "stage 4", "effect class")
    columns = [Column(h, justify="left" if h in left else "right") for h in headers]
    groups = list(dict.fromkeys(table["group"]))
    for group in groups:
        cells: list[list[Cell]] = []
        for row in table[table["group"] == group].to_dict("records"):
            cells.append([
                row["metric"], str(row["n"]), _rho(row["raw_rho"], row["raw_ci_low"], row["raw_ci_high"], digits),
                _p(row["raw_p"], row["raw_p_adj"], digits),
                styled(row["stage1"] or "-", VERDICT_STYLES.get(row["stage1"])),
                _rho(row["partial_rho"], row["partial_ci_low"], row["partial_ci_high"], digits),
                _p(row["partial_p"], row["partial_p_adj"], digits),
                styled(row["verdict"], VERDICT_STYLES.get(row["verdict"])),
                styled(row["effect_class"], CLASS_STYLES.get(row["effect_class"]))])
        heading = title if group == groups[0] else f"group {group}"
        print_table(heading + (" — all runs" if len(groups) > 1 and group == groups[0] else ""), columns, cells)


def _print_diagnoses(rows: pd.DataFrame) -> None:
    """One DIAGNOSIS line per tested candidate of the pooled group (every group's are in the CSV)."""
    pooled = rows[(rows["group"] == rows["group"].iloc[0]) & rows["verdict"].isin(["PASS", "loss proxy"])]
    for row in pooled.itertuples():
        print_line(f"DIAGNOSIS {row.diagnosis}", "red" if row.verdict == "loss proxy" else "green")


def _print_driver_table(drivers: pd.DataFrame, family: int, correction: str, alpha: float, digits: int) -> None:
    """ρ of each metric (rows) with each driver per group (columns); * marks strictly monotone group
    means, green a ρ whose adjusted p ≤ α."""
    columns: list[str | Column] = ["metric"]
    cells: dict[str, list[Cell]] = {}
    for (driver, group), part in drivers.groupby(["driver", "group"], sort=False):
        columns.append(Column(f"{driver}\n{group}", justify="right"))
        for row in part.itertuples():
            text = fmt(row.rho, digits) + ("*" if row.monotone else "")
            cells.setdefault(row.metric, [row.metric]).append(styled(text, "green" if row.p_adj <= alpha else None))
    print_table(f"Acid test — Spearman ρ of each metric with each driver (* = group means strictly monotone in the "
                f"driver; green = adjusted p ≤ {alpha:g}, {correction} adjustment over {family} driver tests)",
                columns, list(cells.values()))


def _written(paths: list[Path]) -> str:
    """'wrote a.csv, b.csv and 4 figures in <dir>' for the files `write_audit` returned."""
    files = [str(p) for p in paths if p.suffix != ".png"]
    figures = [p for p in paths if p.suffix == ".png"]
    if figures:
        files.append(f"{len(figures)} figures in {figures[0].parent}")
    return "wrote " + (", ".join(files[:-1]) + " and " + files[-1] if len(files) > 1 else files[0])


def cmd_audit(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign.campaign import open_campaign
    from pab_campaign.analysis.mbe.audit import AuditRequest, run_audit, write_audit
    from pab_campaign.metrics import MetricSpec

    campaign = open_campaign(args.campaign, args.campaign_id, args.where)
    request = AuditRequest(
        metrics=[MetricSpec.parse(m) for m in args.metric or []], baseline=MetricSpec.parse(args.baseline),
        target=MetricSpec.parse(args.target), controls=list(args.controls), at_epoch=args.at_epoch,
        groupby=args.groupby, drivers=list(args.drivers), all_metrics=args.all_metrics, n_boot=args.n_boot,
        seed=args.seed, alpha=args.alpha, correction=args.correction)
    try:
        result = run_audit(campaign, request)
    except CampaignError:
        print_skipped(campaign.skipped, campaign.notes)
        raise
    if args.as_json:
        written = write_audit(campaign, result, plots=not args.no_plots, campaign_ids=args.campaign_id,
                              output_folder=args.output_folder, dpi=args.dpi)
        print_json({"target": result.data.target, "baseline": result.data.baseline, "alpha": request.alpha,
                    "correction": request.correction, "family": result.family,
                    "candidates": result.table.to_dict("records"), "drivers": result.drivers.to_dict("records"),
                    "notes": result.notes, "skipped": [list(pair) for pair in campaign.skipped],
                    "files": [str(path) for path in written]})
        return 0
    data = result.data
    controls = ", ".join([data.baseline, *data.numeric_controls, *data.categorical_controls])
    correction = {"holm": "Holm", "fdr_bh": "Benjamini–Hochberg", "none": "no"}[request.correction]
    _print_audit_tables(f"MBE audit — target {data.target} (last epoch); partial ρ given {controls}",
                        result.table, args.precision)
    partial_family = int(result.table["partial_family_size"].iloc[0]) if len(result.table) else result.family
    tests = f"{result.family} candidate × group test" + ("" if result.family == 1 else "s")
    families = (f"a family of {tests} per stage" if partial_family == result.family else
                f"families of {tests} (stage 1) and {partial_family} (stage 4: a candidate the controls rank "
                "entirely has no partial p)")
    print_line(f"α = {request.alpha:g}; p adjusted ({correction}) over {families}; stage 1 PASS when the "
               f"adjusted p < α; stage 4 PASS when the adjusted partial p ≤ α, "
               f"else a loss proxy; 95 % CI: bootstrap, {request.n_boot} resamples of runs")
    _print_diagnoses(result.table)
    if request.drivers:
        _print_driver_table(result.drivers, result.driver_family, correction, request.alpha, args.precision)
    written = write_audit(campaign, result, plots=not args.no_plots, campaign_ids=args.campaign_id,
                          output_folder=args.output_folder, dpi=args.dpi)
    for note in result.notes:
        print_line(f"note: {note}", "yellow")
    print_line(_written(written))
    print_skipped(campaign.skipped, campaign.notes)
    return 0


def _alpha(value: str) -> float:
    """`--alpha`: a significance level in (0, 1)."""
    try:
        alpha = float(value)
    except ValueError:
        alpha = math.nan
    if not 0 < alpha < 1:
        raise argparse.ArgumentTypeError(f"--alpha {value} must be a number in (0, 1), e.g. --alpha 0.05")
    return alpha


# The most bootstrap resamples `--n-boot` takes (time grows with them; memory does not).
MAX_RESAMPLES = 1_000_000


def register(commands: Commands) -> None:
    audit = commands.add(
        "audit", cmd_audit,
        "MBE audit: do candidate metrics predict the target beyond a baseline? (raw vs partial Spearman ρ)",
        "pab-campaign audit outputs/mbe_heterogeneous_grid --metric probe/fim_norm --baseline val/loss@20 "
        "--target test/acc\n"
        "         pab-campaign audit outputs/mbe_arch_invariance --all-metrics --baseline val/loss@20 "
        "--target test/acc --groupby model.norm --drivers dataset.train_fraction dataset.label_noise "
        "--correction fdr_bh\n"
        "the target is best a split the baseline was not measured on (test/acc for a val/loss baseline)")
    candidates = audit.add_mutually_exclusive_group(required=True)
    candidates.add_argument("--metric", nargs="+", action=SplitList,
                            help="candidate metrics, context/metric[key]@epoch")
    candidates.add_argument("--all-metrics", action="store_true", help="every scalar metric the campaign tracked")
    audit.add_argument("--baseline", required=True, help="the trivial baseline, e.g. val/loss@20")
    audit.add_argument("--target", required=True,
                       help="the final result, taken at the last epoch, e.g. test/acc (not the split of the baseline)")
    audit.add_argument("--controls", nargs="+", action=SplitList, default=[],
                       help="further controls: hyper-parameters (numbers ranked, text one-hot) or metrics")
    audit.add_argument("--at-epoch", type=int, default=None,
                       help="epoch K of the candidates, and of a baseline named without its own @epoch (a name's own "
                            "@epoch wins; default: the baseline's @epoch, else the last)")
    audit.add_argument("--groupby", default=None, help="also audit within each value of this hyper-parameter")
    audit.add_argument("--drivers", nargs="+", action=SplitList, default=[],
                       help="numeric hyper-parameters to correlate every metric with (acid test), per group")
    audit.add_argument("--alpha", type=_alpha, default=0.05,
                       help="significance level of both stages, in (0, 1) (default 0.05)")
    audit.add_argument("--correction", choices=CORRECTIONS, default="holm",
                       help="multiple-comparison adjustment over the candidate x group tests (and, apart, the "
                            "driver tests): holm (family-wise error, default), fdr_bh (false discovery rate), none")
    audit.add_argument("--n-boot", type=whole_number("--n-boot", 1, MAX_RESAMPLES, "1000"), default=1000,
                       help="bootstrap resamples of runs (default 1000)")
    audit.add_argument("--seed", type=whole_number("--seed", 0, 2**32 - 1, "0"), default=0,
                       help="seed of the bootstrap (default 0)")
    add_output_options(audit, precision=3, files="the CSVs and the figure folder")
    audit.add_argument("--dpi", type=whole_number("--dpi", 30, 1200, "150"), default=150,
                       help="resolution of the PNG figures (default 150)")
    audit.add_argument("--no-plots", action="store_true", help="skip the per-metric PNG figures")
    add_campaign_filter(audit)
    add_json_flag(audit)
