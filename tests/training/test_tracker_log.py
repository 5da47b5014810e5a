"""Metrics of a user's own through the Tracker: `tracker.log` and keyword scalars on `epoch()`, into
the trajectory or per step into steps.parquet; names checked; the MBE audit labels a planted loss proxy
among them and not a planted independent metric (12 runs of a user's own loop)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pab_campaign import store
from pab_campaign.cli import main
from pab_campaign.errors import ConfigError
from pab_campaign.training.tracker import Tracker

PERFORMANCE = {"probes": {"performance": {"every": 1}}}
EPOCHS, BATCHES = 5, 4


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(240, 6, generator=g)
    y = (x[:, :2].sum(dim=1) > 0).long()
    return x[:160], y[:160], x[160:], y[160:]


def _own_loop(campaign, lr: float, noise: float, seed: int) -> None:
    """A user's loop: a linear model, SGD, a fraction `noise` of the training labels flipped (a
    data-quality knob independent of `lr`); val loss per epoch. Their own metrics: `probe/sharpness`, a
    noisy copy of the val loss (a loss proxy by construction); `probe/planted`, the fraction of flipped
    training labels the loop measures (independent of the early val loss, it drives the final one);
    the batch loss per step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(100 + seed)
    xt, yt, xv, yv = _data()
    flipped = torch.from_numpy(rng.random(len(yt)) < noise)
    yt = torch.where(flipped, 1 - yt, yt)
    model = nn.Linear(6, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with Tracker(campaign, {"lr": lr, "noise": noise, "seed": seed}, PERFORMANCE, checkpoint_every=EPOCHS) as tracker:
        for epoch in range(tracker.resume(model, optimizer), EPOCHS + 1):
            if epoch > 0:
                for batch in range(BATCHES):
                    rows = slice(batch * 40, batch * 40 + 40)
                    optimizer.zero_grad()
                    loss = F.cross_entropy(model(xt[rows]), yt[rows])
                    loss.backward()
                    optimizer.step()
                    tracker.log(step=(epoch - 1) * BATCHES + batch + 1, train_batch_loss=loss.detach())
            with torch.no_grad():
                val_loss = float(F.cross_entropy(model(xv), yv))
            tracker.epoch(model, epoch, val_loss=val_loss, optimizer=optimizer,
                          **{"probe/sharpness": val_loss * (1 + 0.02 * rng.standard_normal()),
                             "probe/planted": float(flipped.double().mean())})


LRS = (0.3, 0.5, 0.8, 1.2, 0.4, 1.0, 0.6, 0.35, 0.9, 0.45, 0.7, 1.1)
NOISE = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55)


def test_audit_labels_a_planted_loss_proxy_and_not_an_independent_metric(tmp_path, capsys):
    order = np.random.default_rng(3).permutation(12)  # the noise levels shuffled against the learning rates
    for index in range(12):
        _own_loop(tmp_path, LRS[index], NOISE[order[index]], seed=index)
    code = main(["audit", str(tmp_path), "--metric", "probe/sharpness@1", "probe/planted@1", "--baseline",
                 "val/loss@1", "--target", "val/loss@5", "--n-boot", "50", "--no-plots"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    audit = pd.read_csv(store.summary_dir(tmp_path) / "audit.csv").set_index("metric")
    assert audit.loc["probe/sharpness@1", "n"] == 12
    assert audit.loc["probe/sharpness@1", "verdict"] == "loss proxy", audit.T
    assert audit.loc["probe/planted@1", "verdict"] == "PASS", audit.T  # signal beyond the early val loss
    # the values per step: every batch of every epoch, with the wall-clock time, in the epoch trained
    run = next(store.iter_run_dirs(tmp_path))
    steps = store.read_steps(run).to_pandas()
    assert steps["step"].tolist() == list(range(1, EPOCHS * BATCHES + 1))
    assert steps["epoch"].tolist() == [1 + i // BATCHES for i in range(EPOCHS * BATCHES)]
    assert set(steps["metric"].astype(str)) == {"batch_loss"} and steps["wall_time"].is_monotonic_increasing
    code = main(["curves", str(tmp_path), "--steps", "--groupby", "", "--output-folder", str(tmp_path / "figs")])
    out, err = capsys.readouterr()
    assert code == 0 and "1 curves × 1 groups over 20 steps" in out, out + err
    (written,) = (tmp_path / "figs").glob("curves_steps_*.parquet")
    curves = pd.read_parquet(written)
    assert curves["runs"].tolist() == [12] * 20
    code = main(["curves", str(tmp_path), "--steps", "--groupby", "lr", "--output-folder", str(tmp_path / "by_lr")])
    out, err = capsys.readouterr()
    assert code == 0 and "1 curves × 12 groups over 20 steps" in out, out + err  # was a KeyError


def test_log_names_are_checked_and_kept_apart_from_the_trackers(tmp_path):
    model = nn.Linear(3, 2)
    with Tracker(tmp_path, {"seed": 0}, PERFORMANCE) as tracker:
        tracker.epoch(model, 0, val_loss=1.0, val_f1=0.5)
        tracker.log(epoch=0, **{"weights/norm[fc1]": 2.0})
        tracker.log(epoch=1, **{"probe/sharpness": torch.tensor(3.0)})
        for bad, fragment in ((dict(f1=0.3), "'f1' is not a metric name to record"),
                              ({"val/loss": 0.3}, "'val/loss' is recorded by the tracker"),
                              ({"summary/x": 1.0}, "reserved"),
                              ({"val/f1": "high"}, "must be a number"),
                              ({"probe/big": 10**400}, r"probe/big=1000.* is past the largest float"),  # OverflowError
                              ({"probe/z": np.complex128(1 + 2j)}, "must be a number, not complex"),
                              ({"probe/y\n": 1.0}, r"'probe/y\\n' is not a metric name"),  # one line, no twin
                              ({"val_f1": 0.1, "val/f1": 0.2}, "'val_f1' and 'val/f1' both name val/f1")):
            with pytest.raises(ConfigError, match=fragment):
                tracker.log(epoch=1, **bad)
        # past what the run files hold (int32 epochs, int64 steps): the row stayed buffered, every save failed
        with pytest.raises(ConfigError, match=r"epoch=2147483648 must be a whole number from 0 to 2\*\*31 - 1"):
            tracker.log(epoch=2**31, **{"probe/x": 1.0})
        with pytest.raises(ConfigError, match=r"step=9223372036854775808 must be a whole number from 0 to 2\*\*63"):
            tracker.log(step=2**63, **{"probe/x": 1.0})
        with pytest.raises(ConfigError, match="already recorded at epoch 0"):
            tracker.log(epoch=0, val_f1=0.6)
        with pytest.raises(ConfigError, match=r"epoch= .* or step="):
            tracker.log(val_f1=0.6)
        tracker.epoch(model, 1, val_loss=0.8, val_f1=math.nan)
        with pytest.raises(ConfigError, match="epoch 0 is over"):
            tracker.log(epoch=0, **{"probe/late": 1.0})
    frame = store.read_trajectory(tracker.run_dir).to_pandas()
    mine = frame[frame["metric"].astype(str).isin(["f1", "norm", "sharpness"])]
    assert sorted(zip(mine["epoch"], mine["metric"].astype(str), mine["key"].astype(object).fillna("-"))) == [
        (0, "f1", "-"), (0, "norm", "fc1"), (1, "f1", "-"), (1, "sharpness", "-")]
    assert math.isnan(mine[(mine["epoch"] == 1) & (mine["metric"] == "f1")]["value"].iloc[0])  # NaN kept


def test_per_step_values_take_the_trackers_names_and_values_are_numbers(tmp_path):
    """The README's `tracker.log(step=global_step, train_loss=loss.item())`: steps.parquet is the user's."""
    model = nn.Linear(3, 2)
    with Tracker(tmp_path, {"seed": 1}, PERFORMANCE) as tracker:
        start = tracker.resume(model)
        tracker.log(step=1, train_loss=0.9)
        tracker.epoch(model, start, train_loss=0.8, val_loss=1.0)
        tracker.log(step=2, train_loss=0.7)
        for bad in ("0.5", True, np.bool_(True), torch.tensor(True)):
            with pytest.raises(ConfigError, match="must be a number"):
                tracker.log(epoch=0, val_f1=bad)
        with pytest.raises(ConfigError, match="must be a fraction"):
            tracker.epoch(model, 1, val_acc=math.inf)
        with pytest.raises(ConfigError, match="goes before the first"):
            tracker.resume(model)
    steps = store.read_steps(tracker.run_dir).to_pandas()
    assert steps["step"].tolist() == [1, 2] and steps["value"].tolist() == [0.9, 0.7]
    assert set(steps["context"].astype(str) + "/" + steps["metric"].astype(str)) == {"train/loss"}


def test_resume_after_a_log_is_refused_instead_of_dropping_it(tmp_path):
    model = nn.Linear(3, 2)
    with Tracker(tmp_path, {"seed": 2}, PERFORMANCE) as tracker:
        tracker.log(epoch=0, val_f1=0.5)
        with pytest.raises(ConfigError, match=r"tracker.resume\(\) goes before the first tracker.epoch\(\) or"):
            tracker.resume(model)
        tracker.epoch(model, 0, val_loss=1.0)
    frame = store.read_trajectory(tracker.run_dir).to_pandas()
    assert frame[frame["metric"].astype(str) == "f1"]["value"].tolist() == [0.5]


def test_a_probes_metric_name_is_refused_before_the_probe_first_measures(tmp_path):
    """probe/fim_norm of the user's own, with fim every 10 epochs (tracking=full), was accepted at
    epochs 1..9 and the run failed at epoch 10; every name a probe records is declared by it."""
    from pab_campaign.training.tracker_inputs import TRACKER_NAMES

    torch.manual_seed(0)
    x, y = torch.randn(48, 4), torch.arange(48) % 3
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    features = lambda m, inputs: m[1](m[0](inputs))  # noqa: E731
    with Tracker(tmp_path, {"seed": 0}, "full", (x, y), features=features, epochs=1) as tracker:
        declared = set(TRACKER_NAMES).union(*(probe.records() for probe in tracker.probes))
        tracker.epoch(model, 0, train_loss=1.0, val_loss=1.1, train_acc=0.3, val_acc=0.3)
        with pytest.raises(ConfigError, match="'probe/fim_norm' is recorded by the tracker or its probes"):
            tracker.log(epoch=0, **{"probe/fim_norm": 0.5})
        tracker.epoch(model, 1, train_loss=0.9, val_loss=1.0, train_acc=0.4, val_acc=0.35)
    frame = store.read_trajectory(tracker.run_dir).to_pandas()
    recorded = set(zip(frame["context"].astype(str), frame["metric"].astype(str)))
    assert {("probe", "fim_norm"), ("probe", "pgd_acc"), ("weights", "erank"), ("val", "class_acc")} <= recorded
    assert recorded <= declared, recorded - declared
