"""`pab-campaign COMMAND CAMPAIGN_DIR [options]`: thin parsing and rendering over the analysis
modules. It never imports torch, so it starts fast."""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from pab_campaign.analysis.campaign import MetricSpec, open_campaign
from pab_campaign.errors import CampaignError, PabError, one_line
from pab_campaign.store import RunStatus

console = Console(width=None if sys.stdout.isatty() else 160)


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}g}"
    return str(value)


def _print_skipped(skipped: list[tuple[str, str]]) -> None:
    for run_id, reason in skipped:
        console.print(f"[yellow]skipped run {run_id}: {reason}")


def cmd_ls(args: argparse.Namespace) -> int:
    campaign = open_campaign(args.campaign, args.campaign_id)
    runs = campaign.runs
    if args.status:
        runs = runs[runs["status"] == args.status]
    table = Table(title=f"{campaign.directory} — {len(runs)} runs")
    for column in ("run_id", "campaign", "status", "started_at", "duration_s", "epochs", "problem"):
        table.add_column(column, overflow="fold")
    for row in runs.itertuples():
        table.add_row(row.run_id, _fmt(row.campaign), row.status, _fmt(row.started_at), _fmt(row.duration_s, 3),
                      _fmt(row.epochs_done), _fmt(row.error or row.skip_reason))
    console.print(table)
    _print_skipped(campaign.skipped)
    return 0


def cmd_properties(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign import properties

    campaign = open_campaign(args.campaign, args.campaign_id)
    table = Table(title=f"{campaign.directory} — properties")
    table.add_column("property", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in properties(campaign):
        table.add_row(name, value)
    console.print(table)
    _print_skipped(campaign.skipped)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.report import build_report, write_report

    campaign = open_campaign(args.campaign, args.campaign_id)
    epoch = args.epoch
    try:
        report = build_report(campaign, args.groupby, args.contexts, args.metrics, epoch)
    except CampaignError:
        _print_skipped(campaign.skipped)
        raise
    table = Table(title=f"{campaign.directory} — completed runs at epoch '{epoch}' (mean ± ci95)")
    for column in [*report.groupby, "runs", *report.metrics, "duration_s"]:
        table.add_column(column, justify="right" if column not in report.groupby else "left")
    for row in report.summary.to_dict("records"):
        cells = [_fmt(row[g]) for g in report.groupby] + [str(row["runs"])]
        for metric in [*report.metrics, "duration_s"]:
            cells.append(f"{_fmt(row[f'{metric}.mean'])} ± {_fmt(row[f'{metric}.ci95'], 2)}")
        table.add_row(*cells)
    console.print(table)
    path = write_report(campaign, report, epoch, args.campaign_id)
    console.print(f"wrote {path} (index: {path.parent / 'runs.parquet'})")
    for note in report.notes:
        console.print(f"[cyan]note: {note}")
    _print_skipped(campaign.skipped)
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.report import build_curves, write_curves

    campaign = open_campaign(args.campaign, args.campaign_id)
    groupby, curves = build_curves(campaign, args.groupby, args.contexts, args.metrics)
    parquet, png = write_curves(campaign, groupby, curves, args.campaign_id)
    console.print(f"{curves['label'].nunique()} curves × {max(1, len(curves.groupby(groupby, dropna=False)) if groupby else 1)} "
                  f"groups over {curves['epoch'].nunique()} epochs: wrote {parquet} and {png}")
    _print_skipped(campaign.skipped)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.merge import merge

    result = merge(args.src, args.dst)
    for run_id, source in result.added:
        console.print(f"added {run_id} from {source}")
    for run_id, source, reason in result.skipped:
        console.print(f"[yellow]skipped {run_id} from {source}: {reason}")
    console.print(f"{args.dst}: added {len(result.added)} runs, skipped {len(result.skipped)}")
    return 0


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{low:.2f}, {high:.2f}]"


def cmd_audit(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.audit import AuditRequest, run_audit
    from pab_campaign.analysis.plots import audit_figure, figure_name, save_png
    from pab_campaign.store import atomic_write, summary_dir

    if args.n_boot < 1:
        raise CampaignError(f"--n-boot {args.n_boot} must be >= 1, e.g. --n-boot 1000")
    campaign = open_campaign(args.campaign)
    request = AuditRequest(
        metrics=[MetricSpec.parse(m) for m in args.metric or []], baseline=MetricSpec.parse(args.baseline),
        target=MetricSpec.parse(args.target), controls=list(args.controls), at_epoch=args.at_epoch,
        groupby=args.groupby, drivers=list(args.drivers), all_metrics=args.all_metrics, n_boot=args.n_boot,
        seed=args.seed)
    result = run_audit(campaign, request)
    data, rows = result.data, result.table
    controls = ", ".join([data.baseline, *data.numeric_controls, *data.categorical_controls])
    table = Table(title=f"MBE audit — target {data.target} (last epoch); partial ρ given {controls}; "
                        f"bootstrap 95 % CI over {request.n_boot} resamples")
    grouped = rows["group"].nunique() > 1
    headers = (["group"] if grouped else []) + ["metric", "n", "raw ρ", "p", "raw CI", "partial ρ", "p",
                                                "partial CI", "verdict"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("group", "metric", "verdict") else "right")
    styles = {"survives": "green", "washout": "red", "sign-inversion": "magenta", "reverse-inversion": "magenta",
              "hidden-after-control": "cyan", "baseline": "bold", "constant": "yellow"}
    for row in rows.to_dict("records"):
        style = styles.get(row["verdict"])
        cells = ([row["group"]] if grouped else []) + [
            row["metric"], str(row["n"]), _fmt(row["raw_rho"], 3), _fmt(row["raw_p"], 2),
            _interval(row["raw_ci_low"], row["raw_ci_high"]), _fmt(row["partial_rho"], 3), _fmt(row["partial_p"], 2),
            _interval(row["partial_ci_low"], row["partial_ci_high"]),
            f"[{style}]{row['verdict']}" if style else row["verdict"]]
        table.add_row(*cells, end_section=grouped and row["metric"] == rows["metric"].iloc[-1])
    console.print(table)
    out = summary_dir(campaign.directory)
    atomic_write(out / "audit.csv", lambda tmp: rows.to_csv(tmp, index=False))
    written = [out / "audit.csv"]
    if request.drivers:
        drivers = result.drivers
        pivot = drivers.pivot_table(index="metric", columns=["driver", "group"], values="rho", sort=False, dropna=False)
        monotone = drivers.pivot_table(index="metric", columns=["driver", "group"], values="monotone", sort=False, dropna=False)
        driver_table = Table(title="Acid test — Spearman ρ of each metric with each driver "
                                   "(* = group means strictly monotone in the driver)")
        driver_table.add_column("metric")
        for driver, group in pivot.columns:
            driver_table.add_column(f"{driver}\n{group}", justify="right")
        for metric, values in pivot.iterrows():
            driver_table.add_row(metric, *[_fmt(v, 2) + ("*" if monotone.loc[metric, c] == 1 else "")
                                           for c, v in values.items()])
        console.print(driver_table)
        atomic_write(out / "audit_drivers.csv", lambda tmp: drivers.to_csv(tmp, index=False))
        written.append(out / "audit_drivers.csv")
    if not args.no_plots:
        groups = data.hparams[request.groupby].rename(request.groupby) if request.groupby else None
        for metric in data.candidates:
            figure = audit_figure(data.values, groups, rows[rows["metric"] == metric], metric, data.target,
                                  data.baseline)
            save_png(figure, out / "audit" / figure_name(metric))
        written.append(out / "audit" / f"<metric>.png ({len(data.candidates)} figures)")
    for note in result.notes:
        console.print(f"[yellow]note: {note}")
    console.print("wrote " + ", ".join(str(p) for p in written))
    _print_skipped(campaign.skipped)
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pab_campaign.analysis.trajectory_summary import summarize_trajectory
    from pab_campaign.store import read_trajectory

    directory = Path(args.run_dir)
    if not directory.is_dir():
        raise CampaignError(f"{directory} is not a directory; give a run directory, e.g. outputs/demo/runs/<run_id>")
    try:
        frame = read_trajectory(directory).to_pandas()
    except PabError as exc:
        raise CampaignError(f"{exc}; give a run directory, e.g. outputs/demo/runs/<run_id>") from None
    table = Table(title=f"run {directory.name} — process summary, {int(frame['epoch'].max()) if len(frame) else 0} epochs")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summarize_trajectory(frame).items():
        table.add_row(name, _fmt(value))
    console.print(table)
    return 0


def _epoch(value: str) -> str | int:
    """`--epoch`: 'last', 'best' or an epoch number."""
    if value in ("last", "best"):
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"--epoch {value}: use last, best or an epoch number")
    return int(value)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the problem and where to look."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="pab-campaign",
        description="Analyse a pab_campaign campaign directory (written by `python -m pab_campaign -m`).",
        epilog="example: pab-campaign report outputs/demo --epoch best",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str, example: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=f"example: {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("campaign", metavar="CAMPAIGN_DIR", help="campaign directory, e.g. outputs/demo")
        sub.set_defaults(handler=handler)
        return sub

    def campaign_filter(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--campaign-id", nargs="+", default=None, metavar="NAME",
                         help="only runs whose run.json `campaign` is one of these (a merged campaign mixes several)")

    def grouping(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--groupby", nargs="*", default=None,
                         help="hyper-parameters to group by (default: all that vary, except the seed)")
        sub.add_argument("--contexts", nargs="+", default=None, help="contexts (default: val test)")
        sub.add_argument("--metrics", nargs="+", default=None,
                         help="metrics crossed with --contexts (default: acc loss), or full context/metric names; "
                              "summary/<name> gives a whole-run process summary (see `pab-campaign summarize`)")
        campaign_filter(sub)

    ls = add("ls", cmd_ls, "list the runs: id, campaign, status, start, duration, problem",
             "pab-campaign ls outputs/demo --status failed")
    ls.add_argument("--status", choices=[status.value for status in RunStatus])
    campaign_filter(ls)

    props = add("properties", cmd_properties, "runs, duration, metrics, contexts and every hyper-parameter's values",
                "pab-campaign properties outputs/demo")
    campaign_filter(props)

    report = add("report", cmd_report, "grouped summary of completed runs: mean, std, ci95 per metric",
                 "pab-campaign report outputs/demo --groupby model.name --epoch best")
    grouping(report)
    report.add_argument("--epoch", default="last", type=_epoch, help="last | best (min val/loss) | an epoch number")

    curves = add("curves", cmd_curves, "learning curves over seeds per group: mean and ci95 per epoch (Parquet + PNG)",
                 "pab-campaign curves outputs/demo --contexts val --metrics loss acc")
    grouping(curves)

    merge = commands.add_parser(
        "merge", help="copy the runs of campaigns into another (never deletes or overwrites)",
        description="copy the runs of campaigns into another (never deletes or overwrites)",
        epilog="example: pab-campaign merge --src outputs/a outputs/b --dst outputs/ab",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("--src", nargs="+", required=True, metavar="CAMPAIGN_DIR", help="source campaigns")
    merge.add_argument("--dst", required=True, metavar="CAMPAIGN_DIR",
                       help="destination: new, empty, or a campaign (only runs it lacks are added)")
    merge.set_defaults(handler=cmd_merge)

    audit = add("audit", cmd_audit,
                "MBE audit: do candidate metrics predict the target beyond a baseline? (raw vs partial Spearman ρ)",
                "pab-campaign audit outputs/mbe_heterogeneous_grid --metric probe/fim_norm --baseline val/loss@20 "
                "--target val/acc\n"
                "         pab-campaign audit outputs/mbe_arch_invariance --all-metrics --baseline val/loss@20 "
                "--target val/acc --groupby model.norm --drivers dataset.train_fraction dataset.label_noise")
    candidates = audit.add_mutually_exclusive_group(required=True)
    candidates.add_argument("--metric", nargs="+", help="candidate metrics, context/metric[key]@epoch")
    candidates.add_argument("--all-metrics", action="store_true", help="every scalar metric the campaign tracked")
    audit.add_argument("--baseline", required=True, help="the trivial baseline, e.g. val/loss@20")
    audit.add_argument("--target", required=True, help="the final result, e.g. val/acc (taken at the last epoch)")
    audit.add_argument("--controls", nargs="+", default=[],
                       help="further controls: hyper-parameters (numbers ranked, text one-hot) or metrics")
    audit.add_argument("--at-epoch", type=int, default=None,
                       help="epoch K of candidates and baseline (default: the baseline's @epoch, else the last)")
    audit.add_argument("--groupby", default=None, help="also audit within each value of this hyper-parameter")
    audit.add_argument("--drivers", nargs="+", default=[],
                       help="numeric hyper-parameters to correlate every metric with (acid test), per group")
    audit.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of runs (default 1000)")
    audit.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    audit.add_argument("--no-plots", action="store_true", help="skip the per-metric PNG figures")

    summarize = commands.add_parser(
        "summarize", help="process summary of one run: stability, gaps, early stop, overfitting onset, classes, robustness",
        description="Process summary of one run's trajectory.parquet (see pab_campaign.analysis.trajectory_summary).",
        epilog="example: pab-campaign summarize outputs/demo/runs/3f2a9c1d0b7e",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    summarize.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. outputs/demo/runs/<run_id>")
    summarize.set_defaults(handler=cmd_summarize)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (already printed as one line) and --help, as exit codes
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args)
    except PabError as exc:
        print(f"pab-campaign: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("PAB_DEBUG"):
            raise
        print(f"pab-campaign: internal error: {type(exc).__name__}: {exc} (set PAB_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
