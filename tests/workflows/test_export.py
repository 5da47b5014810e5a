"""`export`: a campaign written for CSV, TensorBoard and MLflow, read back with each tool's own reader
(the CSV through `import`, TensorBoard's EventAccumulator, mlflow.search_runs)."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from pab_campaign import cli
from pab_campaign.store import host_name, iter_run_dirs, read_run_json, read_trajectory
from tests.helpers import write_run

HP = ({"optimizer.lr": 0.1, "model.name": "mlp", "amp": True, "seed": 0},
      {"optimizer.lr": 1.0, "model.name": "cnn", "amp": False, "seed": 1})


def _campaign(root):
    """Two runs over epochs 0..2: val/loss (NaN at one epoch), val/acc and a keyed weights/erank[fc1]."""
    rng = np.random.default_rng(0)
    values = {}
    for index, hparams in enumerate(HP):
        loss = list(rng.uniform(0.1, 2, 3))
        if index == 1:
            loss[1] = math.nan
        series = {("val", "loss"): loss, ("val", "acc"): list(rng.uniform(0, 1, 3))}
        keyed = {("weights", "erank", "fc1"): list(rng.uniform(1, 5, 3))}
        write_run(root, f"run{index}", hparams, series, keyed=keyed)
        values[f"run{index}"] = {**{f"{c}/{m}": v for (c, m), v in series.items()}, "weights/erank[fc1]": keyed[
            ("weights", "erank", "fc1")]}
    return values


def _main(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def _same(a, b):
    return all((math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, rel=1e-6) for x, y in zip(a, b))


def test_csv_export_imports_back_to_the_same_values(tmp_path, capsys):
    values = _campaign(tmp_path / "c")
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "csv", str(tmp_path / "out.csv")])
    assert code == 0, out
    table = pd.read_csv(tmp_path / "out.csv")
    assert list(table.columns[:5]) == ["run", "epoch", "metric", "value", "status"] and len(table) == 18
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "csv", str(tmp_path / "out.csv")])
    assert code == 0, out
    for directory in iter_run_dirs(tmp_path / "back"):
        record = read_run_json(directory)
        original = record.versions["import.source"].removeprefix("csv:")
        assert record.hparams == HP[int(original[-1])]  # numbers, booleans and text come back as they were
        assert type(record.hparams["optimizer.lr"]) is float  # 1.0 stays a float, not the whole number 1
        frame = read_trajectory(directory).to_pandas()
        frame["name"] = [f"{c}/{m}" + (f"[{k}]" if isinstance(k, str) else "")
                         for c, m, k in zip(frame["context"], frame["metric"], frame["key"])]
        assert set(frame["name"]) == set(values[original])  # weights/erank[fc1] keeps its key
        for name, series in values[original].items():
            assert _same(frame[frame["name"] == name].sort_values("epoch")["value"], series)


def test_csv_hyper_parameters_named_as_its_columns_or_lacking_in_some_runs_come_back_as_they_were(tmp_path, capsys):
    """Hyper-parameters `value`, `status`, `step`, `wall_time` once overwrote the layout's columns
    (every metric value lost, the status replaced); an int beside another run's float, and a
    hyper-parameter some runs lack, came back changed."""
    given = {"a": {"value": 7, "width": 2}, "b": {"status": "baseline", "width": 0.5},
             "c": {"step": 3, "wall_time": 5, "hparams.x": "y"}, "d": {}}
    for run_id, hparams in given.items():
        write_run(tmp_path / "c", run_id, hparams, {("val", "loss"): [1.0, 0.5]},
                  status="failed" if run_id == "b" else "completed")
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "csv", str(tmp_path / "out.csv")])
    assert code == 0, out
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "csv", str(tmp_path / "out.csv")])
    assert code == 0, out
    back = {read_run_json(d).versions["import.source"].removeprefix("csv:"): d
            for d in iter_run_dirs(tmp_path / "back")}
    for run_id, hparams in given.items():
        record = read_run_json(back[run_id])
        assert record.hparams == hparams
        assert {k: type(v) for k, v in record.hparams.items()} == {k: type(v) for k, v in hparams.items()}
        assert record.status.value == ("failed" if run_id == "b" else "completed")
        assert read_trajectory(back[run_id]).to_pandas()["value"].tolist() == [1.0, 0.5]


def test_tensorboard_export_reads_back_with_event_accumulator(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.compat.proto import types_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util import tensor_util

    values = _campaign(tmp_path / "c")
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "tensorboard", str(tmp_path / "tb")])
    assert code == 0 and "exported 2 runs" in out, out
    for run_id, series in values.items():
        accumulator = EventAccumulator(str(tmp_path / "tb" / run_id), size_guidance={"tensors": 0})
        accumulator.Reload()
        scalars = [t for t in accumulator.Tags()["tensors"] if not t.startswith("_hparams_/")]
        assert set(scalars) == set(series)
        for name, expected in series.items():
            events = accumulator.Tensors(name)  # scalars of the scalars plugin, as float64 tensors
            assert accumulator.SummaryMetadata(name).plugin_data.plugin_name == "scalars"
            assert {e.tensor_proto.dtype for e in events} == {types_pb2.DT_DOUBLE}
            assert [e.step for e in events] == [0, 1, 2]
            assert _same([float(tensor_util.make_ndarray(e.tensor_proto)) for e in events], expected)
        session = plugin_data_pb2.HParamsPluginData.FromString(
            accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
        hparams = HP[int(run_id[-1])]
        assert session.hparams["optimizer.lr"].number_value == hparams["optimizer.lr"]
        assert session.hparams["model.name"].string_value == hparams["model.name"]
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "tensorboard", str(tmp_path / "tb")])
    assert code == 0 and "exported 0 runs" in out and "skipped run0" in out, out
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "tensorboard", str(tmp_path / "tb")])
    assert code == 0, out
    assert sorted(read_run_json(d).hparams["amp"] for d in iter_run_dirs(tmp_path / "back")) == [False, True]


def test_tensorboard_round_trip_keeps_doubles_and_statuses_and_a_killed_export_is_finished(tmp_path, capsys):
    """torch wrote float32 scalars (1e300 came back inf, 0.9 as 0.8999999761581421) and every session
    as a success; a killed export left a half run that the next export took for done."""
    statuses = {"done": "completed", "broke": "failed", "blew": "diverged", "stopped": "preempted"}
    for seed, (run_id, status) in enumerate(statuses.items()):
        write_run(tmp_path / "c", run_id, {"seed": seed}, {("val", "loss"): [1e300, 0.9]}, status=status)
    stale = tmp_path / "tb" / f".done~{host_name()}~999999999~00000000"  # what a killed export of `done` left
    stale.mkdir(parents=True)
    (stale / "events.out.tfevents.1.x").write_bytes(b"")
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "tensorboard", str(tmp_path / "tb")])
    assert code == 0 and "exported 4 runs" in out, out
    assert sorted(os.listdir(tmp_path / "tb")) == sorted(statuses)  # the stale temp removed, nothing half-made
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "tensorboard", str(tmp_path / "tb")])
    assert code == 0, out
    back = {read_run_json(d).hparams["seed"]: d for d in iter_run_dirs(tmp_path / "back")}
    expected = {"completed": "completed", "failed": "failed", "diverged": "failed", "preempted": "preempted"}
    for seed, status in enumerate(statuses.values()):
        directory = back[seed]
        assert read_run_json(directory).status.value == expected[status]
        assert read_trajectory(directory).to_pandas()["value"].tolist() == [1e300, 0.9]


def test_mlflow_export_reads_back_with_search_runs(tmp_path, capsys):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    values = _campaign(tmp_path / "c")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", uri, "--experiment", "demo"])
    assert code == 0 and "exported 2 runs to experiment 'demo'" in out, out
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["demo"]).set_index("tags.mlflow.runName")
    assert set(runs.index) == set(values) and set(runs["status"]) == {"FINISHED"}
    assert runs.loc["run1", "params.model.name"] == "cnn" and runs.loc["run0", "params.optimizer.lr"] == "0.1"
    assert runs.loc["run0", "metrics.weights/erank/fc1"] == pytest.approx(values["run0"]["weights/erank[fc1]"][-1])
    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(runs.loc["run1", "run_id"], "val/loss")
    assert [m.step for m in history] == [0, 1, 2] and _same([m.value for m in history], values["run1"]["val/loss"])
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "mlflow", uri])
    assert code == 0, out
    keys = {k for d in iter_run_dirs(tmp_path / "back") for k in read_trajectory(d).to_pandas()["key"].dropna()}
    assert keys == {"fc1"}  # weights/erank/fc1 reads back as weights/erank[fc1]


def test_export_never_replaces_a_file_and_refuses_a_target_of_the_wrong_kind(tmp_path, capsys):
    _campaign(tmp_path / "c")
    run_json = next(iter_run_dirs(tmp_path / "c")) / "run.json"
    kept = run_json.read_bytes()
    (tmp_path / "notes.txt").write_text("precious")
    for target, fragment in ((run_json, "whose files belong to the runs"), (tmp_path / "notes.txt", "the file exists"),
                             (tmp_path / "c", "a directory exists")):
        code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "csv", str(target)])
        assert code == 2 and fragment in out and "name a" in out and len(out.splitlines()) == 1, out
    assert run_json.read_bytes() == kept and (tmp_path / "notes.txt").read_text() == "precious"
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "tensorboard", str(tmp_path / "notes.txt")])
    assert code == 2 and "not a directory" in out and len(out.splitlines()) == 1, out
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", f"sqlite:///{tmp_path / 'notes.txt'}"])
    assert code == 2 and "not an SQLite database" in out and len(out.splitlines()) == 1, out
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", "sqlite:////proc/pab/mlflow.db"])
    assert code == 2 and "cannot be created" in out and len(out.splitlines()) == 1, out
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_mlflow_export_and_import_through_a_mlruns_directory(tmp_path, capsys, monkeypatch):
    """MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is set; a directory named here is one."""
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    values = _campaign(tmp_path / "c")
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", str(tmp_path / "mlruns")])
    assert code == 0 and "exported 2 runs" in out, out
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "mlflow", str(tmp_path / "mlruns")])
    assert code == 0 and "imported 2 of 2 runs" in out, out
    names = {f"{row['context']}/{row['metric']}" + (f"[{row['key']}]" if row["key"] else "")
             for d in iter_run_dirs(tmp_path / "back") for row in read_trajectory(d).to_pylist()}
    assert names == set(values["run0"])
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_a_run_json_naming_another_path_writes_nothing_outside_the_export(tmp_path, capsys):
    """run.json is untrusted: a run_id of '../x' or an absolute path names no file of the export (a
    run is its folder, as in the index)."""
    pytest.importorskip("tensorboard")
    from pab_campaign.store import RunRecord, run_dir, write_run_json

    _campaign(tmp_path / "c")
    for directory, hostile in zip(sorted(iter_run_dirs(tmp_path / "c")), ["../escaped", str(tmp_path / "planted")]):
        record = read_run_json(directory)
        write_run_json(directory, RunRecord(**{**record.__dict__, "run_id": hostile}))
    export = tmp_path / "out" / "tb"
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "tensorboard", str(export)])
    assert code == 0 and "exported 2 runs" in out, out
    assert sorted(p.name for p in export.iterdir()) == ["run0", "run1"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tb"] and not (tmp_path / "planted").exists()
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "csv", str(tmp_path / "runs.csv")])
    assert code == 0 and set(pd.read_csv(tmp_path / "runs.csv")["run"]) == {"run0", "run1"}
    assert run_dir(tmp_path / "c", "run0").is_dir()


def test_mlflow_export_refuses_a_param_mlflow_would_refuse_before_writing(tmp_path, capsys):
    pytest.importorskip("mlflow")
    _campaign(tmp_path / "c")
    write_run(tmp_path / "c", "odd", {"optim<lr>": 0.1, "seed": 3}, {("val", "loss"): [1.0, 0.5]})
    database = tmp_path / "mlflow.db"
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", f"sqlite:///{database}"])
    assert code == 2 and len(out.splitlines()) == 1, out
    assert "hyper-parameter 'optim<lr>' cannot be an MLflow param" in out and "--to csv" in out
    assert not database.exists()


def test_mlflow_export_refuses_two_metrics_mlflow_would_name_alike_and_takes_a_foreign_date(tmp_path, capsys):
    """Keys 猫 and 犬 both became probe/acc/_ (one series lost, exit 0); a run.json whose started_at
    is no time ended in an internal error with the runs before it written."""
    pytest.importorskip("mlflow")
    write_run(tmp_path / "c", "cats", {"seed": 0}, {("val", "loss"): [1.0, 0.5]},
              keyed={("probe", "acc", "猫"): [0.1, 0.2], ("probe", "acc", "犬"): [0.3, 0.4]})
    database = tmp_path / "mlflow.db"
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", f"sqlite:///{database}"])
    assert code == 2 and len(out.splitlines()) == 1, out
    assert "both become MLflow's 'probe/acc/_'" in out and not database.exists()
    run = write_run(tmp_path / "d", "dated", {"seed": 1}, {("val", "loss"): [1.0, 0.5]})
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "started_at": "yesterday"}))
    code, out = _main(capsys, ["export", str(tmp_path / "d"), "--to", "mlflow", f"sqlite:///{database}"])
    assert code == 0 and "exported 1 runs" in out, out


def test_an_infinite_loss_comes_back_infinite_through_mlflows_sql_store(tmp_path, capsys):
    """MLflow's SQL store keeps inf as the largest double: a diverged run's loss came back finite, and
    the run came back failed, its error replaced by 'MLflow run ... FAILED'."""
    pytest.importorskip("mlflow")
    run = write_run(tmp_path / "c", "blew", {"seed": 0}, {("val", "loss"): [1.0, math.inf, -math.inf]},
                    status="diverged")
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "error": "val loss inf at epoch 1"}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out = _main(capsys, ["export", str(tmp_path / "c"), "--to", "mlflow", uri])
    assert code == 0, out
    code, out = _main(capsys, ["import", str(tmp_path / "back"), "--from", "mlflow", uri])
    assert code == 0, out
    (directory,) = iter_run_dirs(tmp_path / "back")
    assert read_trajectory(directory).to_pandas().sort_values("epoch")["value"].tolist() == [1.0, math.inf, -math.inf]
    record = read_run_json(directory)  # MLflow says FAILED; our tags keep diverged and the run's error
    assert record.status.value == "diverged" and record.error == "val loss inf at epoch 1"
