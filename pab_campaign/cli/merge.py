"""`merge`: copy the runs of campaigns into another."""
from __future__ import annotations

import argparse

from pab_campaign.cli.common import Commands, SplitList
from pab_campaign.render import print_line


def cmd_merge(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign.merge import merge

    result = merge(args.src, args.dst)
    for run_id, source in result.added:
        print_line(f"added {run_id} from {source}")
    for run_id, source, reason in result.skipped:
        print_line(f"skipped {run_id} from {source}: {reason}", "yellow")
    for run_id, source, kept_as in result.conflicts:
        print_line(f"conflict: {run_id} from {source} differs from the destination's {run_id}; both kept, the "
                   f"incoming one as {kept_as}", "bold red")
    print_line(f"{args.dst}: added {len(result.added)} runs, skipped {len(result.skipped)} (same contents), "
               f"{len(result.conflicts)} conflicts (kept under suffixed ids)")
    return 1 if result.conflicts else 0


def register(commands: Commands) -> None:
    merge = commands.add("merge", cmd_merge,
                         "copy the runs of campaigns into another (never deletes or overwrites; a run id the "
                         "destination has with other results is kept as <run_id>~<campaign>@<host>, exit 1)",
                         "pab-campaign merge --src outputs/a outputs/b --dst outputs/ab", campaign_dir=False)
    merge.add_argument("--src", nargs="+", action=SplitList, required=True, metavar="CAMPAIGN_DIR",
                       help="source campaigns")
    merge.add_argument("--dst", required=True, metavar="CAMPAIGN_DIR",
                       help="destination: new, empty, or a campaign (only runs it lacks are added)")
