"""The curve aggregates kept beside the index: what `save` writes `load` returns unchanged, for the
same token only; any other file at its place (wrong token, schema, values, metadata, size, kind)
is refused without an error, and `save` never writes through a link or raises."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pab_campaign.analysis.campaign import curve_store
from pab_campaign.analysis.campaign.curve_store import CURVE_STORE, META_KEY, CurveAggregates, load, save, token

STAMP = token(["r1", "r2", "r3"], np.array([0, 1, 1]), np.array([[10, 5], [11, 6], [12, 7]]))


def _aggregates() -> CurveAggregates:
    rows = pd.DataFrame({"group": np.array([0, 1, 1], dtype=np.int64),
                         "label": pd.Series(["val/loss", "val/loss", "val/acc"], dtype="str"),
                         "epoch": np.array([1, 1, 1], dtype=np.int32), "runs": np.array([1, 2, 2], dtype=np.int64),
                         "mean": [0.5, 0.25, 0.75], "std": [math.nan, 0.125, 0.0625]})
    return CurveAggregates(rows, ("val/loss", "val/acc"), {"val/loss": (1, ("r2",)), "val/acc": (0, ())})


def _same(got: CurveAggregates | None, want: CurveAggregates) -> None:
    assert got is not None
    pd.testing.assert_frame_equal(got.rows, want.rows, check_exact=True)
    assert got.labels == want.labels and got.infinite == want.infinite


def test_what_is_saved_is_loaded_for_the_same_token_only(tmp_path):
    assert save(tmp_path, STAMP, _aggregates())
    _same(load(tmp_path, STAMP, 2), _aggregates())
    assert load(tmp_path, STAMP, 2).having(["val/acc"]).rows["label"].tolist() == ["val/acc"]
    assert load(tmp_path, STAMP.replace(STAMP[0], "x", 1), 2) is None
    assert load(tmp_path, STAMP, 1) is None  # group 1 does not exist in one group
    assert load(tmp_path / "nowhere", STAMP, 2) is None


def test_the_token_changes_with_any_run_group_or_manifest():
    ids, groups, manifest = ["r1", "r2"], np.array([0, 1]), np.array([[10, 5], [11, 6]])
    stamps = {token(ids, groups, manifest), token(["r1", "r3"], groups, manifest),
              token(ids, np.array([1, 0]), manifest), token(ids, groups, np.array([[10, 5], [11, 7]])),
              token(["r1"], groups[:1], manifest[:1])}
    assert len(stamps) == 5 and token(ids, groups, manifest) == token(list(ids), groups.copy(), manifest.copy())


def test_plus_replaces_the_labels_computed_again():
    old = _aggregates()
    new = CurveAggregates(old.rows[old.rows["label"] == "val/acc"].assign(mean=0.5), ("val/acc",),
                          {"val/acc": (3, ("a", "b", "c"))})
    both = old.plus(new)
    assert sorted(both.labels) == ["val/acc", "val/loss"] and both.infinite["val/acc"] == (3, ("a", "b", "c"))
    assert both.rows.loc[both.rows["label"] == "val/acc", "mean"].tolist() == [0.5] and len(both.rows) == 3


def _rewrite(path, table: pa.Table | None = None, meta: object = None) -> None:
    """The saved file rewritten with `table` (default: its own) and the metadata `meta` (default: its own)."""
    table = table if table is not None else pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY) if meta is None else (
        meta if isinstance(meta, bytes) else json.dumps(meta).encode())
    pq.write_table(table.replace_schema_metadata({META_KEY: raw} if raw is not None else None), path)


def _meta(**changes) -> dict:
    return {"version": curve_store.STORE_VERSION, "token": STAMP, "labels": ["val/loss", "val/acc"],
            "infinite": {"val/loss": [1, ["r2"]], "val/acc": [0, []]}, **changes}


@pytest.mark.parametrize("meta", [
    b"not json", b"[" * 100_000 + b"]" * 100_000, [], _meta(version=2), _meta(token=None), _meta(labels="val/loss"),
    _meta(labels=["val/loss", "val/loss"]), _meta(labels=["val/loss"]), _meta(infinite={"val/loss": [1, ["r2"]]}),
    _meta(infinite={"val/loss": [2, ["r2"]], "val/acc": [0, []]}),
    _meta(infinite={"val/loss": [True, ["r2"]], "val/acc": [0, []]}),
    _meta(infinite={"val/loss": [-1, []], "val/acc": [0, []]}),
    _meta(infinite={"val/loss": [1, [7]], "val/acc": [0, []]}),
], ids=lambda meta: str(meta)[:40])
def test_metadata_that_save_never_writes_is_refused(tmp_path, meta):
    save(tmp_path, STAMP, _aggregates())
    _rewrite(tmp_path / CURVE_STORE, meta=meta)
    assert load(tmp_path, STAMP, 2) is None


def _table_with(column: str, values: pa.Array) -> pa.Table:
    rows = _aggregates().rows
    table = pa.Table.from_pandas(rows, schema=curve_store.SCHEMA, preserve_index=False)
    return table.set_column(table.schema.get_field_index(column), column, values)


@pytest.mark.parametrize("table", [
    pa.table({"group": [0], "label": ["val/loss"]}),  # columns missing
    _table_with("label", pa.array([1, 2, 3])),  # label of another type
    _table_with("runs", pa.array([1.0, 2.0, 2.0])),  # runs of another type
    _table_with("epoch", pa.array([1, None, 1], pa.int32())),  # a null where a value is required
    _table_with("runs", pa.array([1, 0, 2], pa.int64())),  # a group of no run
    _table_with("group", pa.array([-1, 1, 1], pa.int64())),  # no such group
    _table_with("label", pa.array(["val/loss", "val/loss", "test/acc"])),  # a label it does not hold
    _table_with("label", pa.array(["val/loss", "val/loss", "val/loss"])).set_column(
        0, "group", pa.array([1, 1, 1], pa.int64())),  # one group, label and epoch twice
], ids=["columns", "label type", "runs type", "null", "no run", "no group", "other label", "twice"])
def test_columns_or_values_that_save_never_writes_are_refused(tmp_path, table):
    save(tmp_path, STAMP, _aggregates())
    _rewrite(tmp_path / CURVE_STORE, table=table, meta=_meta())
    assert load(tmp_path, STAMP, 2) is None


@pytest.mark.timeout(30)
def test_special_files_and_oversized_ones_are_refused_without_blocking(tmp_path, monkeypatch):
    import os

    path = tmp_path / CURVE_STORE
    os.mkfifo(path)
    assert load(tmp_path, STAMP, 2) is None  # a FIFO is never opened (no writer: opening it would block)
    path.unlink()
    path.mkdir()
    assert load(tmp_path, STAMP, 2) is None and not save(tmp_path, STAMP, _aggregates())
    path.rmdir()
    path.write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    assert load(tmp_path, STAMP, 2) is None
    save(tmp_path, STAMP, _aggregates())
    monkeypatch.setattr(curve_store, "MAX_BYTES", path.stat().st_size - 1)
    assert load(tmp_path, STAMP, 2) is None
    monkeypatch.setattr(curve_store, "MAX_BYTES", 1 << 20)
    monkeypatch.setattr(curve_store, "MAX_ROWS", 2)
    assert load(tmp_path, STAMP, 2) is None and not save(tmp_path, STAMP, _aggregates())


def test_a_link_is_never_written_through_nor_read_out_of_its_folder(tmp_path):
    folder, outside = tmp_path / "summary", tmp_path / "elsewhere.parquet"
    folder.mkdir()
    save(tmp_path, STAMP, _aggregates())
    (tmp_path / CURVE_STORE).rename(outside)
    (folder / CURVE_STORE).symlink_to(outside)
    kept = outside.read_bytes()
    assert load(folder, STAMP, 2) is None
    assert save(folder, STAMP, _aggregates())
    assert not (folder / CURVE_STORE).is_symlink() and outside.read_bytes() == kept
    _same(load(folder, STAMP, 2), _aggregates())


def test_a_place_that_cannot_be_written_is_left_as_it_was(tmp_path):
    (tmp_path / "file").write_text("mine")
    assert not save(tmp_path / "file", STAMP, _aggregates())
    assert (tmp_path / "file").read_text() == "mine"
