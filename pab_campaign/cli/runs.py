"""`ls`, `properties` and `summarize`: what a campaign holds, and one run's process summary."""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pab_campaign.cli.common import (
    Commands,
    SplitList,
    add_campaign_filter,
    add_json_flag,
    print_json,
    print_skipped,
    refuse_inside_runs,
    whole_number,
)
from pab_campaign.errors import CampaignError, PabError, did_you_mean
from pab_campaign.formatting import is_missing, number
from pab_campaign.render import MISSING, Cell, Column, fmt, print_columns, print_line, print_table, status_text
from pab_campaign.store import RunStatus

if TYPE_CHECKING:
    from pab_campaign.analysis.campaign.manifest import Scans
    from pab_campaign.analysis.campaign.warm import WarmIndex
    from pab_campaign.analysis.summary.trajectory import RunSummary

RECOMMENDATION_STYLE = "yellow"


def _problem(error: object, skip_reason: object) -> str:
    """The run's error line, else why the analysis sets it aside, else '-'."""
    return next((text for text in (error, skip_reason) if isinstance(text, str) and text), "-")


def _status(value: str) -> str:
    """`--status`: run statuses (split at commas by SplitList afterwards), each checked here."""
    allowed = [status.value for status in RunStatus]
    unknown = [item.strip() for item in value.split(",") if item.strip() and item.strip() not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"{unknown[0]} is not a run status{did_you_mean(unknown[0], allowed)}; "
                                         f"choose from {', '.join(allowed)}")
    return value


def _warm(args: argparse.Namespace, scans: Scans) -> WarmIndex | None:
    """The current index of the one campaign directory named, else None (several campaigns, a run
    directory, a --where filter, or an index that is missing or stale take the full path, which
    takes the scan of the run files from `scans`)."""
    from pab_campaign.analysis.campaign.warm import read_warm

    if len(args.campaign) != 1 or getattr(args, "where", None):
        return None
    return read_warm(Path(args.campaign[0]), args.campaign_id, scans, patch=True)


def cmd_ls(args: argparse.Namespace) -> int:
    """The runs with the hyper-parameters that vary and when each ended (the index refreshed first)."""
    if args.watch:
        from pab_campaign.cli.watch import watch

        if len(args.campaign) > 1:
            raise CampaignError("ls --watch follows one campaign directory; run one watch per campaign")
        args.campaign = args.campaign[0]
        return watch(args)
    from pab_campaign.analysis.campaign.warm import LS_COLUMNS, ls_rows

    scans: Scans = {}
    warm = None if args.as_json else _warm(args, scans)
    if warm is not None:
        try:
            varying, chosen = ls_rows(warm, args.status)
            _print_ls(str(warm.directory), chosen, varying, warm.skipped, warm.notes)
        finally:
            warm.finish()
        return 0
    from pab_campaign.analysis.campaign.campaign import hparam_values, open_campaign
    from pab_campaign.analysis.campaign.campaign import varying_hparams as varying_in_frame

    campaign = open_campaign(args.campaign, args.campaign_id, args.where, scans)
    runs = campaign.runs
    if args.status:
        runs = runs[runs["status"].isin(args.status)]
    values = hparam_values(runs, campaign.hparam_names)
    fields = runs[list(LS_COLUMNS)].itertuples(index=False, name=None)
    if args.as_json:
        columns = {name: values[name].tolist() for name in values.columns}  # a row of them would make 0 a 0.0
        print_json([{**dict(zip(LS_COLUMNS, row)),
                     "hparams": {name: column[i] for name, column in columns.items() if not is_missing(column[i])}}
                    for i, row in enumerate(fields)])
        return 0
    varying = varying_in_frame(runs, campaign.hparam_names) if len(runs) else []
    chosen = [(*row, *shown) for row, shown in zip(fields, values[varying].itertuples(index=False, name=None))]
    _print_ls(campaign.label, chosen, varying, campaign.skipped, campaign.notes)
    return 0


def _formatted(values: list[object], nan: str = "nan") -> list[str]:
    """`number` of each of `values` (NaN as `nan`), each distinct value formatted once
    (hyper-parameters and epochs repeat down a column); keyed by type too where the column holds
    several, since True, 1 and 1.0 are equal keys but read differently. Every loop but the formatting
    runs in C."""
    one_type = len(set(map(type, values)) - {type(None)}) <= 1
    keys: list[Any] = values if one_type else list(zip(map(type, values), values))
    try:
        texts = {key: number(key if one_type else key[1], nan=nan) for key in dict.fromkeys(keys)}
    except TypeError:  # an unhashable value
        return [number(value, nan=nan) for value in values]
    return list(map(texts.__getitem__, keys))


def _print_ls(label: str, runs: list[tuple], varying: list[str], skipped: list[tuple[str, str]],
              notes: list[str]) -> None:
    """The `ls` table of `runs` (tuples of `warm.LS_COLUMNS`, then the values of the hyper-parameters
    of `varying`), with a column per hyper-parameter of `varying`, then the runs set aside. Cells are
    made a column at a time, each distinct value formatted once (`_formatted`)."""
    from pab_campaign.analysis.campaign.warm import LS_COLUMNS

    columns = [list(column) for column in zip(*runs)] if runs else [[] for _ in range(len(LS_COLUMNS) + len(varying))]
    fields = dict(zip(LS_COLUMNS, columns))
    several = len({c for c in fields["campaign"] if isinstance(c, str)}) > 1
    statuses = {status: status_text(status) for status in {str(s) for s in fields["status"]}}
    cells: list[Sequence[Cell]] = [
        fields["run_id"], *([_formatted(fields["campaign"])] if several else []),
        list(map(statuses.__getitem__, map(str, fields["status"]))),
        *(_formatted(values, nan=MISSING) for values in columns[len(LS_COLUMNS):]),  # NaN: a run lacks it
        [v if v.__class__ is str else fmt(v) for v in fields["ended_at"]],
        [f"{v:.3g}" if v.__class__ is float and v == v else number(v, 3, nan=MISSING) for v in fields["duration_s"]],
        _formatted(fields["epochs_done"]),
        ["-" if e is None and r is None else _problem(e, r) for e, r in zip(fields["error"], fields["skip_reason"])]]
    print_columns(f"{label} — {len(runs)} runs",
                  ["run_id", *(["campaign"] if several else []), "status", *varying, "ended_at", "duration_s",
                   "epochs", "problem"], cells)
    print_skipped(skipped, notes)


def cmd_properties(args: argparse.Namespace) -> int:
    """The campaign's properties, from the index alone when it is current, else after refreshing it."""
    from pab_campaign.analysis.campaign.warm import LISTED_VALUES, warm_properties

    scans: Scans = {}
    warm = None if args.as_json else _warm(args, scans)
    if warm is not None:
        try:
            label, rows, skipped, notes = (str(warm.directory), warm_properties(warm, LISTED_VALUES), warm.skipped,
                                           warm.notes)
        finally:
            warm.finish()
    else:
        from pab_campaign.analysis.campaign.campaign import open_campaign, properties

        campaign = open_campaign(args.campaign, args.campaign_id, args.where, scans)
        if args.as_json:
            print_json([{"property": row.name, "unique": row.unique, "value": row.values, "runs_lacking": row.lacking}
                        for row in properties(campaign)])
            return 0
        label, rows, skipped, notes = (campaign.label, properties(campaign, LISTED_VALUES), campaign.skipped,
                                       campaign.notes)
    print_table(f"{label} — properties",
                [Column("property", style="bold"), Column("No. unique", justify="right"), "value"],
                [[row.name, row.unique, row.shown()] for row in rows], section_ends={4})
    print_skipped(skipped, notes)
    return 0


def _write_summary_json(path: Path, directory: Path, epochs: int, cutoffs: tuple, summary: RunSummary) -> None:
    from pab_campaign.analysis.campaign.workspace import file_in_the_way
    from pab_campaign.analysis.summary.trajectory import summary_document
    from pab_campaign.store import atomic_write_bytes, json_safe

    if path.is_dir():
        raise CampaignError(f"--json {path} is a directory; give a file name, e.g. --json summary.json")
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise CampaignError(f"--json {path}: {blocker} is a file, not a directory; give another file name")
    document = summary_document(directory, epochs, cutoffs, summary)
    try:
        atomic_write_bytes(path, (json.dumps(json_safe(document), indent=2) + "\n").encode())
    except OSError as exc:
        raise CampaignError(f"--json {path}: cannot write it ({exc.strerror})") from None


def _summary_cell(name: str, value: float, values: dict[str, float]) -> str:
    """A summary value as `summarize` prints it: NaN is 'none' for an overfitting onset the measured
    val loss never reached, else MISSING."""
    if not math.isnan(value):
        return fmt(value)
    if name == "overfit_onset" and not math.isnan(values.get("early_stop_epoch", math.nan)):
        return "none"
    return MISSING


def cmd_summarize(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.summary.trajectory import class_cutoffs, summarize_run
    from pab_campaign.store import read_trajectory

    if args.json:
        refuse_inside_runs("--json", Path(args.json))  # before anything is printed
    given = " ".join(args.class_cutoffs)
    if len(args.class_cutoffs) != 2:
        raise CampaignError(f"--class-cutoffs {given}: give two fractions, EARLY and LATE, e.g. 1/3 2/3")
    try:
        cutoffs = class_cutoffs(*args.class_cutoffs)
    except ValueError as exc:
        raise CampaignError(f"--class-cutoffs {given}: {exc}") from None
    directory = Path(args.run_dir)
    if not directory.is_dir():
        raise CampaignError(f"{directory} is not a directory; give a run directory, e.g. outputs/demo/runs/<run_id>")
    try:
        frame = read_trajectory(directory).to_pandas()
    except PabError as exc:
        raise CampaignError(f"{exc}; give a run directory, e.g. outputs/demo/runs/<run_id>") from None
    epochs = int(frame["epoch"].max()) if len(frame) else 0
    summary = summarize_run(frame, cutoffs)
    cells = [[name, _summary_cell(name, value, summary.values)] for name, value in summary.values.items()]
    print_table(f"run {directory.name}, {epochs} epochs",  # short: a narrow table wraps a longer title
                ["process summary", Column("value", justify="right")], cells)
    if any(value == MISSING for _, value in cells):
        print_line(f"{MISSING}: not measured, the run did not record the metrics it needs")
    bounds = f"first {cutoffs[0]} / after {cutoffs[1]} of the measured epochs, never learned counted as late"
    print_line(f"classes ({bounds}):")
    for group, ids in summary.classes.items():
        print_line(f"  {group}: {', '.join(ids) if ids else '-'}")
    print_line("recommendations:" if summary.recommendations else "recommendations: none (no overfitting, "
               "robustness trade-off or instability by pabkit's rules)")
    for recommendation in summary.recommendations:
        print_line(f"  • {recommendation.message}", RECOMMENDATION_STYLE)
    if args.json:
        _write_summary_json(Path(args.json), directory, epochs, cutoffs, summary)
        print_line(f"wrote {args.json}")
    return 0


def register(commands: Commands) -> None:
    ls = commands.add("ls", cmd_ls, "list the runs: id, status, the hyper-parameters that vary, end, duration, problem",
                      "pab-campaign ls outputs/demo --status failed")
    ls.add_argument("--status", nargs="+", action=SplitList, type=_status, default=None,
                    help=f"only runs with these statuses ({', '.join(s.value for s in RunStatus)})")
    ls.add_argument("--watch", action="store_true",
                    help="refresh the table until no run is running or waiting to resume (detached sweeps)")
    ls.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes with --watch (default 5)")
    ls.add_argument("--expect", type=whole_number("--expect", 1, 10**9, "24"), default=None, metavar="N",
                    help="with --watch: also wait until N runs exist (a queued sweep that has not started them yet)")
    add_campaign_filter(ls)
    add_json_flag(ls)

    properties = commands.add("properties", cmd_properties,
                              "runs, duration, metrics, contexts and every hyper-parameter's values",
                              "pab-campaign properties outputs/demo")
    add_campaign_filter(properties)
    add_json_flag(properties)

    summarize = commands.add(
        "summarize", cmd_summarize,
        "process summary of one run: stability, gaps, early stop, overfitting onset, classes, robustness, "
        "recommendations",
        "pab-campaign summarize outputs/demo/runs/3f2a9c1d0b7e --json summary.json", campaign_dir=False)
    summarize.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. outputs/demo/runs/<run_id>")
    summarize.add_argument("--json", metavar="FILE", default=None,
                           help="also write the summary, class lists and recommendations to FILE (JSON)")
    summarize.add_argument("--class-cutoffs", nargs="+", action=SplitList, default=["1/3", "2/3"],
                           metavar="FRACTION",
                           help="two fractions, EARLY and LATE, of the measured epochs: a class first learned "
                                "before EARLY is early, after LATE (or never) late (default pabkit's 1/3 2/3)")
