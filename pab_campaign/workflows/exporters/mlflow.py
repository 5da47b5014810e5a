"""A campaign into an MLflow tracking store (`file:` directory, `sqlite:///` database, any URI):
one MLflow run per run, in the experiment `--experiment` (default: the campaign's name), named by its
run id, with its hyper-parameters as params, its trajectory as metric history (step = epoch) and its
status (completed → FINISHED, failed or diverged → FAILED, preempted → KILLED, running → RUNNING).

MLflow metric names take letters, digits, `_ - . / ` and spaces: `context/metric[key]` becomes
`context/metric/key` (what `import --from mlflow` reads back as the key), other characters `_`. A run
the experiment already has (an MLflow run of the same name) is not written again."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus
from pab_campaign.workflows.exporters import ExportedRun
from pab_campaign.workflows.importers.mlflow import file_store_allowed, tracking_uri

STATUSES = {RunStatus.COMPLETED: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.DIVERGED: "FAILED",
            RunStatus.PREEMPTED: "KILLED", RunStatus.RUNNING: "RUNNING"}
BATCH = 1000
_NOT_MLFLOW = re.compile(r"[^A-Za-z0-9_\-./ ]")


def mlflow_name(name: str) -> str:
    """`context/metric[key]` as an MLflow metric name: `context/metric/key`."""
    head, _, key = name.partition("[")
    return _NOT_MLFLOW.sub("_", head + (f"/{key.rstrip(']')}" if key else ""))


def _millis(text: str | None) -> int | None:
    return int(datetime.fromisoformat(text).timestamp() * 1000) if text else None


def _log(client: Any, run_id: str, run: ExportedRun, start_ms: int) -> None:
    from mlflow.entities import Metric, Param

    params = [Param(name, "None" if value is None else str(value)) for name, value in run.record.hparams.items()]
    metrics = [Metric(mlflow_name(name), float(value), start_ms, int(epoch))
               for epoch, name, value in zip(run.trajectory["epoch"], run.trajectory["name"], run.trajectory["value"])]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[i:i + BATCH])


def export_mlflow(runs: list[ExportedRun], uri: str, experiment: str) -> tuple[list[str], list[str]]:
    """Write `runs` into `experiment` of the store at `uri`; (run ids written, run ids it had)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(uri, must_exist=False)
    try:
        with file_store_allowed(uri):
            return _write(MlflowClient(tracking_uri=uri), runs, experiment)
    except MlflowException as exc:
        raise CampaignError(f"--to mlflow {uri}: {str(exc).splitlines()[0]}") from None


def _write(client: Any, runs: list[ExportedRun], experiment: str) -> tuple[list[str], list[str]]:
    written, kept = [], []
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    have = {r.info.run_name for r in client.search_runs([experiment_id], max_results=50000)}
    for run in runs:
        if run.record.run_id in have:
            kept.append(run.record.run_id)
            continue
        start_ms = _millis(run.record.started_at)
        created = client.create_run(experiment_id, start_time=start_ms, run_name=run.record.run_id,
                                    tags={"pab_campaign.campaign": run.record.campaign or ""})
        _log(client, created.info.run_id, run, start_ms or created.info.start_time)
        if run.record.status != RunStatus.RUNNING:
            client.set_terminated(created.info.run_id, STATUSES[run.record.status], _millis(run.record.ended_at))
        written.append(run.record.run_id)
    return written, kept
