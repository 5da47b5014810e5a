"""Curves from the aggregates kept beside the index: the same numbers as computed from the
trajectories (the finest grouping exactly, a coarser one pooled from it), recomputed whenever the
runs they stand for change, and never taken from a file that is not what the store writes."""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pab_campaign.analysis.campaign.campaign import Campaign, open_campaign
from pab_campaign.analysis.campaign.curve_store import CURVE_STORE
from pab_campaign.analysis.summary.curve_groups import group_codes
from pab_campaign.analysis.summary.report import build_curves
from pab_campaign.store import RunStatus, read_run_json, read_trajectory, runs_dir, summary_dir, write_run_json
from tests.helpers import make_grid, write_run

LABELS = ["val/loss", "val/acc"]


def _grid(root):
    """make_grid's 2 × 2 groups × 3 seeds, plus a group of one run with a NaN at epoch 2."""
    make_grid(root, seeds=3, epochs=4)
    write_run(root, "solo", {"model.name": "vit", "model.hidden": 8, "optimizer.lr": 0.1, "seed": 0},
              {("val", "loss"): [2.0, 1.5, math.nan, 1.0, 0.9], ("val", "acc"): [0.1, 0.2, 0.3, 0.4, 0.5]})
    return root


def _direct(root, groupby=None, labels=LABELS, **options):
    """build_curves without the kept aggregates (computed from the trajectories)."""
    campaign = open_campaign(root, **options)
    campaign.whole = False
    return build_curves(campaign, groupby, metrics=labels)


def _stored_only(root, monkeypatch, groupby=None, labels=LABELS):
    """build_curves of a fresh command that may not read the trajectories (the kept aggregates answer)."""
    campaign = open_campaign(root)
    with monkeypatch.context() as patch:
        patch.setattr(Campaign, "query_trajectories", lambda *args, **kwargs: pytest.fail("read the trajectories"))
        return build_curves(campaign, groupby, metrics=labels), campaign


def _independent(root, names, labels=LABELS) -> pd.DataFrame:
    """Per group of `names`, label and epoch: count, mean and std (ddof 1) of the finite values of
    the completed runs, read run file by run file with pandas."""
    frames = []
    for directory in sorted(runs_dir(root).iterdir()):
        record = read_run_json(directory)
        if record.status != "completed":
            continue
        t = read_trajectory(directory).to_pandas().astype({"context": str, "metric": str})
        t = t[t["key"].isna()].assign(label=lambda f: f["context"] + "/" + f["metric"])
        t = t[t["label"].isin(labels) & np.isfinite(t["value"])]
        frames.append(t.assign(**{name: record.hparams[name] for name in names}))
    rows = pd.concat(frames).groupby([*names, "label", "epoch"])["value"]
    return rows.agg(runs="count", mean="mean", std="std").reset_index()


def test_group_codes_number_groups_in_sorted_order_missing_last():
    values = pd.DataFrame({"a": pd.Series(["y", "x", None, "x"], dtype=object), "b": [1.0, np.nan, 2.0, np.nan]})
    codes, keys = group_codes(values)
    assert codes.tolist() == [1, 0, 2, 0]
    assert keys["a"].tolist() == ["x", "y", None] and keys["b"].tolist()[1:] == [1.0, 2.0]
    codes, keys = group_codes(values[[]])
    assert codes.tolist() == [0, 0, 0, 0] and keys.shape == (1, 0)


def test_kept_aggregates_answer_exactly_as_the_trajectories_do(tmp_path, monkeypatch):
    """The first call keeps the aggregates; a later command answers from them alone, the finest
    grouping bit for bit, a coarser one pooled the same way; both equal a grouping of the run files."""
    root = _grid(tmp_path / "c")
    groupby, direct = _direct(root)
    assert groupby == ["model.name", "optimizer.lr"]
    first = build_curves(open_campaign(root), metrics=LABELS)
    assert (summary_dir(root) / CURVE_STORE).is_file()
    (again, stored), _ = _stored_only(root, monkeypatch)
    assert first[0] == again == groupby
    pd.testing.assert_frame_equal(first[1], direct, check_exact=True)
    pd.testing.assert_frame_equal(stored, direct, check_exact=True)
    for names in (["model.name"], ["optimizer.lr"], [], ["optimizer.lr", "model.name"]):
        (got_names, got), _ = _stored_only(root, monkeypatch, names)
        assert got_names == names
        pd.testing.assert_frame_equal(got, _direct(root, names)[1], check_exact=True)
        want = _independent(root, names)
        want = want.sort_values(["label", *names, "epoch"], key=lambda c: c.map(LABELS.index) if c.name == "label"
                                else c, kind="stable", ignore_index=True)
        assert got[[*names, "label", "epoch", "runs"]].astype(object).equals(
            want[[*names, "label", "epoch", "runs"]].astype(object))
        for column in ("mean", "std"):
            np.testing.assert_allclose(got[column], want[column], rtol=1e-12, atol=1e-15)


def test_labels_are_added_to_the_kept_aggregates_as_they_are_asked_for(tmp_path, monkeypatch):
    root = _grid(tmp_path / "c")
    build_curves(open_campaign(root), metrics=["val/loss"])
    build_curves(open_campaign(root), metrics=["test/acc", "val/loss"])
    (_, stored), _ = _stored_only(root, monkeypatch, labels=["test/acc", "val/loss"])
    assert list(dict.fromkeys(stored["label"])) == ["test/acc", "val/loss"]
    pd.testing.assert_frame_equal(stored, _direct(root, labels=["test/acc", "val/loss"])[1], check_exact=True)


def _add_run(root):
    write_run(root, "late", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 9},
              {("val", "loss"): [9.0, 8.0, 7.0, 6.0, 5.0], ("val", "acc"): [0.9] * 5})


def _rewrite_trajectory(root):
    write_run(root, "mlp-0.1-0", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 0},
              {("val", "loss"): [3.0, 3.0, 3.0, 3.0, 3.0], ("val", "acc"): [0.5] * 5,
               ("test", "acc"): [0.5] * 5, ("test", "loss"): [0.5] * 5})


def _fail_run(root):
    record = read_run_json(runs_dir(root) / "cnn-0.01-1")
    write_run_json(runs_dir(root) / "cnn-0.01-1", dataclasses.replace(record, status=RunStatus.FAILED))


def _move_run(root):
    record = read_run_json(runs_dir(root) / "cnn-0.01-1")
    write_run_json(runs_dir(root) / "cnn-0.01-1",
                   dataclasses.replace(record, hparams={**record.hparams, "optimizer.lr": 0.1}))


@pytest.mark.parametrize("change", [_add_run, _rewrite_trajectory, _fail_run, _move_run])
def test_kept_aggregates_are_recomputed_when_their_runs_change(tmp_path, change):
    """A run added, a trajectory rewritten, a run no longer completed, a run moved to another group:
    the next answer is the trajectories' again (and differs from the one kept before)."""
    root = _grid(tmp_path / "c")
    _, before = build_curves(open_campaign(root), metrics=LABELS)
    change(root)
    _, after = build_curves(open_campaign(root), metrics=LABELS)
    assert not after.equals(before)
    pd.testing.assert_frame_equal(after, _direct(root)[1], check_exact=True)
    _, again = build_curves(open_campaign(root), metrics=LABELS)
    pd.testing.assert_frame_equal(again, after, check_exact=True)


def test_the_infinite_values_are_noted_from_the_kept_aggregates_too(tmp_path, monkeypatch):
    root = tmp_path / "c"
    for seed, last in enumerate([0.5, math.inf, 0.4, -math.inf]):
        write_run(root, f"run-{seed}", {"optimizer.lr": 0.1, "seed": seed},
                  {("val", "loss"): [2.0, 1.0, last], ("val", "acc"): [0.1, 0.5, 0.6]})
    first = open_campaign(root)
    build_curves(first, metrics=LABELS)
    (_, curves), second = _stored_only(root, monkeypatch)
    note = "val/loss is ±inf at some epochs of 2 run(s) (run-1, run-3): those values are left out of the curves"
    assert note in first.notes and note in second.notes
    assert not any("val/acc" in text for text in second.notes)
    assert curves.loc[(curves["label"] == "val/loss") & (curves["epoch"] == 2), "runs"].tolist() == [2]


def _planted(path, kind):
    """Put something that is not a store file of these runs at `path` (a store file now)."""
    if kind in ("fifo", "directory"):
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    elif kind == "garbage":
        path.write_bytes(b"PAR1 not a parquet file at all PAR1")
    elif kind == "link out":
        outside = path.parent.parent.parent / "elsewhere.parquet"
        outside.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(outside)
    elif kind == "wrong values":  # the right token and schema, groups that do not exist
        table = pq.read_table(path)
        pq.write_table(table.set_column(0, "group", pa.array(table.column("group").to_numpy() + 100)), path)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "directory", "garbage", "link out", "wrong values"])
def test_a_planted_store_file_is_never_believed(tmp_path, kind):
    """A FIFO (never opened: no hang), a directory, garbage, a link leading out of the folder, or a
    file with the right token but impossible values: the answer is computed again, and the file
    replaced where that can be done (a directory stays, with what the user put in it)."""
    root = _grid(tmp_path / "c")
    path = summary_dir(root) / CURVE_STORE
    _, want = build_curves(open_campaign(root), metrics=LABELS)
    _planted(path, kind)
    outside = tmp_path / "elsewhere.parquet"
    before = outside.read_bytes() if kind == "link out" else None
    _, got = build_curves(open_campaign(root), metrics=LABELS)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    if kind == "directory":
        assert (path / "keep.txt").read_text() == "mine"
    else:
        assert path.is_file() and not path.is_symlink()
    if before is not None:
        assert outside.read_bytes() == before


def test_filtered_runs_and_other_groupings_leave_the_kept_aggregates_alone(tmp_path):
    root = _grid(tmp_path / "c")
    build_curves(open_campaign(root), metrics=LABELS)
    path = summary_dir(root) / CURVE_STORE
    kept = path.read_bytes()
    _, filtered = build_curves(open_campaign(root, where=["optimizer.lr=0.1"]), metrics=LABELS)
    pd.testing.assert_frame_equal(filtered, _direct(root, where=["optimizer.lr=0.1"])[1], check_exact=True)
    assert set(filtered["model.name"]) == {"cnn", "mlp", "vit"} and "optimizer.lr" not in filtered
    groupby, by_seed = build_curves(open_campaign(root), ["model.name", "seed"], metrics=LABELS)
    assert groupby == ["model.name", "seed"] and by_seed["runs"].max() == 2
    build_curves(open_campaign(runs_dir(root) / "solo"), metrics=LABELS)
    assert path.read_bytes() == kept


def test_two_parts_spelling_one_label_are_pooled_as_before(tmp_path):
    """A context holding '/' can spell another context's label (`a/b` + `c` and `a` + `b/c`): both
    are one label, pooled, as when the label was spelled per row."""
    root = tmp_path / "c"
    for seed in range(4):
        parts = ("a/b", "c") if seed % 2 else ("a", "b/c")
        write_run(root, f"r{seed}", {"seed": seed}, {parts: [float(seed), 2.0 * seed], ("val", "loss"): [1.0, 0.5]})
    _, curves = build_curves(open_campaign(root), metrics=["a/b/c"])
    assert curves["runs"].tolist() == [4, 4]
    np.testing.assert_allclose(curves["mean"], [1.5, 3.0])
    np.testing.assert_allclose(curves["std"], [np.std([0, 1, 2, 3], ddof=1), np.std([0, 2, 4, 6], ddof=1)])
