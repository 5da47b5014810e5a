"""Optimiser and learning-rate schedule builders, chosen by `cfg.optimizer.name` and `cfg.schedule.name`."""
from __future__ import annotations

import math

import torch
from torch import nn

OPTIMIZERS = ("adam", "sgd")


def check_optimizer(cfg) -> None:
    """ValueError naming the key and the choices when `cfg` names no optimiser this module builds."""
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name='{cfg.name}' is unknown; choose one of {list(OPTIMIZERS)}")


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    check_optimizer(cfg)
    params = model.parameters()
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def lr_factor(cfg, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate during epoch `epoch` (0-based) of `epochs`."""
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "cosine":
        warmup = cfg.warmup_epochs
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        span = max(1, epochs - warmup - 1)
        progress = min(1.0, (epoch - warmup) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule '{cfg.name}'; choose one of ['constant', 'cosine']")


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch LambdaLR following `lr_factor` (an unknown schedule raises as it is built);
    step it once after each epoch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(cfg, epoch, epochs))
