import json
import math

import pyarrow.parquet as pq
import pytest

from pab_campaign import store
from pab_campaign.errors import ConfigError
from pab_campaign.training.run import execute
from tests.helpers import compose_config

TINY = ["train.epochs=3", "runtime.verbose=false", "tracking=default", "checkpoint.every=0"]


def test_same_config_twice_gives_identical_trajectories(tmp_path):
    first = execute(compose_config([*TINY, "model=cnn"], tmp_path / "one"))
    second = execute(compose_config([*TINY, "model=cnn"], tmp_path / "two"))
    assert first.status == second.status == "completed"
    assert first.run_id == second.run_id
    a = pq.read_table(first.directory / store.TRAJECTORY)
    b = pq.read_table(second.directory / store.TRAJECTORY)
    assert a.num_rows > 0 and a.schema.equals(b.schema)
    assert a.to_pandas().equals(b.to_pandas())  # NaN in the same places counts as equal


def test_run_writes_contract_files_and_skips_when_done(tmp_path):
    cfg = compose_config(TINY, tmp_path / "c")
    outcome = execute(cfg, overrides=["seed=0"])
    record = store.read_run_json(outcome.directory)
    assert set(json.loads((outcome.directory / store.RUN_JSON).read_text())) == set(store.RUN_FIELDS)
    assert record.status == "completed" and record.epochs_done == 3 and record.restarts == 0
    assert record.overrides == ["seed=0"] and record.hparams["optimizer.lr"] == 0.05
    table = store.read_trajectory(outcome.directory)
    assert table.column_names == ["epoch", "context", "metric", "key", "value"]
    assert sorted(set(table.column("epoch").to_pylist())) == [0, 1, 2, 3]
    metrics = {(c, m) for c, m in zip(table.column("context").to_pylist(), table.column("metric").to_pylist())}
    assert {("train", "acc"), ("val", "loss"), ("test", "acc"), ("val", "gen_gap"), ("weights", "erank")} <= metrics
    mtime = (outcome.directory / store.TRAJECTORY).stat().st_mtime_ns
    again = execute(cfg)
    assert again.skipped and again.status == "completed"
    assert (outcome.directory / store.TRAJECTORY).stat().st_mtime_ns == mtime


def test_gen_gap_sign_is_train_minus_val(tmp_path):
    outcome = execute(compose_config(TINY, tmp_path / "g"))
    rows = store.read_trajectory(outcome.directory).to_pylist()
    at = {(r["context"], r["metric"]): r["value"] for r in rows if r["epoch"] == 3 and r["key"] is None}
    assert at[("val", "gen_gap")] == pytest.approx(at[("train", "acc")] - at[("val", "acc")])
    assert at[("val", "loss_gap")] == pytest.approx(at[("val", "loss")] - at[("train", "loss")])


def test_diverging_run_stops_keeps_trajectory_and_is_marked(tmp_path):
    outcome = execute(compose_config([*TINY, "train.epochs=6", "optimizer.lr=1e6", "optimizer.momentum=0.99"],
                                     tmp_path / "d"))
    assert outcome.status == "diverged"
    record = json.loads((outcome.directory / store.RUN_JSON).read_text())
    assert record["status"] == "diverged" and record["epochs_done"] < 6
    rows = store.read_trajectory(outcome.directory).to_pylist()
    last = max(r["epoch"] for r in rows)
    assert last == record["epochs_done"]
    assert record["error"].startswith(f"non-finite loss at epoch {last}: train_loss=")
    assert outcome.error == record["error"]
    assert any(r["metric"] == "loss" and r["context"] == "train" and not math.isfinite(r["value"])
               for r in rows if r["epoch"] == last)


def test_failing_run_records_its_error_line(tmp_path, monkeypatch):
    def unreadable(_cfg):
        raise ValueError("the data set cannot be read\n(a second line of detail)")

    monkeypatch.setattr("pab_campaign.training.run.build_dataset", unreadable)
    outcome = execute(compose_config(TINY, tmp_path / "f"))
    assert outcome.status == "failed"
    record = store.read_run_json(outcome.directory)
    assert record.status == "failed" and record.error.startswith("ValueError") and "cannot be read" in record.error
    assert "\n" not in record.error


@pytest.mark.parametrize(("override", "message"), [
    ("optimizer.lr=-0.1", "optimizer.lr=-0.1 must be > 0"),
    ("train.epochs=-2", "train.epochs=-2 must be >= 1"),
    ("train.batch_size=0", "train.batch_size=0 must be >= 1"),
    ("dataset.val_fraction=1.5", r"dataset.val_fraction=1.5 must be in \(0, 1\)"),
    ("dataset.test_fraction=0.9", r"dataset.val_fraction \+ dataset.test_fraction = 1.1 must be < 1"),
    ("dataset.train_fraction=0", r"dataset.train_fraction=0.0 must be in \(0, 1\]"),
    ("dataset.label_noise=2", r"dataset.label_noise=2.0 must be in \[0, 1\]"),
    ("seed=-1", "seed=-1 must be in 0 .. 2"),
    ("seed=4294967296", "seed=4294967296 must be in 0 .. 2"),
    ("optimizer.momentum=-1", "optimizer.momentum=-1.0 must be >= 0"),
    ("model.dropout=1.5", r"model.dropout=1.5 must be in \[0, 1\)"),
    ("model.hidden=[64,0]", r"model.hidden=\[64, 0\] must be >= 1"),
    ("checkpoint.best_metric=foo/bar", "checkpoint.best_metric='foo/bar' must be one of train/loss"),
    ("optimizer.lr=inf", "optimizer.lr=inf must be > 0 and finite"),  # trained, then diverged
    ("tracking.probe_size=0", "tracking.probe_size=0 must be >= 1"),  # trained, then failed in torch.cat
    ("checkpoint.every=-2", r"checkpoint.every=-2 must be >= 0 \(0 = no numbered checkpoints\)"),
    ("checkpoint.keep_last_n=-1", "checkpoint.keep_last_n=-1 must be >= 0"),
    ("checkpoint.keep_every_n=-1", "checkpoint.keep_every_n=-1 must be >= 0"),
])
def test_invalid_values_are_refused_before_anything_is_written(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        execute(compose_config([override], tmp_path / "bad"))
    assert not (tmp_path / "bad").exists()
