"""Runs from TensorBoard event files: one run per directory that holds `events.out.tfevents.*` files,
named by its path under the directory given (read with TensorBoard's own `EventAccumulator`).

Every scalar (a `simple_value`, or a scalar tensor of the scalars plugin) is read by tag and step with
its wall-clock time. Hyper-parameters come from, in this order: the `--hparams` CSV (a `run` column
with the run's directory path, one column per hyper-parameter); the HParams plugin (its session record
in the run's directory or, as `SummaryWriter.add_hparams` writes it, a sub-directory of it, whose
summary scalars are then not a run of their own); else the `key=value` parts of the directory's name. The
run's status is its HParams session end's (completed without one).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pandas as pd

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus, Scalar
from pab_campaign.workflows.importers.source import Point, SourceRun, hparams_from_name, parse_scalar

EVENTS = "events.out.tfevents."
SESSION_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"
MAX_HPARAMS_BYTES = 64 << 20


def _event_dirs(root: Path) -> list[Path]:
    """Directories under `root` (itself included) holding event files, sorted; links and hidden
    directories (an export's half-written `.<run>~…` temp) not followed. CampaignError for an event
    file that is a link or not a regular file (TensorBoard would read through the link, or wait
    forever on a pipe)."""
    found = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        events = [Path(directory) / name for name in files if name.startswith(EVENTS)]
        for path in events:
            if not stat.S_ISREG(path.lstat().st_mode):
                raise CampaignError(f"--from tensorboard {root}: {path} is a link or not a regular file; replace it "
                                    "with the event file itself or remove it")
        if events:
            found.append(Path(directory))
    return sorted(found)


def _load(directory: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


# The run's status as the HParams plugin's session end records it (its api_pb2.Status: 1 success,
# 2 failure, 3 running; `export --to tensorboard` writes ours). A session still running when its
# log ended is one that stopped: preempted (resumable). An absent or unknown one reads as completed.
STATUS_OF_SESSION = {1: RunStatus.COMPLETED, 2: RunStatus.FAILED, 3: RunStatus.PREEMPTED}


def _session_record(accumulator: Any, tag: str) -> Any:
    """The HParams plugin's record `tag` (session start or end) of this directory, None when it has
    none."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    try:
        content = accumulator.PluginTagToContent("hparams")
    except KeyError:  # no summary of the HParams plugin in this directory
        return None
    return plugin_data_pb2.HParamsPluginData.FromString(content[tag]) if tag in content else None


def _session_status(accumulator: Any) -> RunStatus:
    """The status the session end of this directory records (STATUS_OF_SESSION)."""
    data = _session_record(accumulator, SESSION_END_TAG)
    return RunStatus.COMPLETED if data is None else STATUS_OF_SESSION.get(int(data.session_end_info.status),
                                                                         RunStatus.COMPLETED)


def _session_hparams(accumulator: Any) -> dict[str, Scalar] | None:
    """The HParams plugin's hyper-parameters of this directory's session, None when it has none."""
    data = _session_record(accumulator, SESSION_TAG)
    if data is None:
        return None
    values: dict[str, Scalar] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        raw: Any = getattr(value, kind) if kind and kind != "null_value" else None
        if kind == "number_value" and float(raw).is_integer():
            raw = int(raw)  # protobuf numbers are doubles: 3 was written as 3.0
        values[name] = parse_scalar(raw) if kind == "string_value" else raw
    return values


def _points(accumulator: Any) -> list[Point]:
    """Every scalar of the directory: simple values, and scalar tensors of the scalars plugin."""
    from tensorboard.util import tensor_util

    tags = accumulator.Tags()
    points = [Point(tag, int(e.step), float(e.value), float(e.wall_time))
              for tag in tags.get("scalars", []) for e in accumulator.Scalars(tag)]
    for tag in tags.get("tensors", []):
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        for event in accumulator.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size == 1:
                points.append(Point(tag, int(event.step), float(array.reshape(())), float(event.wall_time)))
    return [p for p in points if not p.tag.startswith("_hparams_/")]


def _hparams_table(path: Path | None) -> dict[str, dict[str, Scalar]]:
    """The `--hparams` CSV as {run: {name: value}}."""
    if path is None:
        return {}
    if not Path(path).is_file():  # a pipe would be waited on forever
        raise CampaignError(f"--hparams {path}: no such file, or not a regular file; name a CSV file of the runs' "
                            "hyper-parameters")
    if Path(path).stat().st_size > MAX_HPARAMS_BYTES:
        raise CampaignError(f"--hparams {path}: larger than {MAX_HPARAMS_BYTES >> 20} MiB; a table of hyper-parameters "
                            "is one row per run")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CampaignError(f"--hparams {path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    if "run" not in frame.columns:
        raise CampaignError(f"--hparams {path}: needs a `run` column (each run's directory under the event-file "
                            "directory) and one column per hyper-parameter")
    return {str(row.pop("run")): {k: parse_scalar(v) for k, v in row.items()} for row in frame.to_dict("records")}


def read_tensorboard(root: Path, hparams_csv: Path | None = None) -> list[SourceRun]:
    """The runs of the event-file directory `root` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise CampaignError(f"--from tensorboard {root}: no such directory; name the log directory of your runs")
    directories = _event_dirs(root)
    if not directories:
        raise CampaignError(f"--from tensorboard {root}: no event files (events.out.tfevents.*) under it")
    given = _hparams_table(hparams_csv)
    loaded = {directory: _load(directory) for directory in directories}
    sessions = {directory: _session_hparams(acc) for directory, acc in loaded.items()}
    runs: dict[Path, SourceRun] = {}
    for directory in directories:
        if sessions[directory] is not None and directory.parent in loaded and directory != root:
            continue  # add_hparams' sub-directory: its hyper-parameters belong to the run above it
        name = directory.relative_to(root).as_posix() if directory != root else root.resolve().name
        runs[directory] = SourceRun("tensorboard", name, points=_points(loaded[directory]),
                                    status=_session_status(loaded[directory]))
    for directory, run in runs.items():
        children = [sessions[d] for d in directories if d.parent == directory and d not in runs and sessions[d]]
        session = sessions[directory] or (children[0] if children else None)
        run.hparams = given.get(run.name) or session or hparams_from_name(directory.name)
        walls = [p.wall_time for p in run.points if p.wall_time is not None]
        run.started, run.ended = (min(walls), max(walls)) if walls else (None, None)
    missing = sorted(set(given) - {run.name for run in runs.values()})
    if missing:
        raise CampaignError(f"--hparams {hparams_csv}: runs {missing[:3]} are not event-file directories under {root}; "
                            f"the runs are {sorted(run.name for run in runs.values())[:5]}")
    return list(runs.values())
