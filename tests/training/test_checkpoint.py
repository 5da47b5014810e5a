import os
import pickle
import random

import numpy as np
import pytest
import torch

from pab_campaign.errors import StoreError
from pab_campaign.store import read_trajectory
from pab_campaign.training import checkpoint
from pab_campaign.training.run import execute
from tests.helpers import compose_config


def _touch_numbered(directory, epochs):
    directory.mkdir(parents=True, exist_ok=True)
    for epoch in epochs:
        checkpoint.save(directory / checkpoint.numbered_name(epoch), {"epoch": epoch})
    for name in (checkpoint.LAST, checkpoint.BEST):
        checkpoint.save(directory / name, {"epoch": -1})


@pytest.mark.parametrize("keep_last_n, keep_every_n, kept", [
    (2, 0, [9, 10]),
    (2, 4, [4, 8, 9, 10]),
    (0, 3, [3, 6, 9]),
    (0, 0, []),
    (20, 0, list(range(1, 11))),
])
def test_prune_keeps_exactly_the_right_files(tmp_path, keep_last_n, keep_every_n, kept):
    _touch_numbered(tmp_path, range(1, 11))
    removed = checkpoint.prune(tmp_path, keep_last_n, keep_every_n)
    expected = {checkpoint.numbered_name(e) for e in kept} | {checkpoint.LAST, checkpoint.BEST}
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert len(removed) == 10 - len(kept)


class Payload:
    """An arbitrary object: unpickling it would run arbitrary code paths."""


def test_load_uses_weights_only(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "object": Payload()}, path)
    with pytest.raises(StoreError, match="never unpickled") as caught:
        checkpoint.load(path)
    assert str(path) in str(caught.value) and "weights_only=False" not in str(caught.value)
    assert not isinstance(caught.value, pickle.UnpicklingError)


@pytest.mark.parametrize("damage, fragment", [
    ("truncate", "not a readable torch checkpoint"), ("garbage", "not a checkpoint that can be read safely"),
    ("empty", "not a checkpoint that can be read safely"), ("fifo", "is a FIFO, not a regular file"),
    ("link", "leads outside the campaign"), ("list", "holds a list, not the dict"), ("no model", "no model weights"),
])
def test_a_damaged_or_foreign_checkpoint_is_one_error_naming_the_file(tmp_path, damage, fragment):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "last.pt"
    checkpoint.save(path, {"model": {"w": torch.ones(3)}, "epoch": 2})
    data = path.read_bytes()
    path.unlink()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "fifo":
        os.mkfifo(path)
    elif damage == "link":
        (tmp_path / "elsewhere.pt").write_bytes(data)
        path.symlink_to(tmp_path / "elsewhere.pt")
    elif damage == "list":
        torch.save([torch.ones(1)], path)
    else:
        torch.save({"epoch": 2}, path)
    with pytest.raises(StoreError) as caught:
        checkpoint.weights(path, "model")
    message = str(caught.value)
    assert fragment in message and str(path) in message and "\n" not in message and "weights_only=False" not in message


def test_rng_capture_and_restore_round_trip(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    checkpoint.save(tmp_path / "rng.pt", {"rng": checkpoint.capture_rng()})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    checkpoint.restore_rng(checkpoint.load(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_run_keeps_last_best_and_pruned_numbered_checkpoints(tmp_path):
    cfg = compose_config([f"campaign.root={tmp_path}", "train.epochs=5", "dataset.train_fraction=0.3",
                          "checkpoint.every=1", "checkpoint.keep_last_n=2", "checkpoint.keep_every_n=2",
                          "checkpoint.best_metric=val/acc", "checkpoint.best_mode=max", "runtime.verbose=false",
                          "tracking=minimal"])
    outcome = execute(cfg)
    assert outcome.status == "completed"
    directory = checkpoint.checkpoint_dir(outcome.directory)
    names = {p.name for p in directory.iterdir()}
    assert names == {"epoch_0002.pt", "epoch_0004.pt", "epoch_0005.pt", "last.pt", "best.pt"}
    state = checkpoint.load(directory / "last.pt")
    assert state["epoch"] == 5
    assert {"model", "optimizer", "scheduler", "rng", "probe_states"} <= set(state)
    assert "batch_order" not in set(state)  # the order is a pure function of (seed, epoch): GlobalBatchSampler
    frame = read_trajectory(outcome.directory).to_pandas()
    val_acc = frame[(frame.context == "val") & (frame.metric == "acc")].set_index("epoch")["value"]
    best = checkpoint.load(directory / "best.pt")
    assert val_acc.idxmax() == best["epoch"]  # the first epoch reaching the maximum
    assert val_acc.max() == best["best_value"]


def test_save_serialises_once_and_copies_in_order(tmp_path):
    state = {"epoch": 3, "weights": torch.arange(6.0)}
    paths = [tmp_path / "epoch_0003.pt", tmp_path / "best.pt", tmp_path / "last.pt"]
    checkpoint.save(paths[0], state, copies=paths[1:])
    for path in paths:
        loaded = checkpoint.load(path)
        assert loaded["epoch"] == 3 and torch.equal(loaded["weights"], state["weights"])
    assert paths[1].stat().st_mtime_ns <= paths[2].stat().st_mtime_ns
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_runs_checkpoints_folder_that_links_out_of_its_campaign_is_refused(tmp_path):
    """A campaign from someone else may make a run's checkpoints/ a link: what it holds is read only
    where it lies inside the campaign."""
    campaign, outside = tmp_path / "camp", tmp_path / "outside"
    run = campaign / "runs" / "r0"
    run.mkdir(parents=True)
    outside.mkdir()
    checkpoint.save(outside / checkpoint.LAST, {"model": {"w": torch.ones(3)}, "epoch": 2})
    (run / "checkpoints").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StoreError, match="leads outside the campaign"):
        checkpoint.load(checkpoint.checkpoint_dir(run) / checkpoint.LAST)
    shared = campaign / "shared"  # a link that stays inside the campaign is followed
    outside.rename(shared)
    (run / "checkpoints").unlink()
    (run / "checkpoints").symlink_to(shared, target_is_directory=True)
    assert checkpoint.load(checkpoint.checkpoint_dir(run) / checkpoint.LAST)["epoch"] == 2
