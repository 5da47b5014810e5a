"""`report` and `curves`: grouped summaries of the completed runs, at one epoch or per epoch."""
from __future__ import annotations

import argparse

from pab_campaign.cli.common import Commands, SplitList, add_campaign_filter, print_skipped
from pab_campaign.errors import CampaignError
from pab_campaign.render import Column, fmt, print_line, print_table


def cmd_report(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign import open_campaign
    from pab_campaign.analysis.report import build_report, write_report

    campaign = open_campaign(args.campaign, args.campaign_id)
    try:
        report = build_report(campaign, args.groupby, args.contexts, args.metrics, args.epoch)
    except CampaignError:
        print_skipped(campaign.skipped)
        raise
    columns = [*report.groupby, Column("runs", justify="right"),
               *(Column(name, justify="right") for name in [*report.metrics, "duration_s"])]
    rows = []
    for row in report.summary.to_dict("records"):
        cells = [fmt(row[g]) for g in report.groupby] + [str(row["runs"])]
        cells += [f"{fmt(row[f'{name}.mean'])} ± {fmt(row[f'{name}.ci95'], 2)}"
                  for name in [*report.metrics, "duration_s"]]
        rows.append(cells)
    print_table(f"{campaign.directory} — completed runs at epoch '{args.epoch}' (mean ± ci95)", columns, rows)
    path = write_report(campaign, report, args.epoch, args.campaign_id)
    print_line(f"wrote {path} (index: {path.parent / 'runs.parquet'})")
    for note in report.notes:
        print_line(f"note: {note}", "cyan")
    print_skipped(campaign.skipped)
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign import open_campaign
    from pab_campaign.analysis.report import build_curves, write_curves

    campaign = open_campaign(args.campaign, args.campaign_id)
    groupby, curves = build_curves(campaign, args.groupby, args.contexts, args.metrics)
    parquet, png = write_curves(campaign, groupby, curves, args.campaign_id)
    groups = max(1, len(curves.groupby(groupby, dropna=False))) if groupby else 1
    print_line(f"{curves['label'].nunique()} curves × {groups} groups over {curves['epoch'].nunique()} epochs: "
               f"wrote {parquet} and {png}")
    print_skipped(campaign.skipped)
    return 0


def _epoch(value: str) -> str | int:
    """`--epoch`: 'last', 'best' or an epoch number."""
    if value in ("last", "best"):
        return value
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"--epoch {value}: use last, best or an epoch number")
    return int(value)


def _add_grouping(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--groupby", nargs="*", action=SplitList, default=None,
                        help="hyper-parameters to group by (default: all that vary, except the seed)")
    parser.add_argument("--contexts", nargs="+", action=SplitList, default=None, help="contexts (default: val test)")
    parser.add_argument("--metrics", nargs="+", action=SplitList, default=None,
                        help="metrics crossed with --contexts (default: acc loss), or full context/metric names; "
                             "summary/<name> gives a whole-run process summary (see `pab-campaign summarize`)")
    add_campaign_filter(parser)


def register(commands: Commands) -> None:
    report = commands.add("report", cmd_report, "grouped summary of completed runs: mean, std, ci95 per metric",
                          "pab-campaign report outputs/demo --groupby model.name --epoch best")
    _add_grouping(report)
    report.add_argument("--epoch", default="last", type=_epoch, help="last | best (min val/loss) | an epoch number")

    curves = commands.add("curves", cmd_curves,
                          "learning curves over seeds per group: mean and ci95 per epoch (Parquet + PNG)",
                          "pab-campaign curves outputs/demo --contexts val --metrics loss acc")
    _add_grouping(curves)
