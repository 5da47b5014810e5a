"""The campaign index: incremental rebuild (new, changed, removed runs), atomic replacement."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pyarrow.parquet as pq

from pab_campaign.analysis import index
from pab_campaign.analysis.campaign import load_trajectories, open_campaign
from pab_campaign.store import runs_dir, summary_dir
from tests.helpers import make_grid, write_run


def test_incremental_runs_index(tmp_path):
    ids = make_grid(tmp_path, seeds=2, epochs=3)
    first = index.refresh_runs(tmp_path)
    assert first.read == 8 and len(first.frame) == 8
    assert index.refresh_runs(tmp_path).read == 0
    write_run(tmp_path, "only-new", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.5, "seed": 1},
              {("val", "loss"): [1.0, 0.5]})
    added = index.refresh_runs(tmp_path)
    assert added.read == 1 and "only-new" in set(added.frame["run_id"]) and len(added.frame) == 9
    shutil.rmtree(runs_dir(tmp_path) / "only-new")
    assert len(index.refresh_runs(tmp_path).frame) == 8
    write_run(tmp_path, "new-run", {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.5, "seed": 0},
              {("val", "loss"): [1.0, 0.5], ("val", "acc"): [0.1, 0.7]})
    write_run(tmp_path, ids[0], {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 0},
              {("val", "loss"): [1.0, 0.2, 0.3], ("val", "acc"): [0.1, 0.8, 0.9]}, duration=99.0)
    shutil.rmtree(runs_dir(tmp_path) / ids[1])
    second = index.refresh_runs(tmp_path)
    assert second.read == 2  # only the new and the changed run were read
    frame = second.frame.set_index("run_id")
    assert "new-run" in frame.index and ids[1] not in frame.index and len(frame) == 8
    assert frame.loc[ids[0], "duration_s"] == 99.0
    assert frame.loc[ids[0], "val/acc@last"] == 0.9 and frame.loc[ids[0], "val/acc@best"] == 0.8
    assert frame.loc[ids[0], "best_epoch"] == 1 and np.isnan(frame.loc[ids[0], "test/acc@last"])
    assert frame.loc["new-run", "optimizer.lr"] == 0.5
    stored = pq.read_table(summary_dir(tmp_path) / index.RUNS_INDEX).to_pandas().set_index("run_id")
    assert stored.loc[ids[0], "duration_s"] == 99.0


def test_trajectories_index_follows_changes(tmp_path):
    ids = make_grid(tmp_path, seeds=1, epochs=2)
    campaign = open_campaign(tmp_path)
    rows = load_trajectories(campaign, ids)
    assert set(rows["run_id"]) == set(ids) and len(rows) == 4 * (6 + 1) * 3
    path = summary_dir(tmp_path) / index.TRAJECTORIES_INDEX
    mtime = path.stat().st_mtime_ns
    index.refresh_trajectories(tmp_path, open_campaign(tmp_path).runs)
    assert path.stat().st_mtime_ns == mtime  # nothing changed: not rewritten
    write_run(tmp_path, ids[0], {"model.name": "mlp", "model.hidden": 64, "optimizer.lr": 0.1, "seed": 0},
              {("val", "loss"): [7.0, 8.0]})
    rows = load_trajectories(open_campaign(tmp_path), ids)
    changed = rows[rows["run_id"] == ids[0]]
    assert changed["value"].tolist() == [7.0, 8.0]
    assert len(rows[rows["run_id"] == ids[1]]) == 21


def test_two_reporters_at_once(tmp_path):
    make_grid(tmp_path, seeds=3, epochs=3)
    results, errors = [], []

    def refresh():
        try:
            campaign = open_campaign(tmp_path)
            results.append(len(load_trajectories(campaign, campaign.runs["run_id"].tolist())))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [12 * 4 * 7] * 3
    assert index.refresh_runs(tmp_path).read == 0
    leftovers = [p.name for p in summary_dir(tmp_path).iterdir() if p.name.startswith(".")]
    assert leftovers == []
