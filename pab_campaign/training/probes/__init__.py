"""Per-epoch measurements (process-aware tracking). A probe has a `name`, an `every` (epochs) and
`measure(ctx) -> rows`, where a row is (context, metric, key, value) for the trajectory.

Probes never change training: they leave the model's train/eval mode as they found it (`eval_mode`),
never step the global RNGs or the batch-order generator (randomness comes from `ctx.generator`,
seeded by the run's seed and the epoch), and never touch parameter `.grad`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from pab_campaign.metrics import Metric
from pab_campaign.training.data import DataBundle, Split
from pab_campaign.training.evaluate import Evaluation, eval_mode

Row = tuple[str, str, "str | None", float]


@dataclass
class ProbeContext:
    """What a probe may look at after epoch `epoch` (0 = before training)."""

    epoch: int
    model: nn.Module
    data: DataBundle
    probe_set: Split
    evaluations: dict[str, Evaluation]
    # This probe's memory across epochs (tensors, numbers); saved in checkpoints for resume.
    state: dict[str, Any] = field(default_factory=dict)
    # The run's seed: with the epoch it seeds `generator`, so probe randomness is reproducible.
    seed: int = 0
    # Cache shared by every probe measured at this epoch (never saved), see `probe_outputs`.
    shared: dict[str, Any] = field(default_factory=dict)
    # Named submodules (`tracking.hookpoints`) whose outputs the representation probe also measures.
    hookpoints: tuple[str, ...] = ()

    def probe_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features N × D, logits N × C) of the probe set in eval mode, float32 on CPU;
        one forward pass per epoch, shared by the probes that need it."""
        if "probe_outputs" not in self.shared:
            self.shared["probe_outputs"] = forward_features(self.model, self.probe_set.x)
        return self.shared["probe_outputs"]

    def hookpoint_outputs(self) -> dict[str, torch.Tensor]:
        """{hookpoint: its output on the probe set, N × D float32 on CPU}; one forward pass per epoch."""
        from pab_campaign.training.probes.hookpoints import hookpoint_outputs

        if "hookpoint_outputs" not in self.shared:
            self.shared["hookpoint_outputs"] = hookpoint_outputs(self.model, self.probe_set.x, self.hookpoints)
        return self.shared["hookpoint_outputs"]

    def generator(self, salt: int = 0) -> torch.Generator:
        """A fresh CPU generator determined by (seed, epoch, salt); the global RNGs stay untouched."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 101 + salt)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@torch.no_grad()
def forward_features(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(`model.features(x)` flattened to N × D, `model.head` logits N × C) in eval mode, float32 on CPU."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise ValueError(f"{type(model).__name__} has no `features` module; probes need a models.Classifier")
    device = next(model.parameters()).device
    feature_chunks, logit_chunks = [], []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            hidden = features(x[i:i + batch_size].to(device))
            logit_chunks.append(model.get_submodule("head")(hidden).float().cpu())
            feature_chunks.append(hidden.flatten(1).float().cpu())
    return torch.cat(feature_chunks), torch.cat(logit_chunks)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes (N,) on CPU of `model` in eval mode for inputs `x`."""
    device = next(model.parameters()).device
    with eval_mode(model):
        chunks = [model(x[i:i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.long)


@dataclass
class Probe:
    """Base of all probes: measured at epoch 0, every `every` epochs, and at the final epoch."""

    every: int = 1
    name = "probe"
    # The metrics `measure` records (each under its contexts): what a user's own metric may not be named.
    metrics: ClassVar[tuple[Metric, ...]] = ()
    # True when `measure` reads `ctx.probe_outputs()` (the forward pass shared within an epoch).
    uses_probe_outputs = False
    # True when `measure` reads the penultimate features of `probe_outputs()`, not only the logits.
    uses_features = False

    def records(self) -> set[tuple[str, str]]:
        """(context, metric) of every value `measure` may record."""
        return {(context, metric.name) for metric in self.metrics for context in metric.contexts}

    def due(self, epoch: int, final_epoch: int) -> bool:
        return self.every > 0 and (epoch % self.every == 0 or epoch == final_epoch)

    def measure(self, ctx: ProbeContext) -> list[Row]:
        raise NotImplementedError
