"""Robustness on the fixed probe set, model in eval mode, ε in the units of the model's input
(the normalised tensors the data set yields; no clamping to a pixel range). The attacks use the
first `samples` examples of the probe set (all when None): each costs a forward and backward pass
per step, which dominates the `full` preset's cost.

- `probe/clean_acc`: accuracy on those unperturbed examples.
- `probe/fgsm_acc[ε]`: accuracy under FGSM, `x + ε·sign(∇ₓ CE)` (Goodfellow et al. 2015).
- `probe/pgd_acc[ε]`: accuracy under PGD-k in the L∞ ball of radius ε: random start in the ball,
  k steps of size 2.5·ε/k along sign(∇ₓ CE), projected back after each (Madry et al. 2018).
- `probe/consistency`: fraction of the whole probe set's predictions unchanged under one draw of
  the data set's standard augmentation (`DataBundle.augment`); no row when the data set has none.
The random start and the augmentation draw come from `ctx.generator`, never the global RNG.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pab_campaign.metrics import CLEAN_ACC, CONSISTENCY, FGSM_ACC, PGD_ACC, PROBE, ROBUSTNESS_METRICS
from pab_campaign.training.probes import Probe, ProbeContext, Row, eval_mode, predict


def _input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the summed cross-entropy; parameter gradients are neither computed nor stored."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, x)
    return gradient


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM adversarial inputs (same shape as x); eval mode is the caller's job."""
    return (x + eps * _input_gradient(model, x, y).sign()).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
        generator: torch.Generator) -> torch.Tensor:
    """PGD-`steps` L∞ adversarial inputs with a random start drawn from `generator`."""
    start = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    adversarial = x + start
    step = 2.5 * eps / max(steps, 1)
    for _ in range(steps):
        adversarial = adversarial + step * _input_gradient(model, adversarial, y).sign()
        adversarial = x + (adversarial - x).clamp(-eps, eps)
    return adversarial.detach()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y.cpu()).double().mean())


@dataclass
class RobustnessProbe(Probe):
    eps: tuple[float, ...] = (0.1,)
    pgd_steps: int = 5
    samples: int | None = None
    name = "robustness"
    metrics = ROBUSTNESS_METRICS
    uses_probe_outputs = True

    def __post_init__(self) -> None:
        values = self.eps if isinstance(self.eps, (list, tuple)) else [self.eps]
        try:
            self.eps = tuple(float(e) for e in values)
        except (TypeError, ValueError):
            raise ValueError(f"tracking.probes.robustness.eps={values} must be numbers, e.g. [0.05, 0.1]") from None
        if any(e < 0 for e in self.eps):
            raise ValueError(f"tracking.probes.robustness.eps={list(self.eps)} must all be >= 0, e.g. [0.05, 0.1]")
        if self.pgd_steps < 1:
            raise ValueError(f"tracking.probes.robustness.pgd_steps={self.pgd_steps} must be >= 1, e.g. 5")
        if self.samples is not None and self.samples < 1:
            raise ValueError(f"tracking.probes.robustness.samples={self.samples} must be >= 1 (or null for all), "
                             "e.g. 128")

    def measure(self, ctx: ProbeContext) -> list[Row]:
        model, device = ctx.model, ctx.device
        n = self.samples
        x, y = ctx.probe_set.x[:n].to(device), ctx.probe_set.y[:n].to(device)
        clean = ctx.probe_outputs()[1].argmax(dim=1)
        rows: list[Row] = [(PROBE, CLEAN_ACC.name, None, float((clean[:n] == y.cpu()).double().mean()))]
        generator = ctx.generator(salt=1)
        with eval_mode(model):
            for eps in self.eps:
                key = f"{eps:g}"
                rows.append((PROBE, FGSM_ACC.name, key, accuracy(model, fgsm(model, x, y, eps), y)))
                adversarial = pgd(model, x, y, eps, self.pgd_steps, generator)
                rows.append((PROBE, PGD_ACC.name, key, accuracy(model, adversarial, y)))
        if ctx.data.augment is not None:
            augmented = ctx.data.augment(ctx.probe_set.x, ctx.generator(salt=2))
            rows.append((PROBE, CONSISTENCY.name, None, float((predict(model, augmented) == clean).double().mean())))
        return rows
