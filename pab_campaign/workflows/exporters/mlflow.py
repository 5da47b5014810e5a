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
from pab_campaign.workflows.importers.mlflow import OUR_ERROR_TAG, OUR_STATUS_TAG, file_store_allowed, tracking_uri

STATUSES = {RunStatus.COMPLETED: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.DIVERGED: "FAILED",
            RunStatus.PREEMPTED: "KILLED", RunStatus.RUNNING: "RUNNING"}
BATCH = 1000
_NOT_MLFLOW = re.compile(r"[^A-Za-z0-9_\-./ ]")


# Our status and error, which MLflow's statuses cannot say (no "diverged"; no error text), go in run
# tags `import --from mlflow` reads back (OUR_STATUS_TAG, OUR_ERROR_TAG); a tag value's most characters.
MAX_TAG_VALUE = 5000


def mlflow_name(name: str) -> str:
    """`context/metric[key]` as an MLflow metric name: `context/metric/key`."""
    head, _, key = name.partition("[")
    return _NOT_MLFLOW.sub("_", head + (f"/{key.rstrip(']')}" if key else ""))


def _millis(text: str | None) -> int | None:
    """An ISO time in Unix milliseconds; None for none, or for text that is no time (a run.json from
    elsewhere is not trusted to hold one)."""
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000) if text else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


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

    check_params(runs)
    uri = tracking_uri(uri, must_exist=False)
    try:
        with file_store_allowed(uri):
            return _write(MlflowClient(tracking_uri=uri), runs, experiment)
    except MlflowException as exc:
        raise CampaignError(f"--to mlflow {uri}: {str(exc).splitlines()[0]}") from None


# MLflow's limits on a param's name and value (characters).
MAX_PARAM_NAME, MAX_PARAM_VALUE = 250, 6000


def check_params(runs: list[ExportedRun]) -> None:
    """CampaignError naming the first hyper-parameter MLflow would refuse as a param (a name of other
    characters than `_NOT_MLFLOW` allows, or past its lengths), or two metrics of a run that
    `mlflow_name` makes one, before anything is written."""
    for run in runs:
        for name, value in run.record.hparams.items():
            if _NOT_MLFLOW.search(name) or len(name) > MAX_PARAM_NAME:
                raise CampaignError(f"run {run.record.run_id}: hyper-parameter {name[:80]!r} cannot be an MLflow param "
                                    f"(MLflow takes letters, digits, _ - . / and spaces, at most {MAX_PARAM_NAME}); "
                                    "nothing was written; export --to csv or --to tensorboard keeps any name")
            if len(str(value)) > MAX_PARAM_VALUE:
                raise CampaignError(f"run {run.record.run_id}: the value of {name!r} is {len(str(value))} characters, "
                                    f"more than the {MAX_PARAM_VALUE} an MLflow param takes; nothing was written; "
                                    "export --to csv keeps it")
        named: dict[str, str] = {}
        for name in dict.fromkeys(run.trajectory["name"]):
            other = named.setdefault(mlflow_name(name), name)
            if other != name:  # one series would overwrite the other
                raise CampaignError(f"run {run.record.run_id}: metrics {other!r} and {name!r} both become MLflow's "
                                    f"{mlflow_name(name)!r}; nothing was written; export --to csv or --to tensorboard "
                                    "keeps every name")


def _write(client: Any, runs: list[ExportedRun], experiment: str) -> tuple[list[str], list[str]]:
    from mlflow.exceptions import MlflowException

    written, kept = [], []
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    have = {r.info.run_name for r in client.search_runs([experiment_id], max_results=50000)}
    for run in runs:
        if run.record.run_id in have:
            kept.append(run.record.run_id)
            continue
        start_ms = _millis(run.record.started_at)
        tags = {"pab_campaign.campaign": run.record.campaign or "", OUR_STATUS_TAG: str(run.record.status)}
        if run.record.error:
            tags[OUR_ERROR_TAG] = run.record.error[:MAX_TAG_VALUE]
        created = client.create_run(experiment_id, start_time=start_ms, run_name=run.record.run_id, tags=tags)
        try:
            _log(client, created.info.run_id, run, start_ms or created.info.start_time)
        except MlflowException:
            client.delete_run(created.info.run_id)  # no half-made run: the next export writes it whole
            raise
        if run.record.status != RunStatus.RUNNING:
            client.set_terminated(created.info.run_id, STATUSES[run.record.status], _millis(run.record.ended_at))
        written.append(run.record.run_id)
    return written, kept
