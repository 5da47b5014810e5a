"""`pab-campaign export`: a campaign's runs written for another tool (CSV, TensorBoard, MLflow), one
module per tool, each importing its tool only when it runs. `read_runs` reads the runs through the
data contract; a run that cannot be read is set aside with its reason, never exported half."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pab_campaign.errors import CampaignError, StoreError, one_line
from pab_campaign.metrics import label
from pab_campaign.store import RunRecord, is_campaign, iter_run_dirs, read_run_json, read_trajectory

TOOLS = ("csv", "tensorboard", "mlflow")


@dataclass
class ExportedRun:
    """One run to export: its record, and its trajectory with a `name` column (`context/metric[key]`)."""

    record: RunRecord
    trajectory: pd.DataFrame

    def last_values(self) -> dict[str, float]:
        """Each metric's value at its last epoch."""
        rows = self.trajectory.sort_values("epoch").groupby("name", sort=True).tail(1)
        return dict(zip(rows["name"], rows["value"].astype(float)))


def read_runs(campaign: Path, campaign_ids: list[str] | None = None) -> tuple[list[ExportedRun], list[tuple[str, str]]]:
    """The readable runs of `campaign` (those of `campaign_ids` only, when given), each with its
    folder's name as its run_id, and (run_id, reason) of those set aside."""
    campaign = Path(campaign)
    directories = [campaign] if (campaign / "run.json").is_file() else list(iter_run_dirs(campaign))
    if not is_campaign(campaign) and not (campaign / "run.json").is_file():
        raise CampaignError(f"{campaign} is not a campaign (no runs/ directory) nor a run directory")
    runs, skipped = [], []
    for directory in directories:
        try:
            record = read_run_json(directory)
            frame = read_trajectory(directory).to_pandas()
        except StoreError as exc:
            skipped.append((directory.name, one_line(exc)))
            continue
        if campaign_ids and record.campaign not in campaign_ids:
            continue
        # a run is its folder, as in the index: the run_id inside run.json (untrusted, e.g. '../x')
        # never names a file the export writes
        record = dataclasses.replace(record, run_id=directory.name)
        frame = frame.astype({"context": str, "metric": str, "key": object})
        frame["name"] = [label(c, m, None if pd.isna(k) else str(k))
                         for c, m, k in zip(frame["context"], frame["metric"], frame["key"])]
        runs.append(ExportedRun(record, frame.sort_values(["epoch", "name"], ignore_index=True)))
    if not runs:
        raise CampaignError(f"{campaign}: no readable runs to export" + (f" ({skipped[0][1]})" if skipped else ""))
    return runs, skipped
