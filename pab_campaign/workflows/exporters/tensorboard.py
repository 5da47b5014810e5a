"""A campaign as TensorBoard event files: one directory per run (`<DIR>/<run_id>/`), every trajectory
value a scalar tensor (float64) under its metric name (`val/loss`, `weights/erank[fc1]`) at step =
epoch, and the run's hyper-parameters and status through the HParams plugin (its experiment, session
start and end records in the run's own event file), so TensorBoard's HParams tab shows the grid with
each metric's last value. Written with `torch.utils.tensorboard.SummaryWriter` into a temp folder
renamed in once complete. A run whose directory exists is not written again."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus, Scalar, remove_stale_temps, temp_path
from pab_campaign.workflows.exporters import ExportedRun


def _hparam(value: Scalar) -> Any:
    """What the HParams plugin stores: numbers as numbers, anything else (bools, None) as its text,
    which `import --from tensorboard` reads back as the value."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _domains(runs: list[ExportedRun]) -> dict[str, list[str]]:
    """The values of each hyper-parameter stored as text, over all runs (the HParams tab's filters)."""
    domains: dict[str, set[str]] = {}
    for run in runs:
        for name, value in run.record.hparams.items():
            stored = _hparam(value)
            if isinstance(stored, str):
                domains.setdefault(name, set()).add(stored)
    text_everywhere = {name for name in domains
                       if all(isinstance(_hparam(r.record.hparams.get(name)), str) for r in runs)}
    return {name: sorted(values) for name, values in domains.items() if name in text_everywhere}


def export_tensorboard(runs: list[ExportedRun], directory: Path) -> tuple[list[Path], list[str]]:
    """Write each run under `directory`; (run directories written, run ids left as they were)."""
    directory = Path(directory)
    if os.path.lexists(directory) and not directory.is_dir():
        raise CampaignError(f"--to tensorboard {directory}: not a directory; name a new or existing directory")
    try:
        return _write(runs, directory)
    except OSError as exc:
        raise CampaignError(f"--to tensorboard {directory}: cannot be written ({exc.strerror or exc}); name a "
                            "directory you can write") from None


# The HParams plugin's session status (its api_pb2.Status) of each run status; it has no
# "diverged" or "preempted": a preempted run reads as one that was running when its log ended.
SESSION_STATUS = {RunStatus.COMPLETED: 1, RunStatus.FAILED: 2, RunStatus.DIVERGED: 2, RunStatus.RUNNING: 3,
                  RunStatus.PREEMPTED: 3}


def _ended(end: Any, status: RunStatus) -> Any:
    """torch's session-end summary `end` (it always says success) with the run's `status` instead."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    value = end.value[0]
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    data.session_end_info.status = SESSION_STATUS[status]
    value.metadata.plugin_data.content = data.SerializeToString()
    return end


def _write(runs: list[ExportedRun], directory: Path) -> tuple[list[Path], list[str]]:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    domains = _domains(runs)
    written, kept = [], []
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(directory)  # the half-written run of an export that was killed
    for run in runs:
        target = directory / run.record.run_id
        if os.path.lexists(target):
            kept.append(run.record.run_id)
            continue
        params = {name: _hparam(value) for name, value in run.record.hparams.items()}
        last = {name: value for name, value in run.last_values().items() if "[" not in name}
        partial = temp_path(target, "")  # renamed in whole once written: a killed export leaves no half run
        with SummaryWriter(log_dir=str(partial)) as writer:
            for epoch, name, value in zip(run.trajectory["epoch"], run.trajectory["name"], run.trajectory["value"]):
                # a double: a float32 made 1e300 inf and 0.9 0.8999999761581421
                writer.add_scalar(name, float(value), int(epoch), new_style=True, double_precision=True)
            experiment, start, end = hparams(params, last, {k: v for k, v in domains.items() if k in params})
            for summary in (experiment, start, _ended(end, run.record.status)):
                writer.file_writer.add_summary(summary)
        os.rename(partial, target)
        written.append(target)
    return written, kept
