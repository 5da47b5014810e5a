"""Write foreign runs into a campaign through the data contract, as `merge` adds runs.

Each run's id is the run-id hash of its hyper-parameters plus its identity in the tool (`import.source`
= `<tool>:<name>`), so importing the same input again gives the same ids. The runs are first written
into a temp campaign beside the destination (one left by a killed import is removed by the next), then
merged into it: a run the destination has with the
same values is skipped, one it has with other values is a conflict, kept aside under a suffixed id
(`merge`'s rule), and nothing is overwritten.

The epoch axis: without `steps_per_epoch` a tool's step is the epoch (0 = before training). With it,
a step falls in epoch ⌈step / steps_per_epoch⌉ (step 0 in epoch 0); the trajectory takes each metric's
value at the last step recorded in an epoch, and every value, with its step and wall-clock time, also
goes to the run's `steps.parquet`. When a metric has several values at one step, the last one
recorded counts, as the tools show it.
"""
from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from pab_campaign.analysis.campaign.merge import MergeResult, check_destination, merge
from pab_campaign.errors import CampaignError
from pab_campaign.store import (
    MAX_EPOCH,
    MAX_STEP,
    RunRecord,
    StepBuffer,
    TrajectoryBuffer,
    host_name,
    remove_stale_temps,
    run_dir,
    temp_path,
    write_run_json,
    write_steps,
    write_trajectory,
)
from pab_campaign.training.identity import run_id
from pab_campaign.workflows.importers.source import SourceRun, metric_for_tag

SOURCE_KEY = "import.source"


@dataclass
class ImportOptions:
    """`mapping`: tag → metric name (`--map`); `steps_per_epoch`: steps in one epoch (None: steps are epochs)."""

    mapping: dict[str, str] = field(default_factory=dict)
    steps_per_epoch: int | None = None


@dataclass
class BuiltRun:
    """A foreign run in the contract's shapes, before it is written."""

    record: RunRecord
    trajectory: TrajectoryBuffer
    steps: StepBuffer | None
    notes: list[str] = field(default_factory=list)


def imported_run_id(run: SourceRun) -> str:
    """The run's id: the run-id hash of its hyper-parameters and `import.source` = `<tool>:<name>`."""
    return run_id({**run.hparams, SOURCE_KEY: f"{run.tool}:{run.name}"})


def _epoch(step: int, steps_per_epoch: int | None) -> int:
    return step if steps_per_epoch is None else -(-step // steps_per_epoch)


def _iso(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _tool_version(tool: str) -> dict[str, str]:
    package = {"csv": None, "tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}.get(tool)
    try:
        return {package: metadata.version(package)} if package else {}
    except metadata.PackageNotFoundError:
        return {}


def build_run(run: SourceRun, campaign: str, options: ImportOptions) -> BuiltRun:
    """The run's record, trajectory (one value per epoch and metric) and steps (with steps_per_epoch)."""
    identifier = imported_run_id(run)
    notes: list[str] = []
    latest: dict[tuple[int, str, str, str | None], tuple[int, float]] = {}
    steps = StepBuffer() if options.steps_per_epoch else None
    names: dict[str, tuple[str, str, str | None]] = {}
    repeated = 0
    for point in run.points:
        name = names.get(point.tag) or names.setdefault(point.tag, metric_for_tag(point.tag, options.mapping))
        epoch = _epoch(point.step, options.steps_per_epoch)
        slot = (epoch, *name)
        if slot in latest and latest[slot][0] == point.step and options.steps_per_epoch is None:
            repeated += 1
        if slot not in latest or point.step >= latest[slot][0]:
            latest[slot] = (point.step, point.value)
        if steps is not None:
            steps.add(point.step, epoch, point.wall_time, name[0], name[1], point.value, name[2])
    if repeated:
        notes.append(f"{run.tool} run '{run.name}': {repeated} values recorded again at a step already recorded; "
                     "the last one recorded is kept")
    clashes = _clashing_tags(names)
    if clashes:
        raise CampaignError(f"{run.tool} run '{run.name}': tags {clashes} all become the metric name "
                            f"'{_label(names[clashes[0]])}'; tell them apart with --map TAG=NAME")
    trajectory = TrajectoryBuffer()
    for (epoch, context, metric, key), (_step, value) in sorted(latest.items(), key=lambda item: _sort_key(item[0])):
        trajectory.add(epoch, context, metric, value, key)
    walls = [p.wall_time for p in run.points if p.wall_time is not None]
    started = run.started if run.started is not None else (min(walls) if walls else None)
    ended = run.ended if run.ended is not None else (max(walls) if walls else None)
    duration = ended - started if started is not None and ended is not None and ended >= started else None
    record = RunRecord(
        run_id=identifier, status=run.status, campaign=campaign, hparams=dict(sorted(run.hparams.items())),
        seed=_seed(run), started_at=_iso(started), ended_at=_iso(ended), duration_s=duration,
        epochs_done=max(trajectory.epoch, default=0), host=host_name(),
        versions={**_tool_version(run.tool), SOURCE_KEY: f"{run.tool}:{run.name}"}, error=run.error)
    return BuiltRun(record, trajectory, steps, notes)


def _label(name: tuple[str, str, str | None]) -> str:
    return f"{name[0]}/{name[1]}" + (f"[{name[2]}]" if name[2] is not None else "")


def _clashing_tags(names: dict[str, tuple[str, str, str | None]]) -> list[str]:
    """The tags of the first metric name that several tags map to ([] when none)."""
    by_name: dict[tuple[str, str, str | None], list[str]] = {}
    for tag, name in names.items():
        by_name.setdefault(name, []).append(tag)
    return next((sorted(tags) for tags in by_name.values() if len(tags) > 1), [])


def _sort_key(slot: tuple[int, str, str, str | None]) -> tuple[int, str, str, str]:
    return slot[0], slot[1], slot[2], slot[3] or ""


def _seed(run: SourceRun) -> int | None:
    seed = run.hparams.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


@dataclass
class ImportResult:
    """What the import added, skipped and kept aside (merge's result) and the notes on the way."""

    merged: MergeResult
    runs: int
    notes: list[str] = field(default_factory=list)


def _left_out(run: SourceRun, steps_per_epoch: int | None) -> str | None:
    """Why `run` is not imported (a note), None when it is."""
    if not run.points:
        return f"{run.tool} run '{run.name}': no scalar values (only other kinds of data, or none); left out"
    bad = next((p for p in run.points if not 0 <= p.step <= MAX_STEP), None)
    if bad is not None:
        return (f"{run.tool} run '{run.name}': tag '{bad.tag}' has step {bad.step}, but steps count from 0 (before "
                "training) and are below 2**63; left out")
    late = next((p for p in run.points if _epoch(p.step, steps_per_epoch) > MAX_EPOCH), None)
    if late is not None:
        return (f"{run.tool} run '{run.name}': tag '{late.tag}' has step {late.step}, past the last epoch a run holds "
                f"({MAX_EPOCH}); give --steps-per-epoch N if the tool counted batches; left out")
    return None


def import_runs(runs: list[SourceRun], destination: Path, options: ImportOptions,
                say: Callable[[str], None] = lambda _line: None) -> ImportResult:
    """Write `runs` into the campaign `destination` (see the module docstring); a run without scalar
    values or with a step below 0 is left out with a note."""
    check_destination(Path(destination), f"campaign {destination}")
    destination = Path(destination).resolve()
    if not runs:
        raise CampaignError("the source holds no runs; nothing was imported")
    reasons = [_left_out(run, options.steps_per_epoch) for run in runs]
    notes = [reason for reason in reasons if reason]
    runs = [run for run, reason in zip(runs, reasons) if reason is None]
    if not runs:
        raise CampaignError(f"no run of the source can be imported ({notes[0]}); nothing was imported")
    campaign = destination.name
    built = [build_run(run, campaign, options) for run in runs]
    ids: dict[str, str] = {}
    for run, item in zip(runs, built):
        other = ids.setdefault(item.record.run_id, run.name)
        if other != run.name:
            raise CampaignError(f"{run.tool} runs '{other}' and '{run.name}' have the same identity; nothing was "
                                "imported")
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(destination.parent)  # the staging directory of an import that was killed
    staging = temp_path(destination.parent / destination.name, "")
    try:
        for item in built:
            directory = run_dir(staging, item.record.run_id)
            directory.mkdir(parents=True)
            write_trajectory(directory, item.trajectory.to_table())
            if item.steps is not None and len(item.steps):
                write_steps(directory, item.steps.to_table())
            write_run_json(directory, item.record)
        say(f"read {len(built)} runs; merging them into {destination}")
        merged = merge([staging], destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImportResult(merged, len(built), notes + [note for item in built for note in item.notes])
