"""`import` and `export`: bring runs another tool recorded (CSV, TensorBoard, MLflow, W&B offline)
into a campaign, and write a campaign out for TensorBoard, MLflow or as CSV. The handlers import the
workflows (and the tool's package) only when they run."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pab_campaign.cli.common import (
    Commands,
    SplitList,
    add_campaign_filter,
    print_skipped,
    refuse_inside_runs,
    whole_number,
)
from pab_campaign.render import print_line

T = TypeVar("T")
IMPORT_TOOLS = ("csv", "tensorboard", "mlflow", "wandb")
EXPORT_TOOLS = ("csv", "tensorboard", "mlflow")


def _tool_and_source(option: str, tools: tuple[str, ...]) -> type[argparse.Action]:
    """An action for `OPTION TOOL SOURCE` that refuses a tool not in `tools` in one line."""
    class ToolAndSource(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                     option_string: str | None = None) -> None:
            tool, source = list(values)  # type: ignore[call-overload]  # nargs=2: two strings
            if tool not in tools:
                parser.error(f"{option} {tool}: choose one of {', '.join(tools)}, e.g. {option} {tools[1]} runs/")
            setattr(namespace, self.dest, (tool, source))
    return ToolAndSource


def cmd_import(args: argparse.Namespace) -> int:
    from pab_campaign.errors import CampaignError
    from pab_campaign.workflows.importers import read_source
    from pab_campaign.workflows.importers.source import parse_map
    from pab_campaign.workflows.importers.writer import ImportOptions, import_runs

    tool, source = args.source
    for option, value, owner in (("--hparams", args.hparams, "tensorboard"),
                                 ("--experiment", args.experiment, "mlflow")):
        if value is not None and tool != owner:
            raise CampaignError(f"{option} is for --from {owner}; leave it out with --from {tool}")
    options = ImportOptions(parse_map(args.map), args.steps_per_epoch)
    runs = read_source(tool, source, mapping=options.mapping, steps_per_epoch=options.steps_per_epoch,
                       hparams_csv=args.hparams, experiment=args.experiment)
    result = import_runs(runs, Path(args.campaign), options, print_line)
    merged = result.merged
    for note in result.notes:
        print_line(f"note: {note}", "cyan")
    for run_id, _staging in merged.added:
        print_line(f"added {run_id}")
    for run_id, _staging, _reason in merged.skipped:
        print_line(f"skipped {run_id}: already in the campaign with the same values", "yellow")
    for run_id, _staging, kept_as in merged.conflicts:
        print_line(f"conflict: {run_id} is in the campaign with other values; both kept, the imported one as "
                   f"{kept_as}", "bold red")
    print_line(f"{args.campaign}: imported {len(merged.added)} of {result.runs} runs from {tool} {source}, skipped "
               f"{len(merged.skipped)} (already there), {len(merged.conflicts)} conflicts (kept under suffixed ids)")
    return 1 if merged.conflicts else 0


def cmd_export(args: argparse.Namespace) -> int:
    from pab_campaign.workflows.exporters import read_runs

    tool, target = args.target
    written_at = target.removeprefix("sqlite:///")  # a file or folder (MLflow's mlruns/, its SQLite file)
    if "://" not in written_at:
        refuse_inside_runs(f"--to {tool}", Path(written_at))
    runs, skipped = read_runs(Path(args.campaign), args.campaign_id)
    kept: list[str] = []
    if tool == "csv":
        from pab_campaign.workflows.exporters.csv import export_csv

        written = [str(export_csv(runs, Path(target)))]
        what = f"{len(runs)} runs to {target}"
    elif tool == "tensorboard":
        from pab_campaign.workflows.exporters.tensorboard import export_tensorboard

        directories, kept = _with_extra(tool, lambda: export_tensorboard(runs, Path(target)))
        written = [str(d) for d in directories]
        what = f"{len(written)} runs to {target} (tensorboard --logdir {target})"
    else:
        from pab_campaign.workflows.exporters.mlflow import export_mlflow

        experiment = args.experiment or Path(args.campaign).resolve().name
        written, kept = _with_extra(tool, lambda: export_mlflow(runs, target, experiment))
        what = f"{len(written)} runs to experiment '{experiment}' of {target}"
    for run_id in kept:
        print_line(f"skipped {run_id}: {target} has it already (delete it there to write it again)", "yellow")
    print_line(f"exported {what}")
    print_skipped(skipped)
    return 0


def _with_extra(tool: str, call: Callable[[], T]) -> T:
    """`call()`, with a missing package of the tool's extra named in one line."""
    from pab_campaign.errors import CampaignError
    from pab_campaign.workflows.importers import EXTRA_PACKAGES, missing_extra

    try:
        return call()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA_PACKAGES:
            raise
        raise CampaignError(missing_extra(tool, exc)) from None


def register(commands: Commands) -> None:
    importing = commands.add(
        "import", cmd_import,
        "make a campaign (or add to one) from runs another tool recorded: csv, tensorboard, mlflow, wandb (offline "
        "runs); same input, same run ids; a run the campaign has with other values is kept aside (exit 1)",
        "pab-campaign import outputs/mine --from tensorboard runs/ --map 'eval/accuracy=val/acc'", several=False)
    importing.add_argument("--from", dest="source", nargs=2, required=True, metavar=("TOOL", "SOURCE"),
                           action=_tool_and_source("--from", IMPORT_TOOLS),
                           help="csv FILE | tensorboard LOGDIR | mlflow URI (a mlruns directory or "
                                "sqlite:///mlflow.db) | wandb DIR (offline runs, run-*.wandb)")
    importing.add_argument("--map", nargs="+", action=SplitList, default=None, metavar="TAG=NAME",
                           help="name a tag's metric: --map 'eval/accuracy=val/acc' (other tags by the naming rule, "
                                "see README)")
    importing.add_argument("--steps-per-epoch", type=whole_number("--steps-per-epoch", 1, 10**9, "390"),
                           default=None, metavar="N",
                           help="the source counts steps: step s is in epoch ceil(s/N) (step 0 = epoch 0); every "
                                "step's value also goes to the run's steps.parquet")
    importing.add_argument("--hparams", type=Path, default=None, metavar="CSV",
                           help="tensorboard: hyper-parameters per run (a `run` column with each run's directory)")
    importing.add_argument("--experiment", default=None, metavar="NAME",
                           help="mlflow: the experiment to import, by name or id (needed when several have runs)")
    exporting = commands.add(
        "export", cmd_export,
        "write a campaign's runs for another tool: csv FILE (long layout), tensorboard DIR (HParams tab included), "
        "mlflow URI",
        "pab-campaign export outputs/demo --to tensorboard tb/ && tensorboard --logdir tb/", several=False)
    exporting.add_argument("--to", dest="target", nargs=2, required=True, metavar=("TOOL", "TARGET"),
                           action=_tool_and_source("--to", EXPORT_TOOLS),
                           help="csv FILE | tensorboard DIR | mlflow URI (a mlruns directory or sqlite:///mlflow.db)")
    exporting.add_argument("--experiment", default=None, metavar="NAME",
                           help="mlflow: the experiment to write into (default: the campaign's directory name)")
    add_campaign_filter(exporting, where=False)
