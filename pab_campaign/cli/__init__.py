"""`pab-campaign COMMAND CAMPAIGN_DIR [options]`: the analysis command line, which parses, calls the
analysis package and renders what it returns. It never imports torch, so it starts fast.

Each module of this package declares its commands, each command's arguments beside its handler, in
one `register(commands)`; a new command is a new module and one entry in COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings

from pab_campaign.cli import audit, diff, html, merge, report, runs, states, transfer
from pab_campaign.cli.common import Commands, OneLineParser
from pab_campaign.errors import PabError, one_line
from pab_campaign.render import literal

COMMAND_MODULES = (runs, report, merge, audit, states, diff, html, transfer)


def build_parser() -> argparse.ArgumentParser:
    """The `pab-campaign` parser with every command of COMMAND_MODULES."""
    parser = OneLineParser(
        prog="pab-campaign",
        description="Analyse a pab_campaign campaign directory (written by `python -m pab_campaign -m`).",
        epilog="example: pab-campaign report outputs/demo --epoch best",
    )
    commands = Commands(parser)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


# OSErrors that say where the command was pointed, not what it does: permissions, read-only file
# systems, full disks and quotas.
PLACE_ERRORS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def main(argv: list[str] | None = None) -> int:
    """Run one command; usage and PabError errors are one line on stderr with exit code 2, any other
    error one line with exit code 1 (the traceback with PAB_DEBUG=1)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (already printed as one line) and --help, as exit codes
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = sys.argv[1:] if argv is None else list(argv)
    # Figures go to files: no window opens, whatever display the machine has (unless the user chose).
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not os.environ.get("PAB_DEBUG"):
        # numpy's floating-point warnings: a campaign may hold values near ±1.8e308 whose sums and
        # spans overflow; the commands say what they leave out, and their output stays their own lines
        warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero) encountered", RuntimeWarning)
    try:
        return args.handler(args)
    except PabError as exc:
        print(f"pab-campaign: error: {literal(one_line(exc))}", file=sys.stderr)  # a campaign's names in it
        return 2
    except Exception as exc:
        if os.environ.get("PAB_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.errno in PLACE_ERRORS:  # the place, not the program
            print(f"pab-campaign: error: {literal(str(exc.filename or 'a file'))}: {exc.strerror}; give a place this "
                  "user can read and write (a read-only mount, a full disk or another user's folder stops the "
                  "command there)", file=sys.stderr)
            return 2
        print(f"pab-campaign: internal error: {type(exc).__name__}: {literal(one_line(exc))} (set PAB_DEBUG=1 for the "
              "traceback)", file=sys.stderr)
        return 1
