"""A campaign as TensorBoard event files: one directory per run (`<DIR>/<run_id>/`), every trajectory
value a scalar under its metric name (`val/loss`, `weights/erank[fc1]`) at step = epoch, and the run's
hyper-parameters through the HParams plugin (its experiment, session start and end records in the
run's own event file), so TensorBoard's HParams tab shows the grid with each metric's last value.
Written with `torch.utils.tensorboard.SummaryWriter`. A run whose directory exists is not written again."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pab_campaign.errors import CampaignError
from pab_campaign.store import Scalar
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


def _write(runs: list[ExportedRun], directory: Path) -> tuple[list[Path], list[str]]:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    domains = _domains(runs)
    written, kept = [], []
    for run in runs:
        target = directory / run.record.run_id
        if target.exists():
            kept.append(run.record.run_id)
            continue
        params = {name: _hparam(value) for name, value in run.record.hparams.items()}
        last = {name: value for name, value in run.last_values().items() if "[" not in name}
        with SummaryWriter(log_dir=str(target)) as writer:
            for epoch, name, value in zip(run.trajectory["epoch"], run.trajectory["name"], run.trajectory["value"]):
                writer.add_scalar(name, float(value), int(epoch))
            experiment, start, end = hparams(params, last, {k: v for k, v in domains.items() if k in params})
            for summary in (experiment, start, end):
                writer.file_writer.add_summary(summary)
        written.append(target)
    return written, kept
