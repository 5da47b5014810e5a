"""`ls`, `properties` and `summarize`: what a campaign holds, and one run's process summary."""
from __future__ import annotations

import argparse
from pathlib import Path

from pab_campaign.cli.common import Commands, add_campaign_filter, print_skipped
from pab_campaign.errors import CampaignError, PabError
from pab_campaign.render import Column, fmt, print_table, status_text
from pab_campaign.store import RunStatus


def _problem(error: object, skip_reason: object) -> str:
    """The run's error line, else why the analysis sets it aside, else '-'."""
    return next((text for text in (error, skip_reason) if isinstance(text, str) and text), "-")


def cmd_ls(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign import open_campaign

    if args.watch:
        from pab_campaign.cli.watch import watch

        return watch(args)
    campaign = open_campaign(args.campaign, args.campaign_id)
    runs = campaign.runs
    if args.status:
        runs = runs[runs["status"] == args.status]
    rows = [[row.run_id, fmt(row.campaign), status_text(str(row.status)), fmt(row.started_at), fmt(row.duration_s, 3),
             fmt(row.epochs_done), _problem(row.error, row.skip_reason)] for row in runs.itertuples()]
    print_table(f"{campaign.directory} — {len(runs)} runs",
                ["run_id", "campaign", "status", "started_at", "duration_s", "epochs", "problem"], rows)
    print_skipped(campaign.skipped)
    return 0


def cmd_properties(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign import open_campaign, properties

    campaign = open_campaign(args.campaign, args.campaign_id)
    print_table(f"{campaign.directory} — properties", [Column("property", style="bold"), "value"],
                [[name, value] for name, value in properties(campaign)])
    print_skipped(campaign.skipped)
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.trajectory_summary import summarize_trajectory
    from pab_campaign.store import read_trajectory

    directory = Path(args.run_dir)
    if not directory.is_dir():
        raise CampaignError(f"{directory} is not a directory; give a run directory, e.g. outputs/demo/runs/<run_id>")
    try:
        frame = read_trajectory(directory).to_pandas()
    except PabError as exc:
        raise CampaignError(f"{exc}; give a run directory, e.g. outputs/demo/runs/<run_id>") from None
    epochs = int(frame["epoch"].max()) if len(frame) else 0
    print_table(f"run {directory.name} — process summary, {epochs} epochs",
                ["metric", Column("value", justify="right")],
                [[name, fmt(value)] for name, value in summarize_trajectory(frame).items()])
    return 0


def register(commands: Commands) -> None:
    ls = commands.add("ls", cmd_ls, "list the runs: id, campaign, status, start, duration, problem",
                      "pab-campaign ls outputs/demo --status failed")
    ls.add_argument("--status", choices=[status.value for status in RunStatus])
    ls.add_argument("--watch", action="store_true",
                    help="refresh the table until no run is running or waiting to resume (detached sweeps)")
    ls.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes with --watch (default 5)")
    ls.add_argument("--expect", type=int, default=None, metavar="N",
                    help="with --watch: also wait until N runs exist (a queued sweep that has not started them yet)")
    add_campaign_filter(ls)

    properties = commands.add("properties", cmd_properties,
                              "runs, duration, metrics, contexts and every hyper-parameter's values",
                              "pab-campaign properties outputs/demo")
    add_campaign_filter(properties)

    summarize = commands.add(
        "summarize", cmd_summarize,
        "process summary of one run: stability, gaps, early stop, overfitting onset, classes, robustness",
        "pab-campaign summarize outputs/demo/runs/3f2a9c1d0b7e", campaign_dir=False)
    summarize.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. outputs/demo/runs/<run_id>")
