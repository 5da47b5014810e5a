"""A campaign as one CSV file in the long layout `import --from csv` reads: `run`, `epoch`, `metric`
(`context/metric[key]`), `value` (empty for NaN), `status`, then one column per hyper-parameter
(`hparams.<name>` for one named as a layout column; empty where a run lacks it). The file must be
new: export never replaces a file."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pab_campaign.errors import CampaignError
from pab_campaign.store import atomic_write
from pab_campaign.workflows.exporters import ExportedRun
from pab_campaign.workflows.importers.csv import hparam_column


def export_csv(runs: list[ExportedRun], path: Path) -> Path:
    """Write `runs` to the new CSV file `path` (atomically; its folder is created) and return it;
    CampaignError when `path` exists or cannot be written."""
    path = Path(path)
    if os.path.lexists(path):
        raise CampaignError(f"--to csv {path}: {'a directory' if path.is_dir() else 'the file'} exists; name a new "
                            "file (export never replaces one)")
    names = sorted({name for run in runs for name in run.record.hparams})
    frames = []
    for run in runs:
        frame = pd.DataFrame({"run": run.record.run_id, "epoch": run.trajectory["epoch"].astype(int),
                              "metric": run.trajectory["name"], "value": run.trajectory["value"].astype(float),
                              "status": str(run.record.status)})
        for name in names:  # as objects: run.json's 2 stays 2 beside another run's 0.5
            frame[hparam_column(name)] = pd.Series([run.record.hparams.get(name)] * len(frame), dtype=object)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    try:
        # pandas writes each float as its shortest exact text (1.0 stays 1.0; %.17g wrote it 1, read back as an int)
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
    except OSError as exc:
        raise CampaignError(f"--to csv {path}: cannot be written ({exc.strerror or exc}); name a file in a folder "
                            "you can write") from None
    return path
