import json
import math
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pab_campaign import store


def _buffer() -> store.TrajectoryBuffer:
    buffer = store.TrajectoryBuffer()
    buffer.add(0, "val", "loss", 2.3)
    buffer.add(1, "val", "loss", math.nan)
    buffer.add(1, "weights", "erank", 3.5, key="features.1")
    buffer.add(2, "val", "acc", 0.9)
    return buffer


def test_trajectory_round_trip_keeps_schema_nan_and_keys(tmp_path):
    store.write_trajectory(tmp_path, _buffer().to_table())
    table = store.read_trajectory(tmp_path)
    assert table.schema.equals(store.TRAJECTORY_SCHEMA)
    raw = pq.read_table(tmp_path / store.TRAJECTORY)
    assert raw.schema.field("epoch").type == pa.int32()
    assert pa.types.is_dictionary(raw.schema.field("context").type)
    rows = table.to_pylist()
    assert rows[0] == {"epoch": 0, "context": "val", "metric": "loss", "key": None, "value": 2.3}
    assert math.isnan(rows[1]["value"])
    assert rows[2]["key"] == "features.1"
    again = store.TrajectoryBuffer.from_table(table)
    assert again.epoch == [0, 1, 1, 2] and again.key[2] == "features.1"


def test_truncate_after_drops_later_epochs():
    buffer = _buffer()
    buffer.truncate_after(1)
    assert buffer.epoch == [0, 1, 1]
    assert buffer.metric == ["loss", "loss", "erank"]


def test_interrupted_write_leaves_previous_file_intact(tmp_path):
    store.write_trajectory(tmp_path, _buffer().to_table())
    before = (tmp_path / store.TRAJECTORY).read_bytes()

    def crash_midway(tmp):
        tmp.write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt("killed mid-write")

    with pytest.raises(KeyboardInterrupt):
        store.atomic_write(tmp_path / store.TRAJECTORY, crash_midway)
    assert (tmp_path / store.TRAJECTORY).read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [store.TRAJECTORY]


def test_run_json_round_trip_and_refusals(tmp_path):
    record = store.RunRecord("abc", store.RunStatus.RUNNING, duration_s=math.inf, hparams={"optimizer.lr": 0.1})
    store.write_run_json(tmp_path, record)
    loaded = store.read_run_json(tmp_path)
    assert loaded.hparams == {"optimizer.lr": 0.1} and loaded.duration_s is None
    assert loaded.status is store.RunStatus.RUNNING
    assert json.loads((tmp_path / store.RUN_JSON).read_text())["status"] == "running"
    (tmp_path / store.RUN_JSON).write_text("{not json")
    with pytest.raises(store.StoreError, match="not valid JSON"):
        store.read_run_json(tmp_path)
    (tmp_path / store.RUN_JSON).write_text(json.dumps({"status": "x"}))
    with pytest.raises(store.StoreError, match="lacks run_id"):
        store.read_run_json(tmp_path)


def test_truncated_parquet_is_a_store_error(tmp_path):
    store.write_trajectory(tmp_path, _buffer().to_table())
    path = tmp_path / store.TRAJECTORY
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(store.StoreError, match="unreadable Parquet"):
        store.read_trajectory(tmp_path)


def test_an_older_run_json_is_read_with_defaults_and_unknown_fields_ignored(tmp_path):
    (tmp_path / store.RUN_JSON).write_text(json.dumps({"run_id": "old", "status": "completed", "seed": 3,
                                                       "hparams": {"seed": 3}, "retired_field": [1, 2]}))
    record = store.read_run_json(tmp_path)
    assert (record.run_id, record.status, record.seed, record.restarts, record.error) == (
        "old", store.RunStatus.COMPLETED, 3, 0, None)
    assert record.status.finished and not store.RunStatus.PREEMPTED.finished


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("hparams", "lr=0.1", "field 'hparams' is str"),
    ("hparams", [1, 2], "field 'hparams' is list"),
    ("hparams", {"model": {"nested": 1}}, "an object of scalars"),
    ("duration_s", "12 s", "field 'duration_s' is str"),
    ("epochs_done", "3", "field 'epochs_done' is str"),
    ("epochs_done", True, "field 'epochs_done' is bool"),
    ("status", "exploded", "status 'exploded' is not one of"),
    ("run_id", "", "field 'run_id'"),
])
def test_a_run_json_of_the_wrong_shape_names_the_field(tmp_path, field, value, fragment):
    (tmp_path / store.RUN_JSON).write_text(json.dumps({"run_id": "r", "status": "completed", field: value}))
    with pytest.raises(store.StoreError, match=re.escape(fragment)):
        store.read_run_json(tmp_path)


def test_a_run_json_nested_deeper_than_the_parser_recurses_is_a_store_error(tmp_path):
    (tmp_path / store.RUN_JSON).write_text('{"run_id": "r", "status": "completed", "notes": ' + "[" * 100_000
                                           + "]" * 100_000 + "}")
    with pytest.raises(store.StoreError, match=r"run\.json nests arrays or objects too deeply to be read"):
        store.read_run_json(tmp_path)


def test_a_run_json_that_is_a_directory_is_a_store_error(tmp_path):
    (tmp_path / store.RUN_JSON).mkdir()
    with pytest.raises(store.StoreError, match="is a directory"):
        store.read_run_json(tmp_path)


def test_a_process_is_alive_by_signal_0_where_there_is_no_proc(monkeypatch):
    real_open, real_isdir = open, os.path.isdir

    def no_proc_open(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_proc_open)
    monkeypatch.setattr(os.path, "isdir", lambda path: False if str(path).startswith("/proc") else real_isdir(path))
    assert store.process_alive(os.getpid())
    assert not store.process_alive(2**22 + 12345)  # above the largest pid Linux hands out


@pytest.mark.parametrize("extra, whole", [(5, True), (40, False)])
def test_a_run_file_that_grows_after_its_check_is_read_whole_or_refused(tmp_path, monkeypatch, extra, whole):
    """A file growing after `check_run_file` is read to its end within the limit, else refused: never
    cut short (the read is sized by the file, not by the limit)."""
    path = tmp_path / "run.json"
    path.write_bytes(b"x" * 10)
    real = store._open_checked

    def growing(target, boundary, limit):
        fd = real(target, boundary, limit)
        with open(target, "ab") as handle:
            handle.write(b"y" * extra)
        return fd

    monkeypatch.setattr(store, "_open_checked", growing)
    if whole:
        assert store.read_run_file(path, tmp_path, 32) == b"x" * 10 + b"y" * extra
    else:
        with pytest.raises(store.StoreError, match="grew past 32 bytes"):
            store.read_run_file(path, tmp_path, 32)


def test_a_campaign_another_process_starts_while_this_one_looks_is_no_foreign_directory(tmp_path, monkeypatch):
    """Two merges (or trackers) into one new folder: the other makes runs/ between this one's looks
    (CI saw `merge` refuse its twin once). The folder is still no stranger's to this one."""
    folder = tmp_path / "dst"
    folder.mkdir()
    looked_for_runs = store.is_campaign

    def other_process_makes_runs_meanwhile(path):
        seen = looked_for_runs(path)
        store.runs_dir(folder).mkdir(exist_ok=True)
        return seen

    monkeypatch.setattr(store, "is_campaign", other_process_makes_runs_meanwhile)
    assert not store.is_foreign_directory(folder)
    monkeypatch.setattr(store, "is_campaign", looked_for_runs)
    assert not store.is_foreign_directory(folder)  # now a campaign
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    assert not store.is_foreign_directory(stranger)  # empty
    (stranger / "notes.txt").write_text("a stranger's folder")
    assert store.is_foreign_directory(stranger)
    assert not store.is_foreign_directory(tmp_path / "missing")
