"""ResNet-18 (CIFAR stem) and ResNet-50: shapes, stems and parameter counts against torchvision."""
from __future__ import annotations

import torch
import torchvision
from omegaconf import OmegaConf

from pab_campaign.training.models import build_model


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
