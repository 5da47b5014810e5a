"""Runs from an MLflow tracking store (a local `file:` directory or a `sqlite:///` database; any
tracking URI MLflow's client reads): every run of one experiment, read with `MlflowClient`.

A run's params are its hyper-parameters (text turned into numbers where it reads as one), its metric
history its values by step with their timestamps, its status ours (FINISHED → completed, FAILED →
failed, KILLED → preempted, RUNNING or SCHEDULED → running), its MLflow run id its identity.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus
from pab_campaign.workflows.importers.source import Point, SourceRun, parse_scalar

STATUSES = {"FINISHED": RunStatus.COMPLETED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.PREEMPTED,
            "RUNNING": RunStatus.RUNNING, "SCHEDULED": RunStatus.RUNNING}


def tracking_uri(text: str, must_exist: bool = True) -> str:
    """A tracking URI as MLflow takes it; a plain path is a local directory (`file:` store). With
    `must_exist`, a local store that is missing is refused (MLflow would create an empty one)."""
    local = text[len("sqlite:///"):] if text.startswith("sqlite:///") else None
    if local is None and "://" not in text and not text.startswith("file:"):
        local, text = text, Path(text).resolve().as_uri()
    if must_exist and local is not None and not Path(local).exists():
        raise CampaignError(f"mlflow store {local}: no such file or directory; name an MLflow tracking directory "
                            "(mlruns) or sqlite:///path/to/mlflow.db")
    return text


def _experiment(client: Any, uri: str, name: str | None) -> Any:
    experiments = [e for e in client.search_experiments() if client.search_runs([e.experiment_id], max_results=1)]
    if name is not None:
        chosen = [e for e in experiments if e.name == name]
        if not chosen:
            raise CampaignError(f"--from mlflow {uri}: no experiment '{name}' with runs; it has "
                                f"{sorted(e.name for e in experiments) or 'none'}")
        return chosen[0]
    if len(experiments) != 1:
        raise CampaignError(f"--from mlflow {uri}: {len(experiments)} experiments have runs "
                            f"({sorted(e.name for e in experiments)}); choose one with --experiment NAME")
    return experiments[0]


def _runs(client: Any, experiment_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token,
                                  order_by=["attributes.start_time"])
        runs += list(page)
        token = page.token
        if not token:
            return runs


def read_mlflow(uri: str, experiment: str | None = None) -> list[SourceRun]:
    """Every run of `experiment` (the one experiment with runs when None) of the store at `uri`."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        chosen = _experiment(client, uri, experiment)
        found = _runs(client, chosen.experiment_id)
        runs = []
        for run in found:
            info, data = run.info, run.data
            points = [Point(key, int(m.step), float(m.value), m.timestamp / 1000.0)
                      for key in sorted(data.metrics) for m in client.get_metric_history(info.run_id, key)]
            runs.append(SourceRun(
                "mlflow", info.run_id, {k: parse_scalar(v) for k, v in data.params.items()}, points,
                STATUSES.get(info.status, RunStatus.FAILED),
                info.start_time / 1000.0 if info.start_time else None,
                info.end_time / 1000.0 if info.end_time else None,
                None if info.status != "FAILED" else f"MLflow run {info.run_name or info.run_id} FAILED"))
    except MlflowException as exc:
        raise CampaignError(f"--from mlflow {uri}: {str(exc).splitlines()[0]}") from None
    return runs
