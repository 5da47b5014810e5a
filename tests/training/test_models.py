"""ResNet-18 (CIFAR stem) and ResNet-50: shapes, stems and parameter counts against torchvision."""
from __future__ import annotations

import re

import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from pab_campaign.errors import ConfigError
from pab_campaign.training.models import build_model
from pab_campaign.training.run import validate
from tests.helpers import compose_config


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet18_cifar_stem_matches_torchvision_but_for_the_stem():
    model = build_model(OmegaConf.create({"name": "resnet18", "width": 64, "blocks": [2, 2, 2, 2]}), (3, 32, 32), 10)
    reference = torchvision.models.resnet18(num_classes=10)
    stem = model.features[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert _count(model) == _count(reference) - 64 * 3 * 7 * 7 + 64 * 3 * 3 * 3
    x = torch.randn(2, 3, 32, 32)
    assert model.features(x).shape == (2, 512) and model(x).shape == (2, 10)


def test_resnet18_width_scales_the_stages():
    model = build_model(OmegaConf.create({"name": "resnet18", "width": 8, "blocks": [1, 1, 1, 1]}), (3, 32, 32), 4)
    assert model.features(torch.randn(2, 3, 32, 32)).shape == (2, 64) and model.head.out_features == 4


def test_resnet50_is_torchvisions():
    model = build_model(OmegaConf.create({"name": "resnet50", "zero_init_residual": False}), (3, 64, 64), 7)
    assert _count(model) == _count(torchvision.models.resnet50(num_classes=7))
    x = torch.randn(2, 3, 64, 64)
    assert model.features(x).shape == (2, 2048) and model(x).shape == (2, 7)


def _lenet5(**keys) -> torch.nn.Module:
    cfg = {"name": "lenet5", "activation": "tanh", "pool": "avg", "side": 32, "fit": "resize", **keys}
    return build_model(OmegaConf.create(cfg), (1, 32, 32), 10)


def test_lenet5_is_the_papers_layout():
    model = _lenet5()
    # LeNet-5 on 32x32 grey images with 10 outputs has 61,706 parameters (C1 156, C3 2,416, C5 48,120,
    # F6 10,164, output 850; C3 fully connected, C5 as a Linear layer over the 16x5x5 maps).
    assert _count(model) == 156 + 2416 + 48120 + 10164 + 850 == 61706
    layers = dict(model.features.named_children())
    assert (layers["c1"].out_channels, layers["c1"].kernel_size) == (6, (5, 5))
    assert (layers["c3"].out_channels, layers["c3"].kernel_size) == (16, (5, 5))
    assert isinstance(layers["s2"], torch.nn.AvgPool2d) and isinstance(layers["act1"], torch.nn.Tanh)
    assert (layers["c5"].in_features, layers["c5"].out_features, layers["f6"].out_features) == (400, 120, 84)
    assert "fit" not in layers and model.features(torch.zeros(2, 1, 32, 32)).shape == (2, 84)


def test_lenet5_options_and_input_fitting():
    relu = _lenet5(activation="relu", pool="max")
    assert isinstance(relu.features.act3, torch.nn.ReLU) and isinstance(relu.features.s4, torch.nn.MaxPool2d)
    digits = build_model(OmegaConf.create({"name": "lenet5", "activation": "tanh", "pool": "avg", "side": 32,
                                           "fit": "resize"}), (1, 8, 8), 10)
    x = torch.rand(3, 1, 8, 8)
    assert digits.features.fit(x).shape == (3, 1, 32, 32) and digits(x).shape == (3, 10)
    mnist = build_model(OmegaConf.create({"name": "lenet5", "activation": "tanh", "pool": "avg", "side": 32,
                                          "fit": "pad"}), (1, 28, 28), 10)
    padded = mnist.features.fit(torch.ones(1, 1, 28, 28))
    assert padded.shape == (1, 1, 32, 32) and padded.sum() == 28 * 28 and padded[0, 0, :2].sum() == 0
    with pytest.raises(ValueError, match="cannot pad 40x40 inputs to 32x32"):
        build_model(OmegaConf.create({"name": "lenet5", "activation": "tanh", "pool": "avg", "side": 32,
                                      "fit": "pad"}), (1, 40, 40), 10)


def _transformer(**keys) -> torch.nn.Module:
    cfg = {"name": "transformer", "patch_size": 2, "dim": 16, "depth": 2, "heads": 4, "mlp_dim": 32,
           "dropout": 0.0, "pool": "cls", **keys}
    return build_model(OmegaConf.create(cfg), (1, 8, 8), 10)


def test_transformer_is_a_patch_encoder():
    model = _transformer()
    encoder = model.features
    assert encoder.embed.stride == (2, 2) and encoder.position.shape == (1, 16 + 1, 16) and len(encoder.blocks) == 2
    x = torch.randn(4, 1, 8, 8)
    assert model.features(x).shape == (4, 16) and model(x).shape == (4, 10)
    mean = _transformer(pool="mean")
    assert mean.features.cls is None and mean.features.position.shape == (1, 16, 16)
    # Attention written out: every token attends to every other (permuting the patches of a model
    # without position embedding permutes nothing in the mean-pooled output).
    with torch.no_grad():
        mean.features.position.zero_()
    tokens = mean.features.embed(x).flatten(2).transpose(1, 2)
    block = mean.features.blocks[0]
    permutation = torch.randperm(16)
    assert torch.allclose(block(tokens)[:, permutation], block(tokens[:, permutation]), atol=1e-5)


@pytest.mark.parametrize("keys, match", [({"patch_size": 3}, "must divide the 8x8 images"),
                                         ({"heads": 3}, "must be a multiple of model.heads=3"),
                                         ({"pool": "max"}, "must be cls or mean")])
def test_transformer_bad_keys_are_one_line(keys, match):
    with pytest.raises(ValueError, match=match):
        _transformer(**keys)


@pytest.mark.parametrize("overrides, fragment", [
    (["model=lenet5", "model.fit=crop"], "model.fit='crop' must be one of resize, pad"),
    (["model=lenet5", "model.activation=gelu"], "unknown activation 'gelu' in model.activation"),
    (["model=transformer", "model.pool=max"], "model.pool='max' must be one of cls, mean"),
])
def test_bad_choices_are_refused_before_the_run(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate(compose_config([f"campaign.root={tmp_path}", *overrides]))
