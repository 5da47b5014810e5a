"""`html`: the campaign on one self-contained page."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from pab_campaign.cli.common import Commands, add_campaign_filter, print_skipped, refuse_inside_runs
from pab_campaign.errors import CampaignError
from pab_campaign.render import print_line


def cmd_html(args: argparse.Namespace) -> int:
    from pab_campaign.analysis.campaign.campaign import open_campaign
    from pab_campaign.analysis.page.render import write_page

    if args.out is not None:
        if not args.out.strip():
            raise CampaignError("--out is empty; name the page's file, e.g. --out demo.html")
        refuse_inside_runs("--out", Path(args.out))
    campaign = open_campaign(args.campaign, args.campaign_id, args.where)
    command = shlex.join(["pab-campaign", *args.argv])
    path = write_page(campaign, Path(args.out) if args.out else None, command, args.campaign_id, args.where)
    print_line(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB); open it in a browser")
    print_skipped(campaign.skipped, campaign.notes)
    return 0


def register(commands: Commands) -> None:
    html = commands.add("html", cmd_html, "the campaign on one self-contained HTML page (figures inline)",
                        "pab-campaign html outputs/demo --out /tmp/demo.html")
    html.add_argument("--out", default=None, metavar="FILE",
                      help="where to write the page (default: <campaign>/summary/report.html)")
    add_campaign_filter(html)
