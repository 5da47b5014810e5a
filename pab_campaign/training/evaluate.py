"""Full-pass evaluation of a classifier on one split (eval mode, no gradients)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pab_campaign.training.data import Split
from pab_campaign.training.data.batching import eval_batches


@dataclass(frozen=True)
class Evaluation:
    """Mean cross-entropy `loss` (nats), accuracy `acc` in [0, 1], `logits` (N × classes, CPU) and
    the `labels` (N, CPU) they were scored against, in the same order."""

    loss: float
    acc: float
    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block, then restore its previous train/eval mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 1024) -> Evaluation:
    """Evaluate `model` on every example of `split` (an in-memory `Split` or a self-batching split,
    see `data.batching`); restores the model's train/eval mode after."""
    device = next(model.parameters()).device
    chunks, targets = [], []
    with eval_mode(model):
        for x, y in eval_batches(split, batch_size, device):
            chunks.append(model(x).float())
            targets.append(y)
    logits = torch.cat(chunks).cpu()
    labels = torch.cat(targets).cpu()
    loss = F.cross_entropy(logits, labels, reduction="mean").item()
    acc = (logits.argmax(dim=1) == labels).double().mean().item()
    return Evaluation(loss=loss, acc=acc, logits=logits, labels=labels)
