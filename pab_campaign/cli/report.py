"""`report` and `curves`: grouped summaries of the completed runs, at one epoch or per epoch."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from pab_campaign.formatting import number
from pab_campaign.render import MISSING, Cell, Column, fmt, print_line, print_table
from pab_campaign.store import RUN_JSON

if TYPE_CHECKING:
    import pandas as pd

    from pab_campaign.analysis.campaign.manifest import Scans
    from pab_campaign.analysis.campaign.warm import WarmIndex
    from pab_campaign.analysis.summary.report import Report


def _estimate(mean: float, ci95: float, digits: int) -> str:
    """'mean ± ci95', each to `digits` significant digits."""
    return f"{fmt(mean, digits)} ± {fmt(ci95, digits)}"


def _summary_table(rows: list[dict[str, Any]], keys: list[str], names: list[str], digits: int,
                   std: bool) -> tuple[list[Column | str], list[list[Cell]]]:
    """Columns and rows of a report table (`rows`: its groups): the `keys` columns, runs, then
    'mean ± ci95' per name (and its std beside it with `std`)."""
    columns: list[Column | str] = [*keys, Column("runs", justify="right")]
    for name in names:
        columns.append(Column(name, justify="right"))
        if std:
            columns.append(Column(f"{name} std", justify="right"))
    cells_of = []
    for row in rows:
        cells: list[Cell] = [*(number(row[key], nan=MISSING) for key in keys), str(row["runs"])]  # a key runs lack
        for name in names:
            cells.append(_estimate(row[f"{name}.mean"], row[f"{name}.ci95"], digits))
            if std:
                cells.append(fmt(row[f"{name}.std"], digits))
        cells_of.append(cells)
    return columns, cells_of


def _title(label: str, args: argparse.Namespace) -> str:
    what = "mean ± ci95" + (", std" if args.std else "")
    return f"{label} — completed runs at epoch '{args.epoch}' ({what})"


def _print_report(title: str, report: Report, summary: pd.DataFrame, keys: list[str],
                  args: argparse.Namespace) -> None:
    """One report table of `summary` (rows of `report.summary`) grouped by `keys`."""
    from pab_campaign.analysis.summary.report import split_layout

    if args.layout == "split":
        frame = split_layout(summary, keys, report.metrics)
        names = list(dict.fromkeys(label.split("/", 1)[1] for label in report.metrics))
        columns, rows = _summary_table(frame.to_dict("records"), ["context", *keys], [*names, "duration_s"],
                                       args.precision, args.std)
        context_ends = {i for i, (a, b) in enumerate(zip(frame["context"], frame["context"][1:])) if a != b}
        print_table(title, columns, rows, context_ends)
    else:
        columns, rows = _summary_table(summary.to_dict("records"), keys, [*report.metrics, "duration_s"],
                                       args.precision, args.std)
        print_table(title, columns, rows)


def _print_footer(paths: list[Path], index: Path | None, notes: list[str], skipped: list[tuple[str, str]],
                  campaign_notes: list[str]) -> None:
    """What follows the tables: the files written, the report's notes, the runs set aside."""
    print_line(f"wrote {', '.join(str(path) for path in paths)}"
               + (f" (index: {index / 'runs.parquet'})" if index else ""))
    for note in notes:
        print_line(f"note: {note}", "cyan")
    print_skipped(skipped, campaign_notes)


def _print_json_report(rows: list[dict[str, Any]], notes: list[str]) -> None:
    """The groups' rows (the wide records, whatever the layout) as JSON on stdout, and the report's
    notes on stderr, where they do not spoil the JSON."""
    print_json(rows)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)


def _warm_report(args: argparse.Namespace, scans: Scans) -> bool:
    """Answer from the current runs index without pandas when the options allow it (one campaign
    directory, --epoch last or best, the wide layout, no --where or --per-campaign; see
    `warm_report`); False, having printed and written nothing, where the full path must answer (with
    the scan of the run files in `scans`)."""
    if (len(args.campaign) != 1 or args.where or args.per_campaign or args.layout != "wide"
            or args.epoch not in ("last", "best") or (Path(args.campaign[0]) / RUN_JSON).exists()):
        return False
    from pab_campaign.analysis.campaign.warm import read_warm

    warm = read_warm(Path(args.campaign[0]), args.campaign_id, scans, patch=True)
    if warm is None:
        return False
    try:
        return _answer_warm(args, warm)
    finally:
        warm.finish()


def _answer_warm(args: argparse.Namespace, warm: WarmIndex) -> bool:
    """`_warm_report` from the current index `warm`."""
    from pab_campaign.analysis.summary.report_plan import best_order
    from pab_campaign.analysis.summary.warm_report import warm_report, write_warm_report

    report = warm_report(warm, args.groupby, args.contexts, args.metrics, args.epoch)
    if report is None:
        return False
    try:
        rows = [report.rows[i] for i in best_order(report.rows, report.metrics, args.sort, args.top)]
    except CampaignError:
        return False  # the full path says what is wrong, after the runs it set aside
    path = write_warm_report(warm, report, rows, args.epoch, args.campaign_id, args.output_folder)
    if path is None:
        return False
    if args.as_json:
        _print_json_report(rows, report.notes)
        return True
    columns, cells = _summary_table(rows, report.groupby, [*report.metrics, "duration_s"], args.precision, args.std)
    print_table(_title(str(warm.directory), args), columns, cells)
    _print_footer([path], warm.path.parent, report.notes, report.skipped, warm.notes)
    return True


def cmd_report(args: argparse.Namespace) -> int:
    scans: Scans = {}
    if _warm_report(args, scans):
        return 0
    from pab_campaign.analysis.campaign.campaign import open_campaign
    from pab_campaign.analysis.summary.report import (
        CAMPAIGN_KEY,
        build_report,
        write_report,
        write_reports_per_campaign,
    )
    from pab_campaign.analysis.summary.report_plan import best_order

    folder = args.output_folder
    campaign = open_campaign(args.campaign, args.campaign_id, args.where, scans)
    try:
        report = build_report(campaign, args.groupby, args.contexts, args.metrics, args.epoch)
    except CampaignError:
        print_skipped(campaign.skipped, campaign.notes)
        raise
    report.summary = report.summary.iloc[best_order(report.summary.to_dict("records"), report.metrics, args.sort,
                                                    args.top)]
    if args.per_campaign:
        paths = write_reports_per_campaign(campaign, report, args.epoch, folder, args.layout)
    else:
        paths = [write_report(campaign, report, args.epoch, args.campaign_id, folder, args.layout)]
    if args.as_json:
        _print_json_report(report.summary.to_dict("records"), report.notes)
        return 0
    title = _title(campaign.label, args)
    if CAMPAIGN_KEY in report.groupby:  # tcbench's layout: a campaign_id / runs header, then its table
        keys = [key for key in report.groupby if key != CAMPAIGN_KEY]
        for cid, summary in report.summary.groupby(CAMPAIGN_KEY, sort=True):
            print_line(f"campaign_id: {cid}", "bold")
            print_line(f"runs: {int((report.per_run[CAMPAIGN_KEY] == cid).sum())}")
            _print_report(title, report, summary.reset_index(drop=True), keys, args)
    else:
        _print_report(title, report, report.summary, report.groupby, args)
    _print_footer(paths, campaign.index_dir, report.notes, campaign.skipped, campaign.notes)
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign.campaign import open_campaign
    from pab_campaign.analysis.summary.report import build_curves, write_curves

    folder = args.output_folder
    campaign = open_campaign(args.campaign, args.campaign_id, args.where)
    x = "step" if args.steps else "epoch"
    if args.steps:
        from pab_campaign.analysis.summary.steps import build_step_curves

        groupby, curves = build_step_curves(campaign, args.groupby, args.contexts, args.metrics)
    else:
        groupby, curves = build_curves(campaign, args.groupby, args.contexts, args.metrics)
    parquet, png = write_curves(campaign, groupby, curves, args.campaign_id, folder, x=x, log_y=args.log_y)
    last = curves.loc[curves.groupby([*groupby, "label"], dropna=False, sort=False)[x].idxmax()]
    print_table(f"{campaign.label} — curves at their last {x} (mean ± ci95 over runs)",
                [*groupby, "label", *(Column(h, justify="right") for h in (x, "runs", "mean ± ci95"))],
                [[*(number(row[g], nan=MISSING) for g in groupby), row["label"], fmt(row[x]), fmt(row["runs"]),
                  _estimate(row["mean"], row["ci95"], args.precision)]
                 for row in last.to_dict("records")])
    groups = max(1, len(curves.groupby(groupby, dropna=False))) if groupby else 1
    print_line(f"{curves['label'].nunique()} curves × {groups} groups over {curves[x].nunique()} {x}s: "
               f"wrote {parquet} and {png}")
    print_skipped(campaign.skipped, campaign.notes)
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
    add_output_options(parser, precision=4, files="the CSV, Parquet and PNG files")
    add_campaign_filter(parser)


def register(commands: Commands) -> None:
    report = commands.add("report", cmd_report, "grouped summary of completed runs: mean, std, ci95 per metric",
                          "pab-campaign report outputs/demo --groupby model.name,optimizer.lr --epoch best --std "
                          "--layout split --precision 3")
    _add_grouping(report)
    report.add_argument("--epoch", default="last", type=_epoch, help="last | best (min val/loss) | an epoch number")
    report.add_argument("--std", action="store_true", help="show each metric's standard deviation beside it")
    report.add_argument("--per-campaign", action="store_true",
                        help="one summary CSV per campaign id (runs of several campaigns are always reported per "
                             "campaign id, in one CSV with a campaign column without this option)")
    report.add_argument("--sort", metavar="METRIC", default=None,
                        help="order the groups by this metric's mean, best first (e.g. val/acc: highest first)")
    report.add_argument("--top", metavar="K", type=whole_number("--top", 1, 10**9, "5"), default=None,
                        help="show only the first K groups")
    add_json_flag(report)
    report.add_argument("--layout", choices=("wide", "split"), default="wide",
                        help="wide: one column per context/metric (default); split: the context as a row level, "
                             "one column per metric (tcbench's layout), also in the CSV (*_split.csv)")

    curves = commands.add("curves", cmd_curves,
                          "learning curves over seeds per group: mean and ci95 per epoch (Parquet + PNG)",
                          "pab-campaign curves outputs/demo --contexts val --metrics loss,acc --log-y "
                          "--output-folder figs")
    _add_grouping(curves)
    curves.add_argument("--steps", action="store_true",
                        help="per training step instead of per epoch: the values runs recorded per step "
                             "(tracker.log(step=...), import --steps-per-epoch); default metrics: all of them")
    scale = curves.add_mutually_exclusive_group()
    scale.add_argument("--log-y", dest="log_y", action="store_const", const=True, default=None,
                       help="every panel on a log y scale (default: loss panels spanning more than two decades)")
    scale.add_argument("--linear-y", dest="log_y", action="store_const", const=False,
                       help="every panel on a linear y scale")
