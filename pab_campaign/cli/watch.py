"""`ls --watch`: the campaign's runs (status, current epoch, last val/acc), refreshed every few
seconds until none is running or waiting to resume; for sweeps submitted with detach=true."""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from rich.live import Live
from rich.table import Table

from pab_campaign.errors import CampaignError
from pab_campaign.formatting import number
from pab_campaign.render import MISSING, Column, console, fmt, print_line, print_table, status_text, table
from pab_campaign.runlock import has_live_writer
from pab_campaign.store import RunStatus, is_campaign, run_dir

# Statuses of runs that are still to end: training, or preempted and waiting for their requeue.
UNFINISHED = frozenset({RunStatus.RUNNING, RunStatus.PREEMPTED})
COLUMNS: list[str | Column] = ["run_id", "status", Column("epoch", justify="right"), Column("val/acc", justify="right"),
           Column("duration_s", justify="right"), "problem"]


LOST = "running, but no process writes it (killed?); launch it again to resume"


def _problem(row) -> str:
    if row.lost:
        return LOST
    return row.error if isinstance(row.error, str) else "-"


def _rows(runs: pd.DataFrame) -> list[list]:
    accuracy = runs["val/acc@last"] if "val/acc@last" in runs else pd.Series(float("nan"), index=runs.index)
    return [[row.run_id, status_text(str(row.status)), fmt(row.epochs_done), number(acc, 3, nan=MISSING),
             number(row.duration_s, 3, nan=MISSING), _problem(row)] for row, acc in zip(runs.itertuples(), accuracy)]


def _mark_lost(runs: pd.DataFrame, campaign: Path) -> pd.DataFrame:
    """`runs` with `lost`: a run recorded running that no live process writes (its job was killed)."""
    lost = [status == RunStatus.RUNNING and not has_live_writer(run_dir(campaign, run_id))
            for run_id, status in zip(runs["run_id"], runs["status"])]
    return runs.assign(lost=pd.Series(lost, index=runs.index, dtype=bool))


def _counts(runs: pd.DataFrame) -> str:
    counts = Counter(str(status) for status in runs["status"])
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs yet"


def _snapshot(args: argparse.Namespace) -> tuple[pd.DataFrame, Table, bool]:
    """The runs now, their table, and whether the watch is over (all ended, as many as expected)."""
    from pab_campaign.analysis.campaign.campaign import open_campaign

    if not is_campaign(args.campaign) and args.expect:
        runs = pd.DataFrame(columns=["run_id", "status", "epochs_done", "duration_s", "error"])
    else:
        runs = open_campaign(args.campaign, args.campaign_id, args.where).runs
    runs = _mark_lost(runs, Path(args.campaign))
    unfinished = runs["status"].isin(UNFINISHED) & ~runs["lost"]
    done = not unfinished.any() and len(runs) >= (args.expect or 1)
    shown = runs[runs["status"].isin(args.status)] if args.status else runs
    title = f"{args.campaign} — {len(shown)} runs: {_counts(shown)} (every {args.interval:g} s; Ctrl-C stops)"
    return shown, table(title, COLUMNS, _rows(shown)), done


def watch(args: argparse.Namespace) -> int:
    """Refresh until the watch is over; a live table on a terminal, one progress line per change otherwise."""
    if not math.isfinite(args.interval) or args.interval <= 0:
        raise CampaignError(f"--interval {args.interval} must be > 0 seconds, e.g. --interval 5")
    if sys.stdout.isatty():
        runs, view, done = _snapshot(args)
        with Live(view, console=console, auto_refresh=False) as live:
            while not done:
                time.sleep(args.interval)
                runs, view, done = _snapshot(args)
                live.update(view, refresh=True)
        return 0
    last = None
    while True:
        runs, _, done = _snapshot(args)
        line = f"{args.campaign}: {len(runs)} runs, {_counts(runs)}"
        if line != last:
            print_line(line)
            last = line
        if done:
            break
        time.sleep(args.interval)
    print_table(f"{args.campaign} — all {len(runs)} runs ended", COLUMNS, _rows(runs))
    return 0
