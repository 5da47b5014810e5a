"""Tracker: a user's own model and loop tracked into a campaign every analysis command reads; resume
after SIGKILL; the bad paths (not a campaign, epochs going backwards, non-finite losses, ...)."""
from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from pab_campaign import store
from pab_campaign.cli import main
from pab_campaign.errors import ConfigError, StoreError
from pab_campaign.training import checkpoint
from pab_campaign.training.identity import flatten, run_id
from pab_campaign.training.tracker import Tracker, track_learning_curve
from pab_campaign.training.tracker_inputs import TRACKING_DIR, load_tracking, probe_split, user_hparams
from tests.helpers import REPO, assert_same_trajectory, command_env, compose_config

# A user's script: their own model (with dropout, so resume must restore the RNGs), their own data
# and loop, global-RNG batch order; tracked with the `full` preset. It SIGKILLs itself after epoch
# KILL_AFTER (-1: never), as a crash at that moment would.
USER_SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import torch
    from torch import nn
    from torch.nn import functional as F
    from pab_campaign.training.tracker import Tracker

    campaign, seeds, kill_after = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], int(sys.argv[3])
    torch.set_num_threads(1)

    class TwoLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(10, 32)
            self.drop = nn.Dropout(0.2)
            self.out = nn.Linear(32, 3)

        def forward(self, x):
            return self.out(self.drop(torch.relu(self.hidden(x))))

    g = torch.Generator().manual_seed(1234)
    x = torch.randn(400, 10, generator=g)
    y = x[:, :3].argmax(dim=1)
    xt, yt, xv, yv = x[:240], y[:240], x[240:], y[240:]

    def scores(model, xs, ys):
        model.eval()
        with torch.no_grad():
            logits = model(xs)
        model.train()
        return F.cross_entropy(logits, ys).item(), (logits.argmax(dim=1) == ys).float().mean().item()

    for seed in seeds:
        torch.manual_seed(seed)
        model = TwoLayer()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
        hparams = {"model": "two_layer", "optimizer": {"name": "sgd", "lr": 0.2, "momentum": 0.9}, "epochs": 3,
                   "lr_drop": [0.5, 0.1], "seed": seed}
        features = lambda m, inputs: torch.relu(m.hidden(inputs))
        with Tracker(campaign, hparams, tracking="full", probe_data=(xv, yv), features=features, epochs=3) as tracker:
            start = tracker.resume(model, optimizer)
            for epoch in range(start, 4):
                if epoch > 0:
                    for batch in torch.randperm(240).split(32):
                        optimizer.zero_grad()
                        F.cross_entropy(model(xt[batch]), yt[batch]).backward()
                        optimizer.step()
                train_loss, train_acc = scores(model, xt, yt)
                val_loss, val_acc = scores(model, xv, yv)
                tracker.epoch(model, epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                              val_acc=val_acc, optimizer=optimizer)
                if epoch == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
''')


def _user_run(tmp_path, campaign, seeds: str, kill_after: int) -> subprocess.CompletedProcess:
    script = tmp_path / "own_loop.py"
    script.write_text(USER_SCRIPT)
    return subprocess.run([sys.executable, str(script), str(campaign), seeds, str(kill_after)], env=command_env(),
                          capture_output=True, text=True, timeout=600)


def test_own_loop_killed_resumed_equals_uninterrupted_and_every_command_reads_it(tmp_path, capsys):
    campaign, reference = tmp_path / "mine", tmp_path / "reference"
    killed = _user_run(tmp_path, campaign, "0", kill_after=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (run,) = store.iter_run_dirs(campaign)
    record = store.read_run_json(run)
    assert record.status == "running" and record.epochs_done == 2
    assert sorted(set(store.read_trajectory(run).column("epoch").to_pylist())) == [0, 1, 2]

    resumed = _user_run(tmp_path, campaign, "0,1,2,3,4", kill_after=-1)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _user_run(tmp_path, reference, "0", kill_after=-1).returncode == 0
    assert_same_trajectory(run, store.run_dir(reference, run.name), epochs=3)
    record = store.read_run_json(run)
    assert (record.status, record.epochs_done, record.restarts) == ("completed", 3, 1)
    assert record.hparams["optimizer.lr"] == 0.2 and record.hparams["lr_drop"] == "[0.5, 0.1]"
    assert run.name == run_id(record.hparams)
    rows = store.read_trajectory(run).to_pandas()
    names = set(rows["context"].astype(str) + "/" + rows["metric"].astype(str))
    assert {"val/loss", "val/gen_gap", "val/loss_gap", "val/class_acc", "probe/churn", "probe/cka_init",
            "probe/pgd_acc", "probe/fim_norm", "weights/erank", "train/lr"} <= names
    assert "representation" not in resumed.stderr  # the features function was given: no notice

    assert main(["report", str(campaign), "--metrics", "val/acc,summary/loss_gap_final", "--std"]) == 0
    assert main(["curves", str(campaign), "--metrics", "val/acc", "val/loss"]) == 0
    assert main(["audit", str(campaign), "--metric", "weights/erank", "--baseline", "val/loss@1",
                 "--target", "val/acc", "--n-boot", "20", "--no-plots"]) == 0
    assert main(["summarize", str(run), "--json", str(tmp_path / "summary.json")]) == 0
    out = capsys.readouterr().out
    assert "5 runs" not in out and "weights/erank" in out and "loss_gap_final" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["run_id"] == run.name and summary["epochs"] == 3
    assert pd.read_csv(next(store.summary_dir(campaign).glob("summary_*.csv")))["runs"].sum() == 5


class Tiny(nn.Module):
    """A user model without `features`/`head` modules."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


PROBE = (torch.randn(32, 4, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 2)
HP = {"model": "tiny", "lr": 0.1, "seed": 0}


def _scores(model: nn.Module) -> dict[str, float]:
    with torch.no_grad():
        logits = model(PROBE[0])
    loss = F.cross_entropy(logits, PROBE[1]).item()
    acc = (logits.argmax(1) == PROBE[1]).float().mean().item()
    return {"train_loss": loss * 0.9, "train_acc": acc, "val_loss": loss, "val_acc": acc}


def _step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad()
    F.cross_entropy(model(PROBE[0]), PROBE[1]).backward()
    optimizer.step()


def _track(campaign, epochs, crash_after=None, **kwargs) -> Tracker:
    """Train Tiny with a loop of our own for `epochs` epochs (raising after epoch `crash_after`)."""
    torch.manual_seed(0)
    model = Tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with Tracker(campaign, HP, probe_data=PROBE, **kwargs) as tracker:
        for epoch in range(tracker.resume(model, optimizer), epochs + 1):
            if epoch:
                _step(model, optimizer)
            tracker.epoch(model, epoch, **_scores(model), optimizer=optimizer)
            if epoch == crash_after:
                raise RuntimeError("crash")
    return tracker


def _epochs(tracker: Tracker) -> list[int]:
    return sorted(set(store.read_trajectory(tracker.run_dir).column("epoch").to_pylist()))


def test_a_run_is_written_in_the_data_contract(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        tracker = _track(tmp_path / "c", 2)
    assert tracker.status == "completed" and _epochs(tracker) == [0, 1, 2]
    record = json.loads((tracker.run_dir / store.RUN_JSON).read_text())
    assert set(record) == set(store.RUN_FIELDS) and record["seed"] == 0 and record["campaign"] == "c"
    assert tracker.run_dir.parent == store.runs_dir(tmp_path / "c") and tracker.run_dir.name == run_id(HP)
    assert (tracker.run_dir / "checkpoints" / checkpoint.LAST).exists()
    assert (tracker.run_dir / "checkpoints" / checkpoint.BEST).exists()
    rows = store.read_trajectory(tracker.run_dir).to_pandas()
    at = {(str(r.context), str(r.metric)): r.value for r in rows.itertuples() if r.epoch == 2 and pd.isna(r.key)}
    assert at[("val", "gen_gap")] == pytest.approx(at[("train", "acc")] - at[("val", "acc")])
    assert at[("val", "loss_gap")] == pytest.approx(at[("val", "loss")] - at[("train", "loss")])
    assert ("probe", "churn") in at and ("weights", "erank") in at and ("val", "classes_learned") in at
    assert caplog.messages == []  # `default` has no probe that needs features


def test_tracking_presets_load_as_hydra_composes_them():
    for path in sorted(TRACKING_DIR.glob("*.yaml")):
        composed = compose_config([f"tracking={path.stem}"]).tracking
        assert OmegaConf.to_container(load_tracking(path.stem)) == OmegaConf.to_container(composed), path.stem
    custom = load_tracking({"probes": {"performance": {"every": 1}}, "probe_size": 16})
    assert (custom.name, custom.probe_size) == ("custom", 16)
    with pytest.raises(ConfigError,
                       match=r"\(did you mean full\?\); choose from adversarial, default, full, minimal, sparse"):
        load_tracking("ful")
    with pytest.raises(ConfigError, match="probe_size"):
        load_tracking({"probes": {}, "probe_size": "many"})


def test_run_id_comes_from_the_hparams_as_our_runs_do():
    nested = {"optimizer": {"name": "sgd", "lr": 0.1}, "hidden": [64, 32], "seed": 3}
    flat = user_hparams(nested)
    assert flat == {"hidden": "[64, 32]", "optimizer.lr": 0.1, "optimizer.name": "sgd", "seed": 3}
    assert run_id(flat) == run_id(dict(sorted(flatten(nested).items())))
    cfg = compose_config([])
    from pab_campaign.training.identity import hparams as our_hparams

    assert run_id(user_hparams(our_hparams(cfg))) == run_id(our_hparams(cfg))  # the same hparams, the same run
    for bad in ({}, {"model": object()}, {"lr": torch.tensor([0.1, 0.2])}):
        with pytest.raises(ConfigError, match="hparams"):
            user_hparams(bad)
    for clash in ({"a.b": 1, "a": {"b": 2}}, {"a": {"b": 2}, "a.b": 1}):
        with pytest.raises(ConfigError, match=r"'a\.b' is given twice"):
            user_hparams(clash)


def test_resume_continues_after_the_last_checkpoint(tmp_path):
    with pytest.raises(RuntimeError, match="crash"):
        _track(tmp_path / "c", 4, crash_after=2)
    first = _track(tmp_path / "c", 4)
    assert first.status == "completed" and _epochs(first) == [0, 1, 2, 3, 4]
    assert store.read_run_json(first.run_dir).restarts == 1
    _track(tmp_path / "ref", 4)
    assert_same_trajectory(first.run_dir, store.run_dir(tmp_path / "ref", first.run_id), epochs=4)
    mtime = (first.run_dir / store.RUN_JSON).stat().st_mtime_ns
    again = _track(tmp_path / "c", 4)  # finished: resume() gives 5, nothing runs, nothing is rewritten
    assert again.status == "completed" and (first.run_dir / store.RUN_JSON).stat().st_mtime_ns == mtime


def test_rows_after_the_last_checkpoint_are_measured_again(tmp_path):
    tracker = _track(tmp_path / "c", 3, checkpoint_every=2)  # last.pt at 2, then at 3 when the block ends
    state = checkpoint.load(tracker.run_dir / "checkpoints" / checkpoint.LAST)
    assert state["epoch"] == 3
    torch.manual_seed(0)
    model = Tiny()
    with pytest.raises(RuntimeError, match="boom"), Tracker(tmp_path / "d", HP, probe_data=PROBE,
                                                            checkpoint_every=2) as crashing:
        for epoch in range(4):
            crashing.epoch(model, epoch, **_scores(model))
            if epoch == 3:
                raise RuntimeError("boom")
    assert store.read_run_json(crashing.run_dir).status == "failed"
    assert store.read_run_json(crashing.run_dir).error == "RuntimeError: boom"
    assert _epochs(crashing) == [0, 1, 2, 3]
    with Tracker(tmp_path / "d", HP, probe_data=PROBE, checkpoint_every=2) as again:
        assert again.resume(Tiny()) == 3  # last.pt of epoch 2: epoch 3 is dropped, to be measured again
        assert _epochs(again) == [0, 1, 2]
        again.epoch(model, 3, **_scores(model))
    assert again.status == "completed" and _epochs(again) == [0, 1, 2, 3]


def test_epochs_must_increase_and_nothing_is_lost(tmp_path):
    model = Tiny()
    with pytest.raises(ConfigError, match="epoch 1 goes backwards"), Tracker(tmp_path, HP, probe_data=PROBE) as t:
        for epoch in (0, 2, 1):
            t.epoch(model, epoch, **_scores(model))
    assert _epochs(t) == [0, 2] and store.read_run_json(t.run_dir).status == "failed"
    assert "goes backwards" in store.read_run_json(t.run_dir).error
    with pytest.raises(ConfigError, match=r"epoch 2 is already recorded.*tracker.resume"), \
            Tracker(tmp_path, HP, probe_data=PROBE) as t:
        t.epoch(model, 2, **_scores(model))  # a restart that forgot resume()
    assert _epochs(t) == [0, 2]
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ConfigError, match="whole number from 0 to 2\\*\\*31 - 1"), Tracker(tmp_path, HP) as t:
            t.epoch(model, bad, train_loss=1.0)
    assert _epochs(t) == [0, 2]


def test_non_finite_loss_ends_the_run_diverged_with_its_trajectory(tmp_path):
    model, after = Tiny(), []
    with Tracker(tmp_path, HP, probe_data=PROBE) as tracker:
        for epoch, loss in enumerate([1.0, 0.8, math.nan, 0.5]):
            tracker.epoch(model, epoch, train_loss=loss, val_loss=1.0)
            after.append(epoch)
    assert after == [0, 1] and tracker.status == "diverged"  # the block ended at the diverged epoch, quietly
    record = store.read_run_json(tracker.run_dir)
    assert record.status == "diverged" and record.epochs_done == 2
    assert record.error == "non-finite loss at epoch 2: train_loss=nan"
    rows = store.read_trajectory(tracker.run_dir).to_pandas()
    train_loss = rows[(rows.context == "train") & (rows.metric == "loss")].set_index("epoch")["value"]
    assert train_loss.loc[[0, 1]].tolist() == [1.0, 0.8] and math.isnan(train_loss[2])
    assert set(rows.loc[rows.epoch == 2, "metric"]) == {"loss", "acc", "gen_gap", "loss_gap"}  # performance only
    assert "erank" in set(rows.loc[rows.epoch == 1, "metric"])
    with Tracker(tmp_path, HP, probe_data=PROBE) as again:  # diverged is final: a relaunch leaves it whole
        assert again.resume(Tiny()) == 3
        with pytest.raises(ConfigError, match=r"already diverged .* and final"):
            again.epoch(model, 3, train_loss=0.1)
    assert store.read_run_json(tracker.run_dir).status == "diverged" and _epochs(tracker) == [0, 1, 2]


@pytest.mark.parametrize("make, fragment", [
    (lambda d: (d / "notes.txt").write_text("mine"), "exists and is not a campaign"),
    (lambda d: None, "is a file"),
])
def test_a_directory_that_is_not_a_campaign_is_refused(tmp_path, make, fragment):
    target = tmp_path / "dir"
    if fragment == "is a file":
        target.write_text("x")
    else:
        target.mkdir()
        make(target)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError, match=fragment):
        Tracker(target, HP)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("kwargs, call, fragment", [
    ({"tracking": 3}, None, "preset name"),
    ({"checkpoint_every": 0}, None, "checkpoint_every=0"),
    ({"probe_data": [1, 2, 3]}, None, "probe_data is a list"),
    ({"probe_data": (torch.zeros(4, 2), torch.zeros(4))}, None, "integer class labels"),
    ({"features": "penultimate"}, None, "features must be a function"),
    ({}, {"val_acc": 85.0}, "val_acc=85 must be a fraction in [0, 1]"),
    ({}, {"train_loss": "low"}, "train_loss='low' must be a number"),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path, kwargs, call, fragment):
    if call is None:
        with pytest.raises(ConfigError, match=fragment.replace("[", r"\[")):
            Tracker(tmp_path / "c", HP, **kwargs)
        assert not (tmp_path / "c").exists()
        return
    with pytest.raises(ConfigError) as caught, Tracker(tmp_path / "c", HP) as tracker:
        tracker.epoch(Tiny(), 0, **call)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)
    assert not (tracker.run_dir / store.TRAJECTORY).exists()


def test_probes_without_what_they_need_are_skipped_with_a_notice(tmp_path, caplog):
    model = Tiny()
    with caplog.at_level(logging.WARNING), Tracker(tmp_path / "a", HP, tracking="full") as tracker:
        tracker.epoch(model, 0, train_loss=1.0, val_loss=1.1)
    skipped = [m for m in caplog.messages if "skipped" in m]
    assert len(skipped) == 5 and all("probe_data" in m for m in skipped)  # all but performance and spectra
    metrics = set(store.read_trajectory(tracker.run_dir).column("metric").to_pylist())
    assert "erank" in metrics and "loss" in metrics and "churn" not in metrics
    caplog.clear()
    with caplog.at_level(logging.WARNING), Tracker(tmp_path / "b", HP, "full", PROBE) as tracker:
        for epoch in range(2):
            tracker.epoch(model, epoch, val_loss=1.0, val_acc=0.5)
    assert [m for m in caplog.messages if "skipped" in m] == [
        "tracking: probe 'representation' skipped: it needs penultimate features, and Tiny has no `features` and "
        "`head` modules; pass features=lambda model, x: ... (N × D)"]
    rows = store.read_trajectory(tracker.run_dir).to_pandas()
    assert "cka_init" not in set(rows["metric"]) and "class_acc" in set(rows["metric"])
    assert "gen_gap" not in set(rows["metric"])  # no train numbers given: no gap


def test_representation_from_the_features_given(tmp_path):
    torch.manual_seed(0)
    model = Tiny()
    seen = []

    def features(m, x):
        seen.append(m.training)
        return torch.tanh(m.a(x))

    with Tracker(tmp_path, HP, "full", PROBE, features=features) as tracker:
        for epoch in range(2):
            tracker.epoch(model, epoch, train_loss=1.0, val_loss=1.0)
    rows = store.read_trajectory(tracker.run_dir).to_pandas()
    cka = rows[rows.metric == "cka_init"].set_index("epoch")["value"]
    assert cka[0] == pytest.approx(1.0) and seen and not any(seen)  # measured in eval mode
    assert model.training


def test_an_exception_in_the_block_fails_the_run_and_an_empty_block_too(tmp_path):
    with pytest.raises(KeyError), Tracker(tmp_path, HP) as tracker:
        tracker.epoch(Tiny(), 0, train_loss=1.0)
        raise KeyError("labels")
    record = store.read_run_json(tracker.run_dir)
    assert record.status == "failed" and record.error == "KeyError: 'labels'" and _epochs(tracker) == [0]
    with Tracker(tmp_path, {**HP, "seed": 1}) as empty:
        pass
    assert store.read_run_json(empty.run_dir).status == "failed"
    assert "no epoch was tracked" in store.read_run_json(empty.run_dir).error
    with pytest.raises(ConfigError, match="with Tracker"):
        Tracker(tmp_path, HP).epoch(Tiny(), 0, train_loss=1.0)


def test_track_learning_curve_trains_and_tracks_in_one_call(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(120, 4)
    y = (x[:, 0] > 0).long()
    data = (x[:80], y[:80]), (x[80:], y[80:])
    tracker = track_learning_curve(Tiny(), *data, epochs=3, batch_size=16, campaign_dir=tmp_path,
                                   hparams={"width": 8})
    assert tracker.status == "completed" and _epochs(tracker) == [0, 1, 2, 3]
    record = store.read_run_json(tracker.run_dir)
    assert record.hparams["optimizer"] == "Adam" and record.hparams["width"] == 8 and record.hparams["epochs"] == 3
    rows = store.read_trajectory(tracker.run_dir).to_pandas()
    val_acc = rows[(rows.context == "val") & (rows.metric == "acc")].set_index("epoch")["value"]
    assert val_acc[3] > val_acc[0]  # it learned
    again = track_learning_curve(Tiny(), *data, epochs=3, batch_size=16, campaign_dir=tmp_path, hparams={"width": 8})
    assert again.run_dir == tracker.run_dir and _epochs(again) == [0, 1, 2, 3]


def test_probe_data_may_be_tensors_a_dataset_or_a_dataloader():
    x, y = PROBE
    dataset = torch.utils.data.TensorDataset(x, y)
    for data in (dataset, torch.utils.data.DataLoader(dataset, batch_size=5), (x, y)):
        split = probe_split(data, 12)
        assert torch.equal(split.x, x[:12]) and torch.equal(split.y, y[:12])
    as_dicts = [{"image": x[i], "label": y[i]} for i in range(len(y))]  # e.g. a Hugging Face data set
    with pytest.raises(ConfigError, match="does not give \\(x, y\\) examples"):
        probe_split(as_dicts, 12)


def test_the_example_script_tracks_and_resumes(tmp_path):
    command = [sys.executable, str(REPO / "scripts" / "track_own_loop.py"), "--campaign", str(tmp_path / "own"),
               "--epochs", "2"]
    first = subprocess.run(command, env=command_env(), capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = store.iter_run_dirs(tmp_path / "own")
    assert store.read_run_json(run).status == "completed" and f"run {run.name} completed" in first.stdout
    again = subprocess.run(command, env=command_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "seed 0 epoch" not in again.stdout  # finished: nothing is trained again
    assert f"run {run.name} completed" in again.stdout


class Pooled(nn.Module):
    """A user model with `features` and `head` modules and a pooling step between them in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Unflatten(1, (1, 4)), nn.Conv1d(1, 3, kernel_size=2), nn.ReLU())
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=2))


def test_logits_come_from_the_models_forward_when_it_reshapes_between_features_and_head(tmp_path):
    torch.manual_seed(0)
    model = Pooled()
    with Tracker(tmp_path, HP, "default", PROBE) as tracker:
        tracker.epoch(model, 0, **_scores(model))
    rows = store.read_trajectory(tracker.run_dir).to_pandas()
    class_acc = rows[(rows.metric == "class_acc") & (rows.context == "val")].set_index("key")["value"]
    with torch.no_grad():
        predicted = model(PROBE[0]).argmax(1)
    expected = {str(c): (predicted[PROBE[1] == c] == c).float().mean().item() for c in (0, 1)}
    assert class_acc.to_dict() == pytest.approx(expected)


def test_a_tracker_that_lost_its_lock_stops_writing_and_leaves_the_new_owners_record(tmp_path, monkeypatch):
    from pab_campaign.runlock import RunLock, RunLockLost

    model = Tiny()
    with pytest.raises(RunLockLost), Tracker(tmp_path, HP, probe_data=PROBE) as tracker:
        tracker.epoch(model, 0, **_scores(model))
        monkeypatch.setenv("SLURM_JOB_ID", "42")  # the same SLURM job: a requeue, which takes the lock over
        (tracker.run_dir / "run.lock").unlink()
        other = RunLock(tracker.run_dir).acquire()
        tracker.epoch(model, 1, **_scores(model))
    try:
        assert store.read_run_json(tracker.run_dir).status == "running" and _epochs(tracker) == [0]
        assert other.held()
    finally:
        other.release()


def test_a_tracker_that_cannot_open_its_run_releases_the_lock(tmp_path):
    model = Tiny()
    with Tracker(tmp_path, HP, probe_data=PROBE) as tracker:
        tracker.epoch(model, 0, **_scores(model))
        written = tracker.run_dir
    (written / store.TRAJECTORY).write_bytes(b"not parquet")
    (written / store.RUN_JSON).unlink()
    with pytest.raises(StoreError), Tracker(tmp_path, HP, probe_data=PROBE):
        pass
    (written / store.TRAJECTORY).unlink()
    with Tracker(tmp_path, HP, probe_data=PROBE) as again:  # the same process opens it again
        again.epoch(model, 0, **_scores(model))
    assert again.status == "completed"


def test_a_boolean_seed_is_not_recorded_as_the_seed(tmp_path):
    with Tracker(tmp_path, {**HP, "seed": True}, probe_data=PROBE) as tracker:
        tracker.epoch(Tiny(), 0, val_loss=1.0)
    assert store.read_run_json(tracker.run_dir).seed is None
