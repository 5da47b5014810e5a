"""Model builders, chosen by `cfg.model.name`. Every model is a `Classifier`: features, then head."""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from pab_campaign.errors import ConfigError
from pab_campaign.training.config import (
    CnnConfig,
    Lenet5Config,
    MlpConfig,
    ModelConfig,
    ResNet18Config,
    ResNet50Config,
    TransformerConfig,
)
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


ACTIVATIONS: Registry[type[nn.Module]] = Registry("activation", "model.activation")
ACTIVATIONS.add("tanh", nn.Tanh)
ACTIVATIONS.add("relu", nn.ReLU)
POOLS: Registry[type[nn.Module]] = Registry("pooling", "model.pool")
POOLS.add("avg", nn.AvgPool2d)
POOLS.add("max", nn.MaxPool2d)


def _fit(fit: str, input_shape: tuple[int, ...], side: int) -> nn.Module | None:
    """The layer bringing C × H × W inputs to C × side × side: None when they already are; `pad`
    zero-pads around (MNIST's 28 × 28 → 32 × 32, as LeNet-5 was fed), `resize` interpolates
    bilinearly (the 8 × 8 digits → 32 × 32)."""
    height, width = input_shape[1:]
    if (height, width) == (side, side):
        return None
    if fit == "resize":
        return nn.Upsample(size=(side, side), mode="bilinear", align_corners=False)
    if fit == "pad":
        if height > side or width > side:
            raise ValueError(f"model.fit=pad cannot pad {height}x{width} inputs to {side}x{side}; "
                             f"use model.fit=resize or model.side>={max(height, width)}")
        top, left = (side - height) // 2, (side - width) // 2
        return nn.ZeroPad2d((left, side - width - left, top, side - height - top))
    raise ValueError(f"model.fit='{fit}' must be resize or pad")


@MODELS.register("lenet5")
def build_lenet5(cfg: Lenet5Config, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """LeNet-5 (LeCun et al. 1998) on `side` × `side` inputs (32 = the paper's): C1 conv 6@5×5, S2
    2×2 pool, C3 conv 16@5×5, S4 2×2 pool, C5 Linear 400 → 120, F6 Linear 120 → 84, then the head
    84 → classes; `activation` after C1, C3, C5 and F6, `pool` avg (the paper's subsampling) or max.
    Other input sizes are brought to `side` first (`fit`: resize or pad). The layers are named as in
    the paper, so hookpoints read `features.c1`, `features.s2`, ..., `features.f6`.

    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"name": "lenet5", "activation": "tanh", "pool": "avg", "side": 32, "fit": "resize"})
    >>> model = build_lenet5(cfg, (1, 8, 8), 10)
    >>> model.features(torch.zeros(2, 1, 8, 8)).shape, model(torch.zeros(2, 1, 8, 8)).shape
    (torch.Size([2, 84]), torch.Size([2, 10]))
    >>> [name for name, _ in model.features.named_children()][:5]
    ['fit', 'c1', 'act1', 's2', 'c3']
    """
    side = int(cfg.side)
    if side < 16:
        raise ValueError(f"model.side={side} is too small for LeNet-5's two 5x5 convs and pools; use >= 16, e.g. 32")
    activation, pool = ACTIVATIONS.get(cfg.activation), POOLS.get(cfg.pool)
    fit = _fit(str(cfg.fit), input_shape, side)
    after = ((side - 4) // 2 - 4) // 2
    layers: list[tuple[str, nn.Module]] = [("fit", fit)] if fit is not None else []
    layers += [
        ("c1", nn.Conv2d(input_shape[0], 6, 5)), ("act1", activation()), ("s2", pool(2)),
        ("c3", nn.Conv2d(6, 16, 5)), ("act3", activation()), ("s4", pool(2)), ("flatten", nn.Flatten()),
        ("c5", nn.Linear(16 * after * after, 120)), ("act5", activation()),
        ("f6", nn.Linear(120, 84)), ("act6", activation()),
    ]
    return Classifier(nn.Sequential(OrderedDict(layers)), nn.Linear(84, num_classes))


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens (N × T × dim → N × T × dim), written out (qkv and
    output Linear layers) so the weight-spectra and FIM probes see its matrices."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model.dim={dim} must be a multiple of model.heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, dim))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)) (GELU MLP)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEncoder(nn.Module):
    """ViT-style encoder (Dosovitskiy et al. 2021): non-overlapping `patch` × `patch` patches
    embedded by a strided conv, a learned position embedding (and a CLS token with `pool` cls),
    `depth` pre-norm blocks, a final LayerNorm, then the CLS token or the mean over patches: N × dim."""

    def __init__(self, input_shape: tuple[int, ...], patch: int, dim: int, depth: int, heads: int, mlp_dim: int,
                 dropout: float, pool: str) -> None:
        super().__init__()
        channels, height, width = input_shape
        if patch < 1 or height % patch or width % patch:
            raise ValueError(f"model.patch_size={patch} must divide the {height}x{width} images, e.g. "
                             f"model.patch_size={math.gcd(height, width)}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"model.pool='{pool}' must be cls or mean")
        tokens = (height // patch) * (width // patch) + (pool == "cls")
        self.pool = pool
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.position = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, mlp_dim, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = self.dropout(tokens + self.position)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 0] if self.cls is not None else tokens.mean(dim=1)


@MODELS.register("transformer")
def build_transformer(cfg: TransformerConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """A small ViT-style patch encoder (`PatchEncoder`) as features (N × dim), a Linear head.
    Hookpoints read `features.embed`, `features.blocks.0.attn`, `features.blocks.0.mlp`, ...

    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"name": "transformer", "patch_size": 2, "dim": 32, "depth": 2, "heads": 4,
    ...                         "mlp_dim": 64, "dropout": 0.0, "pool": "cls"})
    >>> model = build_transformer(cfg, (1, 8, 8), 10)
    >>> model.features(torch.zeros(3, 1, 8, 8)).shape, model(torch.zeros(3, 1, 8, 8)).shape
    (torch.Size([3, 32]), torch.Size([3, 10]))
    """
    encoder = PatchEncoder(input_shape, int(cfg.patch_size), int(cfg.dim), int(cfg.depth), int(cfg.heads),
                           int(cfg.mlp_dim), float(cfg.dropout), str(cfg.pool))
    return Classifier(encoder, nn.Linear(int(cfg.dim), num_classes))


# Keys of the models' configs that hold sizes (widths, counts, sides): each a whole number >= 1.
_SIZES = ("hidden", "channels", "width", "blocks", "side", "patch_size", "dim", "depth", "heads", "mlp_dim")


def _text(value: Any) -> str:
    return str(list(value)) if isinstance(value, Sequence) and not isinstance(value, str) else str(value)


def check_model(cfg: ModelConfig) -> None:
    """`UnknownName` naming the key and the choices when `cfg` names a model or a normalisation
    this module does not build."""
    MODELS.get(cfg.name)
    dropout = getattr(cfg, "dropout", None)
    if dropout is not None and not 0 <= dropout < 1:
        raise ConfigError(f"model.dropout={dropout} must be in [0, 1)")
    for key in _SIZES:
        sizes = getattr(cfg, key, None)
        if sizes is not None and any(size < 1 for size in (sizes if isinstance(sizes, Sequence) else [sizes])):
            raise ConfigError(f"model.{key}={_text(sizes)} must be >= 1 (each entry, where it is a list)")
    norm = getattr(cfg, "norm", None)
    if norm is not None:
        NORMS.get(norm)
    choices = {"lenet5": {"fit": ("resize", "pad")}, "transformer": {"pool": ("cls", "mean")}}.get(cfg.name, {})
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"model.{key}='{getattr(cfg, key)}' must be one of {', '.join(allowed)}")
    if isinstance(cfg, Lenet5Config) or cfg.name == "lenet5":
        ACTIVATIONS.get(getattr(cfg, "activation"))  # noqa: B009 (a DictConfig typed by the schema, or the dataclass)
        POOLS.get(getattr(cfg, "pool"))  # noqa: B009


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    """Build the model named by `cfg.name` for inputs of `input_shape` (C × H × W). `cfg` is the model's
    typed config (its schema in `training.config`, e.g. `MlpConfig`): the DictConfig Hydra composes
    for it, or the dataclass itself."""
    return MODELS.get(cfg.name)(cfg, input_shape, num_classes)
