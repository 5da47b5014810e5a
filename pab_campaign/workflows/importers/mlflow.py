"""Runs from an MLflow tracking store (a local `file:` directory or a `sqlite:///` database; any
tracking URI MLflow's client reads): every run of one experiment, read with `MlflowClient`.

A run's params are its hyper-parameters (text turned into numbers where it reads as one), its metric
history its values by step with their timestamps, its status ours (FINISHED → completed, FAILED →
failed, KILLED → preempted, RUNNING or SCHEDULED → running), its MLflow run id its identity.

MLflow 3 refuses a `file:` store unless `MLFLOW_ALLOW_FILE_STORE` is set; a directory the user names
is their choice of store, so `file_store_allowed` sets it while that store is open.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import sqlite3
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus
from pab_campaign.workflows.importers.source import Point, SourceRun, parse_scalar

STATUSES = {"FINISHED": RunStatus.COMPLETED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.PREEMPTED,
            "RUNNING": RunStatus.RUNNING, "SCHEDULED": RunStatus.RUNNING}


# The tags `export --to mlflow` writes with our status and error (a diverged run, its error line).
OUR_STATUS_TAG, OUR_ERROR_TAG = "pab_campaign.status", "pab_campaign.error"
SQLITE_HEADER = b"SQLite format 3\0"
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def tracking_uri(text: str, must_exist: bool = True) -> str:
    """A tracking URI as MLflow takes it; a plain path is a local directory (`file:` store). With
    `must_exist`, a local store that is missing is refused (MLflow would create an empty one); without
    it, a missing SQLite database is created here, so that a folder it cannot be made in is said in
    one line (MLflow retries for minutes). A local store of the wrong kind is refused."""
    database = text.startswith("sqlite:///")
    local = text[len("sqlite:///"):] if database else None
    if local is None and "://" not in text and not text.startswith("file:"):
        local, text = text, Path(text).resolve().as_uri()
    if local is None:
        return text
    path = Path(local)
    if must_exist and not path.exists():
        raise CampaignError(f"mlflow store {local}: no such file or directory; name an MLflow tracking directory "
                            "(mlruns) or sqlite:///path/to/mlflow.db")
    if database:
        _check_database(path)
    elif os.path.lexists(path) and not path.is_dir():
        raise CampaignError(f"mlflow store {local}: not a directory; name an MLflow tracking directory (mlruns) or "
                            "sqlite:///path/to/mlflow.db")
    return text


def _check_database(path: Path) -> None:
    """CampaignError unless `path` is an SQLite database (or a new one can be made there)."""
    fix = "name an MLflow database (sqlite:///path/to/mlflow.db) or a new file in a folder you can write"
    if os.path.lexists(path):
        if not path.is_file():
            raise CampaignError(f"mlflow store {path}: not a regular file; {fix}")
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            raise CampaignError(f"mlflow store {path}: not an SQLite database; {fix}")
        return
    try:
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA user_version")
        connection.close()
    except sqlite3.Error as exc:
        raise CampaignError(f"mlflow store {path}: cannot be created ({exc}); {fix}") from None


@contextmanager
def file_store_allowed(uri: str) -> Iterator[None]:
    """While the block runs, MLflow opens the `file:` store `uri` (other URIs: nothing changes)."""
    if not uri.startswith("file:"):
        yield
        return
    before = os.environ.get(ALLOW_FILE_STORE)
    os.environ[ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_FILE_STORE, None)
        else:
            os.environ[ALLOW_FILE_STORE] = before


def _experiment(client: Any, uri: str, name: str | None) -> Any:
    experiments = [e for e in client.search_experiments() if client.search_runs([e.experiment_id], max_results=1)]
    if name is not None:  # a name, else an id (mlflow ui shows both)
        chosen = [e for e in experiments if e.name == name] or [e for e in experiments if e.experiment_id == name]
        if not chosen:
            raise CampaignError(f"--from mlflow {uri}: no experiment named '{name}' (or of that id) with runs; it has "
                                f"{', '.join(f'{e.name} (id {e.experiment_id})' for e in experiments) or 'none'}")
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


def _stored_value(value: float) -> float:
    """A metric value as it was logged: MLflow's SQL store keeps ±inf as ±1.7976931348623157e308
    (the largest double), which reads back as ±inf."""
    value = float(value)
    return math.copysign(math.inf, value) if abs(value) == sys.float_info.max else value


def read_mlflow(uri: str, experiment: str | None = None) -> list[SourceRun]:
    """Every run of `experiment` (the one experiment with runs when None) of the store at `uri`."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(uri)
    with tempfile.TemporaryDirectory(prefix="pab-mlflow-") as scratch:
        read_from = _read_only_store(uri, Path(scratch))
        try:
            with file_store_allowed(read_from):
                return _read_runs(MlflowClient(tracking_uri=read_from), uri, experiment)
        except MlflowException as exc:
            raise CampaignError(f"--from mlflow {uri}: {str(exc).splitlines()[0]}") from None


# The tables every MLflow database has (its schema's own; an SQLite file without them is another's).
MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs"})


def _read_only_store(uri: str, scratch: Path) -> str:
    """The URI to read the store `uri` through without writing to it: a local SQLite database is
    checked to be MLflow's (MLflow would add its ~30 tables to any other) and copied into `scratch`
    (opening it may migrate or lock it); a local directory must hold an experiment (MLflow would
    make `.trash` in any folder). Other URIs (a server) as they are."""
    not_mlflow = "name the database or mlruns directory MLflow wrote (sqlite:///path/to/mlflow.db or mlruns/)"
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
                tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.Error as exc:
            raise CampaignError(f"--from mlflow {uri}: cannot be read ({exc}); {not_mlflow}") from None
        if not tables >= MLFLOW_TABLES:
            raise CampaignError(f"--from mlflow {uri}: an SQLite database without MLflow's tables "
                                f"({', '.join(sorted(MLFLOW_TABLES - tables))}); {not_mlflow}")
        copy = scratch / path.name
        shutil.copyfile(path, copy)
        return f"sqlite:///{copy}"
    if uri.startswith("file:"):
        folder = Path(urllib.parse.unquote(urllib.parse.urlparse(uri).path))
        if not any(meta.is_file() for meta in folder.glob("*/meta.yaml")):
            raise CampaignError(f"--from mlflow {folder}: no experiment in it (no <experiment>/meta.yaml); "
                                f"{not_mlflow}")
    return uri


def _read_runs(client: Any, uri: str, experiment: str | None) -> list[SourceRun]:
    chosen = _experiment(client, uri, experiment)
    runs = []
    for run in _runs(client, chosen.experiment_id):
        info, data = run.info, run.data
        points = [Point(key, int(m.step), _stored_value(m.value), m.timestamp / 1000.0)
                  for key in sorted(data.metrics) for m in client.get_metric_history(info.run_id, key)]
        status = STATUSES.get(info.status, RunStatus.FAILED)
        error = None if info.status != "FAILED" else f"MLflow run {info.run_name or info.run_id} FAILED"
        ours = data.tags.get(OUR_STATUS_TAG)  # `export --to mlflow` keeps what MLflow's statuses cannot say
        if ours in {s.value for s in RunStatus} and ours != RunStatus.RUNNING.value:
            status, error = RunStatus(ours), data.tags.get(OUR_ERROR_TAG)
        runs.append(SourceRun(
            "mlflow", info.run_id, {k: parse_scalar(v) for k, v in data.params.items()}, points, status,
            info.start_time / 1000.0 if info.start_time else None,
            info.end_time / 1000.0 if info.end_time else None, error))
    return runs
