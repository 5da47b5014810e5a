"""LeNet-5 and the transformer under every probe of the `full` preset, and hookpoints: named
submodules whose outputs get the representation statistics."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pab_campaign.errors import ConfigError
from pab_campaign.store import read_trajectory
from pab_campaign.training.probes.hookpoints import hookpoint_outputs
from pab_campaign.training.probes.registry import PROBES
from pab_campaign.training.probes.representation import linear_cka
from pab_campaign.training.run import execute, validate
from pab_campaign.training.tracker import Tracker
from tests.helpers import compose_config

# One metric each probe of `full` records (robustness and FIM every epoch here).
PROBE_METRICS = {"performance": "f1", "classwise": "class_acc", "churn": "churn", "spectra": "erank",
                 "representation": "cka_prev", "robustness": "fgsm_acc", "fim": "fim_norm"}


@pytest.mark.parametrize("model, hookpoints", [("lenet5", ["features.c1", "features.s4"]),
                                               ("transformer", ["features.blocks.0.attn", "features.embed"])])
def test_full_preset_probes_measure_lenet5_and_the_transformer(tmp_path, model, hookpoints):
    assert set(PROBE_METRICS) == set(PROBES)
    cfg = compose_config([f"campaign.root={tmp_path}", "dataset=digits", "dataset.train_fraction=0.2", f"model={model}",
                          "train.epochs=1", "runtime.verbose=false", "tracking=full", "tracking.probe_size=64",
                          "tracking.probes.robustness.every=1", "tracking.probes.robustness.samples=32",
                          "tracking.probes.fim.every=1", "tracking.probes.fim.samples=16",
                          f"tracking.hookpoints=[{','.join(hookpoints)}]"])
    outcome = execute(cfg)
    assert outcome.status == "completed", outcome.error
    rows = read_trajectory(outcome.directory).to_pandas()
    final = rows[rows.epoch == 1]
    for probe, metric in PROBE_METRICS.items():
        values = final.loc[final.metric == metric, "value"]
        assert len(values) and values.map(math.isfinite).all(), f"{probe} recorded no finite {metric} on {model}"
    keyed = final[(final.metric == "cka_prev") & final.key.notna()]
    assert sorted(keyed.key) == sorted(hookpoints) and keyed.value.between(0, 1).all()
    if model == "transformer":  # the attention's own matrices get weight spectra
        assert {"features.blocks.0.attn.qkv", "features.blocks.0.attn.proj"} <= set(final.loc[final.metric == "erank",
                                                                                                "key"])


def test_hookpoint_statistics_equal_cka_of_the_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))
    x = torch.randn(20, 1, 4, 4)
    before = hookpoint_outputs(model, x, ["1"])["1"]
    with torch.no_grad():
        model[0].weight.mul_(-1)
    after = hookpoint_outputs(model, x, ["1"])["1"]
    assert torch.equal(after, model[1](model[0](x)).flatten(1))
    assert 0 < linear_cka(before, after) < 1
    assert not model[0]._forward_hooks  # hooks removed


def test_unknown_hookpoint_is_one_line_listing_the_submodules(tmp_path):
    cfg = compose_config([f"campaign.root={tmp_path}", "model=lenet5", "train.epochs=1", "runtime.verbose=false",
                          "tracking=full", "tracking.hookpoints=[blocks.0.attn]"])
    outcome = execute(cfg)
    assert outcome.status == "failed"
    assert ("tracking.hookpoints: Classifier has no submodule 'blocks.0.attn'; its submodules: features, features.fit, "
            "features.c1") in outcome.error and "\n" not in outcome.error
    with pytest.raises(ConfigError, match=r"need the representation probe.*tracking=full"):
        validate(compose_config([f"campaign.root={tmp_path}", "tracking=default", "tracking.hookpoints=[features.2]"]))


class Plain(nn.Module):
    """A user's own model: no `features` and `head`, attention-like blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.Tanh())])
        self.out = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks[0](x))


def test_tracker_measures_the_hookpoints_of_a_model_without_features(tmp_path):
    torch.manual_seed(0)
    model, x, y = Plain(), torch.randn(32, 8), torch.randint(0, 3, (32,))
    tracking = {"probes": {"performance": {}, "representation": {}}, "probe_size": 32, "hookpoints": ["blocks.0"]}
    with Tracker(tmp_path / "mine", {"lr": 0.1, "seed": 0}, tracking=tracking, probe_data=(x, y)) as tracker:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(3):
            if epoch:
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
            tracker.epoch(model, epoch, train_loss=1.0)
    rows = tracker.trajectory.to_table().to_pandas()
    shift = rows[rows.metric == "cka_prev"]
    assert list(shift.key) == ["blocks.0", "blocks.0"] and shift.value.between(0, 1).all()
    bad = {**tracking, "hookpoints": ["blocks.9"]}
    with pytest.raises(ConfigError, match=r"Plain has no submodule 'blocks\.9'; its submodules: blocks, blocks\.0"), \
            Tracker(tmp_path / "mine", {"lr": 0.2, "seed": 0}, tracking=bad, probe_data=(x, y)) as tracker:
        tracker.epoch(model, 0, train_loss=1.0)
