"""TRAK scores from checkpoints: which checkpoints an ensemble takes, scores that are finite,
deterministic for a fixed projection seed and point the right way (retraining without a validation
example's top-attributed training examples lowers its margin more than without as many random ones),
and rebuilding a run's config from its run.json."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.nn import functional as F

from pab_campaign.errors import CampaignError, ConfigError
from pab_campaign.store import RunRecord, RunStatus
from pab_campaign.training import checkpoint
from pab_campaign.training.attribution import Checkpoint, Ensemble, Timings, run_checkpoints, trak_scores
from pab_campaign.training.data import Split, build_dataset
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.models import build_model
from pab_campaign.training.record_config import algorithm_config, check_same_examples, record_config
from tests.helpers import compose_config

DIGITS = OmegaConf.create({"name": "digits", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0,
                           "train_fraction": 0.5, "label_noise": 0.0})
MLP = OmegaConf.create({"name": "mlp", "hidden": [32], "norm": "none", "dropout": 0.0})


@pytest.fixture(scope="module")
def digits():
    return build_dataset(DIGITS)


def fit(data, index: np.ndarray, seed: int, epochs: int = 3, snapshots: bool = False):
    """A small MLP trained by SGD on the training examples `index`; with `snapshots`, also its weights
    after every epoch."""
    torch.manual_seed(seed)
    order_generator = torch.Generator().manual_seed(seed)
    model = build_model(MLP, data.input_shape, data.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = data.train.x[index], data.train.y[index]
    states = []
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=order_generator)
        for start in range(0, len(y), 32):
            batch = order[start:start + 32]
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
        if snapshots:
            states.append({k: v.clone() for k, v in model.state_dict().items()})
    return model, states


def margin(model, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """TRAK's model output: log p(y) − log(1 − p(y)) per example."""
    with torch.no_grad():
        logits = model(x)
        others = logits.clone()
        others[torch.arange(len(y)), y] = -torch.inf
        return (logits[torch.arange(len(y)), y] - others.logsumexp(dim=1)).numpy()


@pytest.fixture(scope="module")
def ensemble(digits, tmp_path_factory) -> Ensemble:
    """6 models × 3 epochs of checkpoints, saved as the training loop saves them; 12 validation examples."""
    folder = tmp_path_factory.mktemp("checkpoints")
    items = []
    everything = np.arange(len(digits.train))
    for seed in range(6):
        for epoch, state in enumerate(fit(digits, everything, seed, snapshots=True)[1], start=1):
            path = folder / f"{seed}_{epoch}.pt"
            checkpoint.save(path, {"model": state, "epoch": epoch})
            items.append(Checkpoint(f"run{seed}", path, epoch))
    model = build_model(MLP, digits.input_shape, digits.num_classes)
    return Ensemble(model, items, digits.train, Split(digits.val.x[:12], digits.val.y[:12]), torch.device("cpu"))


def test_scores_are_finite_deterministic_and_depend_on_the_projection_seed(ensemble, digits):
    timings = Timings()
    first = trak_scores(ensemble, 64, seed=0, timings=timings)
    assert first.shape == (12, len(digits.train)) and first.dtype == np.float32
    assert np.isfinite(first).all() and np.abs(first).max() > 0
    np.testing.assert_array_equal(first, trak_scores(ensemble, 64, seed=0))
    other = trak_scores(ensemble, 64, seed=1)
    assert not np.array_equal(first, other)
    # Another projection of the same gradients keeps the attributions' ranking broadly.
    assert np.mean([np.corrcoef(a, b)[0, 1] for a, b in zip(first, other)]) > 0.5
    assert timings.gradients > 0 and timings.projection > 0
    assert timings.total >= timings.gradients + timings.projection


def test_scores_point_the_right_way(ensemble, digits):
    """For each of 12 validation examples, retrain (2 seeds) without its 40 top-attributed training
    examples (of 538) and without 40 random ones: the first lowers its correct-class margin more.
    Measured on the CPU: mean margin −2.2 without the top-attributed examples against 3.5 without
    random ones; the top removal lowers it more for 12 of the 12 examples."""
    scores = trak_scores(ensemble, 64, seed=0)
    rng = np.random.default_rng(0)
    everything = np.arange(len(digits.train))
    removed_top, removed_random = [], []
    for i in range(len(ensemble.val)):
        x, y = ensemble.val.x[i:i + 1], ensemble.val.y[i:i + 1]
        for removed, sink in ((np.argsort(-scores[i])[:40], removed_top),
                              (rng.choice(everything, 40, replace=False), removed_random)):
            keep = np.setdiff1d(everything, removed)
            sink.append(np.mean([margin(fit(digits, keep, 100 + s)[0], x, y)[0] for s in range(2)]))
    removed_top, removed_random = np.array(removed_top), np.array(removed_random)
    print(f"margin without top-attributed {removed_top.mean():.2f}, without random {removed_random.mean():.2f}, "
          f"top lower for {(removed_top < removed_random).sum()} of {len(removed_top)}")
    assert removed_top.mean() < removed_random.mean() - 2.0
    assert (removed_top < removed_random).sum() >= 10


def test_run_checkpoints_last_and_every(tmp_path):
    run = tmp_path / "run1"
    folder = checkpoint.checkpoint_dir(run)
    assert run_checkpoints(run, 4, "last") == [] and run_checkpoints(run, 4, "every") == []
    folder.mkdir(parents=True)
    for epoch in (2, 4):
        (folder / checkpoint.numbered_name(epoch)).write_bytes(b"x")
    assert [c.epoch for c in run_checkpoints(run, 4, "last")] == [4]
    assert run_checkpoints(run, 4, "last")[0].path.name == "epoch_0004.pt"
    (folder / checkpoint.LAST).write_bytes(b"x")
    (folder / checkpoint.BEST).write_bytes(b"x")
    every = run_checkpoints(run, 4, "every")
    assert [(c.path.name, c.epoch) for c in every] == [("epoch_0002.pt", 2), ("last.pt", 4)]
    assert every[-1].describe() == {"run_id": "run1", "file": "last.pt", "epoch": 4}
    assert [c.path.name for c in run_checkpoints(run, 4, "last")] == ["last.pt"]
    with pytest.raises(ValueError, match="best"):
        run_checkpoints(run, 4, "best")


def _record(cfg) -> RunRecord:
    params = hparams(cfg)
    return RunRecord(run_id=run_id(params), status=RunStatus.COMPLETED, hparams=params,
                     overrides=["dataset.root=/elsewhere"], seed=int(cfg.seed))


@pytest.mark.parametrize("overrides", [
    [], ["model=cnn", "seed=3", "optimizer=adam", "schedule=cosine"],
    ["dataset.corner_patch.train_class=8", "dataset.corner_patch.val_fraction=0.2", "model.hidden=[16]"],
    ["dataset=synthetic", "dataset.n_classes=3"],
])
def test_record_config_rebuilds_the_run(tmp_path, overrides):
    cfg = compose_config(overrides, tmp_path / "c")
    rebuilt = record_config(_record(cfg))
    assert run_id(hparams(rebuilt)) == run_id(hparams(cfg))
    assert OmegaConf.to_container(rebuilt.model) == OmegaConf.to_container(cfg.model)
    assert OmegaConf.to_container(rebuilt.dataset) == OmegaConf.to_container(cfg.dataset)


def test_record_config_takes_paths_from_the_caller_never_from_the_run(tmp_path, monkeypatch):
    """A campaign from elsewhere chose which folder of this machine `diff` read as its data set,
    through the overrides its run.json recorded."""
    monkeypatch.delenv("PAB_CIFAR10_ROOT", raising=False)
    cfg = compose_config(["dataset=cifar10", "model=resnet18", "dataset.root=/data/cifar"], tmp_path / "c")
    record = _record(cfg)  # its overrides say dataset.root=/elsewhere
    default = record_config(record)
    assert default.dataset.root is None  # the config's own ($PAB_CIFAR10_ROOT, unset here)
    given = record_config(record, "/data/mine")
    assert given.dataset.root == "/data/mine"
    assert run_id(hparams(given)) == run_id(hparams(default)) == run_id(hparams(cfg))


def test_record_config_refuses_an_edited_or_foreign_record(tmp_path):
    record = _record(compose_config([], tmp_path / "c"))
    edited = dataclasses.replace(record, hparams={**record.hparams, "optimizer.lr": 0.5})
    with pytest.raises(ConfigError, match=f"run {record.run_id}: its run.json hyper-parameters rebuild run"):
        record_config(edited)
    foreign = dataclasses.replace(record, hparams={**record.hparams, "model.depth": 3})
    with pytest.raises(ConfigError, match=r"cannot be rebuilt from run\.json"):
        record_config(foreign)


def test_algorithms_must_share_their_examples(tmp_path):
    clean = _record(compose_config(["dataset.corner_patch.val_fraction=0.2"], tmp_path / "c"))
    other_seed = _record(compose_config(["dataset.corner_patch.val_fraction=0.2", "seed=1"], tmp_path / "c"))
    patched = _record(compose_config(["dataset.corner_patch.val_fraction=0.2", "dataset.corner_patch.train_class=8"],
                                     tmp_path / "c"))
    unpatched_val = _record(compose_config([], tmp_path / "c"))
    wider = _record(compose_config(["dataset.corner_patch.val_fraction=0.2", "model.hidden=[16]"], tmp_path / "c"))
    check_same_examples(algorithm_config([clean, other_seed]), algorithm_config([patched]))
    with pytest.raises(CampaignError, match=r"differ in dataset.corner_patch.val_fraction \(0.2 vs 0.0\)"):
        check_same_examples(algorithm_config([clean]), algorithm_config([unpatched_val]))
    with pytest.raises(CampaignError, match=r"of one algorithm differ in model\.hidden"):
        algorithm_config([clean, wider])
