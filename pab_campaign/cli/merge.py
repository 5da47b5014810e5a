"""`merge`: copy the runs of campaigns into another."""
from __future__ import annotations

import argparse
from pathlib import Path

from pab_campaign.cli.common import Commands, SplitList
from pab_campaign.errors import CampaignError
from pab_campaign.render import print_line


def cmd_merge(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign.merge import merge

    def waiting() -> None:
        print_line(f"waiting for another merge into {args.dst} to finish (it holds the destination's lock)", "yellow")

    sources = [*args.sources, *(args.src or [])]
    if not sources:
        raise CampaignError(f"merge into {args.dst}: give the campaigns to copy from, e.g. pab-campaign merge "
                            f"outputs/a outputs/b --dst {args.dst}")
    result = merge(sources, args.dst, include_running=args.include_running, on_wait=waiting)
    running = set(result.running)

    def live(run_id: str, source: Path) -> str:
        return " (running: copied while a process writes it)" if (run_id, source) in running else ""

    for run_id, source in result.added:
        print_line(f"added {run_id} from {source}{live(run_id, source)}")
    for run_id, source, why in result.updated:
        print_line(f"updated {run_id} from {source}: {why}{live(run_id, source)}")
    for run_id, source, reason in result.skipped:
        print_line(f"skipped {run_id} from {source}: {reason}", "yellow")
    for run_id, source, kept_as in result.conflicts:
        print_line(f"conflict: {run_id} from {source} differs from the destination's {run_id}; both kept, the "
                   f"incoming one as {kept_as}", "bold red")
    for run_id, source, what in result.left_out:
        print_line(f"left out of {run_id} from {source}: {what}", "yellow")
    print_line(f"{args.dst}: added {len(result.added)} runs, updated {len(result.updated)}, skipped "
               f"{len(result.skipped)}, {len(result.conflicts)} conflicts (kept under suffixed ids)"
               + (f", {len(result.running)} copied while running" if result.running else ""))
    return 1 if result.conflicts else 0


def register(commands: Commands) -> None:
    merge = commands.add("merge", cmd_merge,
                         "copy the runs of campaigns into another (never deletes or overwrites; a run id the "
                         "destination has with other results is kept as <run_id>~<campaign>@<host>, exit 1)",
                         "pab-campaign merge outputs/a outputs/b --dst outputs/ab", campaign_dir=False)
    merge.add_argument("sources", nargs="*", metavar="CAMPAIGN_DIR", help="source campaigns (or give them with --src)")
    merge.add_argument("--src", nargs="+", action=SplitList, default=None, metavar="CAMPAIGN_DIR",
                       help="source campaigns, as tcbench's `aimrepo merge --src` takes them")
    merge.add_argument("--dst", required=True, metavar="CAMPAIGN_DIR",
                       help="destination: new, empty, or a campaign (only runs it lacks, or has not seen end, "
                            "are copied)")
    merge.add_argument("--include-running", action="store_true",
                       help="also copy runs a live process is writing now, as they are (merge again once they "
                            "have ended to update them)")
