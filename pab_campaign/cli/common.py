"""What the command modules share: the one-line usage errors, the `Commands` each module's
`register` declares its commands into, the arguments several commands take, and the lines that
list the runs an analysis set aside."""
from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pab_campaign.errors import CampaignError
from pab_campaign.render import print_line

Handler = Callable[[argparse.Namespace], int]

# A comma that separates list items: not one inside a metric key's brackets (`val/class_acc[1,2]`).
_ITEM_COMMA = re.compile(r",(?![^\[]*\])")
# The namespace attribute naming the SplitList options given so far in this command line.
_GIVEN = "_split_lists_given"


class SplitList(argparse.Action):
    """A list option that takes its items separated by spaces, commas or both:
    `--groupby model.name,optimizer.lr` = `--groupby model.name optimizer.lr`; an item given twice
    counts once (`--groupby lr lr` = `--groupby lr`); the option given again adds its items
    (`--src a --src b` = `--src a b`, as click's `multiple=True` options of tcbench take them)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        items = [values] if isinstance(values, str) else list(values or [])
        split = [part.strip() for item in items for part in _ITEM_COMMA.split(item) if part.strip()]
        given: set[str] = namespace.__dict__.setdefault(_GIVEN, set())
        earlier = list(getattr(namespace, self.dest) or []) if self.dest in given else []
        given.add(self.dest)
        setattr(namespace, self.dest, list(dict.fromkeys([*earlier, *split])))


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the problem and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


class Commands:
    """The sub-commands of `pab-campaign`; a command module declares its own with `add`."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                                 parser_class=OneLineParser)

    def add(self, name: str, handler: Handler, help_text: str, example: str,
            campaign_dir: bool = True, several: bool = True) -> argparse.ArgumentParser:
        """A sub-command `name` run by `handler`, with its one-line help and a usage example; its
        first positional argument is CAMPAIGN_DIR unless `campaign_dir` is False: with `several`, one
        or more campaign or run directories (`args.campaign` a list), else one campaign directory."""
        sub = self._subparsers.add_parser(name, help=help_text, description=help_text, epilog=f"example: {example}",
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        if campaign_dir and several:
            sub.add_argument("campaign", metavar="CAMPAIGN_DIR", nargs="+",
                             help="campaign directory (e.g. outputs/demo), a run directory (outputs/demo/runs/<id>: "
                                  "that run alone), or several campaigns read side by side without a merge (their "
                                  "files then go to --output-folder or combined-<hash>/ in the first one's summary/)")
        elif campaign_dir:
            sub.add_argument("campaign", metavar="CAMPAIGN_DIR", help="campaign directory, e.g. outputs/demo")
        sub.set_defaults(handler=handler)
        return sub


def whole_number(option: str, low: int, high: int, example: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] for `option`, else a usage error naming both."""
    def parse(value: str) -> int:
        if not value.isdigit() or not low <= int(value) <= high:
            raise argparse.ArgumentTypeError(f"{option} {value} must be a whole number from {low} to {high}, "
                                             f"e.g. {option} {example}")
        return int(value)
    return parse


def refuse_inside_runs(option: str, path: Path) -> None:
    """CampaignError where `path` (a command's output named by `option`) lies in a campaign's
    `runs/`, whose files the runs own (`store.campaign_owning`)."""
    from pab_campaign.store import campaign_owning, runs_dir

    owner = campaign_owning(path)
    if owner is not None:
        raise CampaignError(f"{option} {path} is inside {runs_dir(owner)}, whose files belong to the runs; name a "
                            f"place outside it (e.g. {owner / 'summary'})")


def output_folder(value: str) -> Path:
    """An argparse type for `--output-folder`: a directory this user can write, or one that can be
    created there (it is created only when the command writes its files), never a file, an empty
    name or a place inside a campaign's `runs/`."""
    from pab_campaign.analysis.campaign.workspace import write_error

    if not value.strip():
        raise argparse.ArgumentTypeError("--output-folder is empty; name a folder (. for this one)")
    folder = Path(value)
    try:
        refuse_inside_runs("--output-folder", folder)
    except CampaignError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    existing = next(path for path in (folder, *folder.parents) if path.exists() or path == Path(path.anchor or "."))
    if not existing.is_dir():
        what = "is a file" if existing == folder else f"is inside {existing}, which is a file"
        raise argparse.ArgumentTypeError(f"--output-folder {folder} {what}; name a folder (it is created when "
                                         "missing)")
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    error = write_error(folder)  # creates the missing folders to try; they are removed again below
    for path in missing:
        with contextlib.suppress(OSError):
            path.rmdir()
    if error is not None:
        raise argparse.ArgumentTypeError(f"--output-folder {folder}: cannot write there ({error.strerror or error}); "
                                         "name a folder you can write")
    return folder


def add_output_options(parser: argparse.ArgumentParser, precision: int, files: str) -> None:
    """tcbench's `--precision N` (significant digits in the console tables) and `--output-folder DIR`
    (where `files` go instead of <campaign>/summary/)."""
    parser.add_argument("--precision", type=whole_number("--precision", 1, 17, str(precision)), default=precision,
                        metavar="N", help=f"significant digits of numbers in the console tables (default {precision})")
    parser.add_argument("--output-folder", type=output_folder, default=None, metavar="DIR",
                        help=f"write {files} into DIR (created when missing) instead of <campaign>/summary/")


def add_campaign_filter(parser: argparse.ArgumentParser, where: bool = True) -> None:
    """`--campaign-id NAME...`: only the runs of these campaigns (a merged campaign mixes several);
    `--where KEY=VALUE` (repeatable): only the runs meeting every condition, before any grouping."""
    parser.add_argument("--campaign-id", nargs="+", action=SplitList, default=None, metavar="NAME",
                        help="only runs whose run.json `campaign` is one of these (a merged campaign mixes several)")
    if where:
        parser.add_argument("--where", action="append", default=None, metavar="KEY=VALUE",
                            help="only runs where a hyper-parameter, run field or metric compares so (repeatable; "
                                 "KEY!=VALUE, KEY>VALUE, KEY<=VALUE, 'KEY in [a,b]'), e.g. --where optimizer.lr=0.1")


def print_skipped(skipped: list[tuple[str, str]], notes: Sequence[str] = ()) -> None:
    """One yellow line per run set aside, with its reason; then the campaign's notes (where its index
    is kept when the campaign cannot be written, values left out)."""
    for run_id, reason in skipped:
        print_line(f"skipped run {run_id}: {reason}", "yellow")
    for note in notes:
        print_line(f"note: {note}", "cyan")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json`: print the command's result as JSON on stdout (NaN as null) instead of tables."""
    parser.add_argument("--json", action="store_true", dest="as_json",
                        help="print the result as JSON on stdout (missing and non-finite values as null)")


def print_json(value: object) -> None:
    """`value` (dicts, lists, numbers incl. numpy scalars, text) as standard JSON on stdout."""
    import json

    from pab_campaign.store import json_safe

    def plain(item: object) -> object:
        if isinstance(item, dict):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [plain(v) for v in item]
        if hasattr(item, "item") and callable(item.item) and not isinstance(item, (str, bytes)):
            return item.item()
        return item

    print(json.dumps(json_safe(plain(value)), indent=2, default=str))
