"""Model builders, chosen by `cfg.model.name`. Every model is a `Classifier`: features, then head."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pab_campaign.training.config import CnnConfig, MlpConfig, ModelConfig, ResNet18Config, ResNet50Config
from pab_campaign.training.registry import Registry

Builder = Callable[..., "Classifier"]
# Name → builder(cfg, input_shape (C × H × W), num_classes) of a `Classifier`.
MODELS: Registry[Builder] = Registry("model", "model.name")
# Name → the layers (possibly none) normalising `width` features: `dims` 1 after a Linear layer, 2 after a conv.
NORMS: Registry[Callable[[int, int], list[nn.Module]]] = Registry("normalisation", "model.norm")


class Classifier(nn.Module):
    """`head(features(x))`: `features` gives the penultimate representation (N × D)."""

    def __init__(self, features: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@NORMS.register("none")
def _no_norm(width: int, dims: int) -> list[nn.Module]:
    return []


@NORMS.register("batchnorm")
def _batch_norm(width: int, dims: int) -> list[nn.Module]:
    return [nn.BatchNorm1d(width) if dims == 1 else nn.BatchNorm2d(width)]


@NORMS.register("layernorm")
def _layer_norm(width: int, dims: int) -> list[nn.Module]:
    # GroupNorm with one group normalises over (C, H, W): LayerNorm for feature maps.
    return [nn.LayerNorm(width) if dims == 1 else nn.GroupNorm(1, width)]


@MODELS.register("mlp")
def build_mlp(cfg: MlpConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    width = 1
    for size in input_shape:
        width *= size
    layers: list[nn.Module] = [nn.Flatten()]
    for hidden in cfg.hidden:
        layers += [nn.Linear(width, hidden), *NORMS.get(cfg.norm)(hidden, 1), nn.ReLU()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    return Classifier(nn.Sequential(*layers), nn.Linear(width, num_classes))


@MODELS.register("cnn")
def build_cnn(cfg: CnnConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    for out in cfg.channels:
        layers += [nn.Conv2d(channels, out, 3, padding=1), *NORMS.get(cfg.norm)(out, 2), nn.ReLU()]
        if min(height, width) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * height * width, cfg.hidden), nn.ReLU()]
    if cfg.dropout > 0:
        layers.append(nn.Dropout(cfg.dropout))
    return Classifier(nn.Sequential(*layers), nn.Linear(cfg.hidden, num_classes))


def _stage(block: type[nn.Module], inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One ResNet stage of `blocks` torchvision blocks, the first with stride and projection shortcut."""
    out = planes * block.expansion  # type: ignore[attr-defined]  # torchvision's BasicBlock/Bottleneck class attribute
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    layers = [block(inplanes, planes, stride, downsample)] + [block(out, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


@MODELS.register("resnet18")
def build_resnet18(cfg: ResNet18Config, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """ResNet-18 with the CIFAR stem (3×3 conv, stride 1, no max-pool) from torchvision's BasicBlock;
    stage widths `width`·(1, 2, 4, 8) (64 = the standard network), features = pooled last stage."""
    from torchvision.models.resnet import BasicBlock

    width = int(cfg.width)
    layers: list[nn.Module] = [
        nn.Conv2d(input_shape[0], width, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    ]
    inplanes = width
    for index, blocks in enumerate(cfg.blocks):
        planes = width * 2 ** index
        layers.append(_stage(BasicBlock, inplanes, planes, int(blocks), 1 if index == 0 else 2))
        inplanes = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    features = nn.Sequential(*layers)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return Classifier(features, nn.Linear(inplanes, num_classes))


@MODELS.register("resnet50")
def build_resnet50(cfg: ResNet50Config, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """torchvision's ResNet-50 (ImageNet stem), untrained; features = everything up to the pooled 2048-d
    representation, head = its final Linear layer."""
    from torchvision.models import resnet50

    net = resnet50(weights=None, num_classes=num_classes, zero_init_residual=bool(cfg.zero_init_residual))
    if input_shape[0] != 3:
        raise ValueError(f"resnet50 takes 3-channel images; this data set has {input_shape[0]}")
    features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                             net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool, nn.Flatten())
    return Classifier(features, net.fc)


def check_model(cfg: ModelConfig) -> None:
    """`UnknownName` naming the key and the choices when `cfg` names a model or a normalisation
    this module does not build."""
    MODELS.get(cfg.name)
    norm = getattr(cfg, "norm", None)
    if norm is not None:
        NORMS.get(norm)


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """Build the model named by `cfg.name` for inputs of `input_shape` (C × H × W). `cfg` is the model's
    typed config (its schema in `training.config`, e.g. `MlpConfig`): the DictConfig Hydra composes
    for it, or the dataclass itself."""
    return MODELS.get(cfg.name)(cfg, input_shape, num_classes)
