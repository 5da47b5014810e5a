"""`pab-campaign import`: runs another tool recorded (CSV, TensorBoard, MLflow, W&B offline), read
into `SourceRun`s by one module per tool (each imports its tool only when it runs) and written into a
campaign through the data contract by `writer`."""
from __future__ import annotations

from pathlib import Path

from pab_campaign.errors import CampaignError, did_you_mean
from pab_campaign.workflows.importers.source import SourceRun

TOOLS = ("csv", "tensorboard", "mlflow", "wandb")
EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
# The top-level packages an extra brings (protobuf's `google` with tensorboard and wandb).
EXTRA_PACKAGES = frozenset({"tensorboard", "mlflow", "wandb", "google"})


def read_source(tool: str, source: str, *, mapping: dict[str, str], steps_per_epoch: int | None = None,
                hparams_csv: Path | None = None, experiment: str | None = None) -> list[SourceRun]:
    """The runs of `source` as `tool` recorded them; CampaignError naming the extra to install when
    the tool's package is missing."""
    try:
        if tool == "csv":
            from pab_campaign.workflows.importers.csv import read_csv

            return read_csv(Path(source), mapping, steps_per_epoch)
        if tool == "tensorboard":
            from pab_campaign.workflows.importers.tensorboard import read_tensorboard

            return read_tensorboard(Path(source), hparams_csv)
        if tool == "mlflow":
            from pab_campaign.workflows.importers.mlflow import read_mlflow

            return read_mlflow(source, experiment)
        if tool == "wandb":
            from pab_campaign.workflows.importers.wandb import read_wandb

            return read_wandb(Path(source))
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA_PACKAGES:
            raise
        raise CampaignError(missing_extra(tool, exc)) from None
    raise CampaignError(f"--from {tool}: not a source{did_you_mean(tool, TOOLS)}; choose one of {', '.join(TOOLS)}")


def missing_extra(tool: str, exc: ModuleNotFoundError) -> str:
    """The one line that says which extra brings the missing package."""
    return (f"{tool} support needs the package '{exc.name}', which is not installed; "
            f"pip install 'pab-campaign[{EXTRAS.get(tool, tool)}]'")
