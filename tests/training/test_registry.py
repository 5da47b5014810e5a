"""One registry style for name → builder: the generic `Registry`, and the real tables matching the
config groups they serve."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from pab_campaign.errors import ConfigError
from pab_campaign.training.config import GROUP_SCHEMAS
from pab_campaign.training.data import DATASETS, build_dataset
from pab_campaign.training.models import MODELS, NORMS, build_model, check_model
from pab_campaign.training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler, lr_factor
from pab_campaign.training.registry import Registry, UnknownName


def test_registry_gets_what_was_registered_and_names_the_choices_otherwise():
    colours: Registry[int] = Registry("colour", "paint.colour")
    colours.add("red", 1)

    @colours.register("blue")
    def blue() -> int:
        return 2

    assert colours.get("red") == 1 and colours.get("blue") is blue
    assert colours.names() == ["blue", "red"] and list(colours) == ["blue", "red"]
    with pytest.raises(UnknownName) as info:
        colours.get("green")
    assert str(info.value) == "unknown colour 'green' in paint.colour; choose from ['blue', 'red']"
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    with pytest.raises(ValueError, match="colour 'red' is registered twice"):
        colours.add("red", 3)


@pytest.mark.parametrize(("registry", "group"), [
    (DATASETS, "dataset"), (MODELS, "model"), (OPTIMIZERS, "optimizer"), (SCHEDULES, "schedule"),
])
def test_each_registry_builds_exactly_its_config_groups_options(registry, group):
    assert registry.names() == sorted(GROUP_SCHEMAS[group])


@pytest.mark.parametrize(("build", "message"), [
    (lambda: build_model(OmegaConf.create({"name": "vit"}), (1, 8, 8), 4),
     "unknown model 'vit' in model.name; choose from ['cnn', 'lenet5', 'mlp', 'resnet18', 'resnet50', 'transformer']"),
    (lambda: check_model(OmegaConf.create({"name": "mlp", "norm": "groupnorm"})),
     "unknown normalisation 'groupnorm' in model.norm; choose from ['batchnorm', 'layernorm', 'none']"),
    (lambda: build_dataset(OmegaConf.create({"name": "mnist"})),
     "unknown data set 'mnist' in dataset.name; choose from ['cifar10', 'digits', 'imagenet', 'synthetic']"),
    (lambda: build_optimizer(OmegaConf.create({"name": "lion"}), nn.Linear(2, 2)),
     "unknown optimizer 'lion' in optimizer.name; choose from ['adam', 'sgd']"),
    (lambda: lr_factor(OmegaConf.create({"name": "step"}), 0, 10),
     "unknown schedule 'step' in schedule.name; choose from ['constant', 'cosine']"),
])
def test_unknown_names_are_one_error_naming_the_key_and_the_choices(build, message):
    with pytest.raises(UnknownName) as info:
        build()
    assert str(info.value) == message


@pytest.mark.parametrize(("norm", "dims", "expected"), [
    ("none", 1, []), ("batchnorm", 1, [nn.BatchNorm1d]), ("batchnorm", 2, [nn.BatchNorm2d]),
    ("layernorm", 1, [nn.LayerNorm]), ("layernorm", 2, [nn.GroupNorm]),
])
def test_norms_build_the_layers_for_linear_and_conv_features(norm, dims, expected):
    layers = NORMS.get(norm)(6, dims)
    assert [type(layer) for layer in layers] == expected
    shape = (3, 6) if dims == 1 else (3, 6, 4, 4)
    for layer in layers:
        assert layer(torch.randn(shape)).shape == shape


def test_optimizers_are_built_from_their_config():
    model = nn.Linear(3, 2)
    sgd = build_optimizer(OmegaConf.create({"name": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9,
                                            "nesterov": True}), model)
    adam = build_optimizer(OmegaConf.create({"name": "adam", "lr": 0.01, "weight_decay": 0.1,
                                             "betas": [0.8, 0.9]}), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    assert isinstance(adam, torch.optim.AdamW) and adam.defaults["betas"] == (0.8, 0.9)


def test_cosine_schedule_warms_up_then_decays_to_its_floor():
    cfg = OmegaConf.create({"name": "cosine", "warmup_epochs": 2, "min_lr_ratio": 0.1})
    factors = [lr_factor(cfg, epoch, 10) for epoch in range(10)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert factors[-1] == pytest.approx(0.1)
    # Of 11 epochs, 2 warm up and 8 steps decay: epoch 6 is halfway, where the cosine term is 1/2.
    assert lr_factor(cfg, 6, 11) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert all(a >= b for a, b in itertools.pairwise(factors[2:]))
    assert lr_factor(OmegaConf.create({"name": "constant"}), 7, 10) == 1.0


def test_scheduler_steps_the_learning_rate_by_the_factor():
    cfg = OmegaConf.create({"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.0})
    optimizer = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.4)
    scheduler = build_scheduler(cfg, optimizer, 5)
    seen = []
    for _ in range(5):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.4 * lr_factor(cfg, epoch, 5) for epoch in range(5)])
