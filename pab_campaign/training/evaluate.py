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

    def macro_scores(self) -> tuple[float, float, float] | None:
        """Macro (precision, recall, F1) of the predictions, fractions in [0, 1]; None without logits
        (a Tracker given only numbers). See `macro_scores`."""
        if self.labels.numel() == 0 or self.logits.shape[0] != self.labels.shape[0]:
            return None
        return macro_scores(self.predictions, self.labels)


def macro_scores(predictions: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """Macro-averaged (precision, recall, F1) of `predictions` against `labels` (both N class indices),
    scikit-learn's `precision_recall_fscore_support(average="macro", zero_division=0)`.

    Per class c: precision = tp / predicted c, recall = tp / labelled c, F1 = 2·tp / (predicted c +
    labelled c), each 0 where its denominator is 0; then the unweighted mean over the classes that
    occur in `labels` or in `predictions`. A class absent from the split's labels but predicted
    counts with precision 0, recall 0 and F1 0; a class neither labelled nor predicted is left out
    of the mean (so a split lacking a class is not penalised for it).

    Class 2 is predicted once but never labelled: it counts with 0 in each mean.

    >>> scores = macro_scores(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]))
    >>> [round(score, 4) for score in scores]
    [0.5, 0.4444, 0.3889]
    """
    predictions, labels = predictions.long().cpu().flatten(), labels.long().cpu().flatten()
    if predictions.shape != labels.shape:
        raise ValueError(f"macro_scores needs one prediction per label: got {len(predictions)} and {len(labels)}")
    size = int(torch.cat([predictions, labels]).max()) + 1 if labels.numel() else 0
    predicted = torch.bincount(predictions, minlength=size).double()
    labelled = torch.bincount(labels, minlength=size).double()
    hits = torch.bincount(labels[predictions == labels], minlength=size).double()
    present = (predicted + labelled) > 0
    if not present.any():
        return float("nan"), float("nan"), float("nan")

    def mean_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
        ratio = torch.where(denominator > 0, numerator / denominator.clamp(min=1), torch.zeros_like(numerator))
        return float(ratio[present].mean())

    return (mean_ratio(hits, predicted), mean_ratio(hits, labelled), mean_ratio(2 * hits, predicted + labelled))


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
