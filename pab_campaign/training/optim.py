"""Optimiser and learning-rate schedule builders, chosen by `cfg.optimizer.name` and `cfg.schedule.name`."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from pab_campaign.training.config import (
    AdamConfig,
    CosineScheduleConfig,
    OptimizerConfig,
    ScheduleConfig,
    SgdConfig,
)
from pab_campaign.training.registry import Registry

# Name → builder(cfg, parameters) of a torch optimiser.
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer", "optimizer.name")
# Name → factor(cfg, epoch, epochs): the multiplier of the base learning rate during 0-based `epoch`.
SCHEDULES: Registry[Callable[..., float]] = Registry("schedule", "schedule.name")


@OPTIMIZERS.register("sgd")
def _sgd(cfg: SgdConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adam")
def _adam(cfg: AdamConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    # Decoupled weight decay (AdamW), which is plain Adam when weight_decay is 0.
    beta1, beta2 = cfg.betas
    return torch.optim.AdamW(params, lr=cfg.lr, betas=(beta1, beta2), weight_decay=cfg.weight_decay)


def build_optimizer(cfg: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser named by `cfg.name` over `model`'s parameters; `cfg` is the optimiser's typed config
    (e.g. `SgdConfig`: the DictConfig Hydra composes for it, or the dataclass itself)."""
    return OPTIMIZERS.get(cfg.name)(cfg, model.parameters())


@SCHEDULES.register("constant")
def _constant(cfg: ScheduleConfig, epoch: int, epochs: int) -> float:
    return 1.0


@SCHEDULES.register("cosine")
def _cosine(cfg: CosineScheduleConfig, epoch: int, epochs: int) -> float:
    """Linear warm-up over `warmup_epochs`, then cosine decay to `min_lr_ratio` at the last epoch."""
    warmup = cfg.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    span = max(1, epochs - warmup - 1)
    progress = min(1.0, (epoch - warmup) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_factor(cfg: ScheduleConfig, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate during epoch `epoch` (0-based) of `epochs`."""
    return SCHEDULES.get(cfg.name)(cfg, epoch, epochs)


def build_scheduler(cfg: ScheduleConfig, optimizer: torch.optim.Optimizer,
                    epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch LambdaLR following `lr_factor` (an unknown schedule raises as it is built);
    step it once after each epoch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(cfg, epoch, epochs))
