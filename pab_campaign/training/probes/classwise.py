"""Class-wise accuracy and when each class is learned.

On the evaluation of split `split` (default val), per class c (key = class index):
`class_acc` = accuracy on the examples of class c (NaN if the split has none);
`class_learned_epoch` = first measured epoch with class_acc ≥ τ (NaN while never reached);
`class_forgets` = times class c fell back below τ after having reached it.
Scalars (key null): `classes_learned` (classes at or above τ now), `classes_unstable` (classes
forgotten at least once). Early / late classes are read from `class_learned_epoch` at the end of
the run by `trajectory_summary`, which knows the run's length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pab_campaign.metrics import (
    CLASS_ACC,
    CLASS_FORGETS,
    CLASS_LEARNED_EPOCH,
    CLASSES_LEARNED,
    CLASSES_UNSTABLE,
    CLASSWISE_METRICS,
    SPLITS,
)
from pab_campaign.training.probes import Probe, ProbeContext, Row


def class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class accuracy (num_classes,), float64; NaN for a class with no examples."""
    correct = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, (predictions == labels).double())
    counts = torch.bincount(labels, minlength=num_classes).double()
    return torch.where(counts > 0, correct / counts.clamp(min=1), torch.full_like(counts, math.nan))


def update_learning(state: dict, accuracy: torch.Tensor, epoch: int, tau: float) -> None:
    """Update `first_learned` (−1 = not yet), `forgets` and `above` in `state` with this epoch's accuracy."""
    n = len(accuracy)
    first = state.setdefault("first_learned", torch.full((n,), -1, dtype=torch.long))
    forgets = state.setdefault("forgets", torch.zeros(n, dtype=torch.long))
    above_before = state.setdefault("above", torch.zeros(n, dtype=torch.bool))
    above = accuracy >= tau  # NaN compares False
    first[(first < 0) & above] = epoch
    forgets += (above_before & ~above).long()
    state["above"] = above


@dataclass
class ClasswiseProbe(Probe):
    tau: float = 0.8
    split: str = "val"
    name = "classwise"
    metrics = CLASSWISE_METRICS

    def records(self) -> set[tuple[str, str]]:
        """Its metrics under its own split alone."""
        return {(self.split, metric.name) for metric in self.metrics}

    def __post_init__(self) -> None:
        if not 0 < self.tau <= 1:
            raise ValueError(f"tracking.probes.classwise.tau={self.tau} must be in (0, 1], e.g. 0.8")
        if self.split not in SPLITS:
            raise ValueError(f"tracking.probes.classwise.split='{self.split}' must be train, val or test")

    def measure(self, ctx: ProbeContext) -> list[Row]:
        evaluation = ctx.evaluations[self.split]
        accuracy = class_accuracy(evaluation.predictions, evaluation.labels, ctx.data.num_classes)
        update_learning(ctx.state, accuracy, ctx.epoch, self.tau)
        first, forgets = ctx.state["first_learned"], ctx.state["forgets"]
        rows: list[Row] = []
        for c in range(ctx.data.num_classes):
            learned = float(first[c]) if first[c] >= 0 else math.nan
            rows += [(self.split, CLASS_ACC.name, str(c), float(accuracy[c])),
                     (self.split, CLASS_LEARNED_EPOCH.name, str(c), learned),
                     (self.split, CLASS_FORGETS.name, str(c), float(forgets[c]))]
        rows += [(self.split, CLASSES_LEARNED.name, None, float(ctx.state["above"].sum())),
                 (self.split, CLASSES_UNSTABLE.name, None, float((forgets > 0).sum()))]
        return rows
