"""pabkit's `pab.utils` evaluations of a model over a DataLoader of (x, y) batches, to fill
`track_epoch`'s `class_accuracies` and `adversarial_acc` in a loop of one's own. The model is put back
in the train/eval mode it was in, and the attack computes no parameter gradients (pabkit's calls
`backward()`, which leaves gradients in the model's `.grad`). FGSM perturbs the inputs as the loader
gives them, ε in their units, with no clamping to [0, 1] (pabkit clamps, which also moves every
clean pixel of a normalised input); our runs record the same attack (`probe/fgsm_acc[ε]`)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pab_campaign.training.evaluate import eval_mode
from pab_campaign.training.probes.robustness import fgsm

__all__ = ["compute_class_accuracies", "evaluate_adversarial_robustness"]


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """`device`, else CUDA when available (pabkit's default); the model is moved there, as pabkit does."""
    chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(chosen)
    return chosen


def compute_class_accuracies(model: nn.Module, loader: Iterable[Any], num_classes: int,
                             device: str | torch.device | None = None) -> dict[int, float]:
    """Accuracy (fraction) on the examples of each class 0..num_classes−1 that `loader` holds;
    classes without an example are left out, as in pabkit.

    >>> x, y = torch.eye(4), torch.tensor([0, 1, 1, 2])
    >>> model = nn.Linear(4, 3, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]]))
    >>> compute_class_accuracies(model, [(x, y)], num_classes=3, device="cpu")
    {0: 1.0, 1: 0.5, 2: 1.0}
    """
    chosen = _device(model, device)
    correct, total = torch.zeros(num_classes, dtype=torch.long), torch.zeros(num_classes, dtype=torch.long)
    with eval_mode(model), torch.no_grad():
        for x, y, *_ in loader:
            y = y.long().cpu()
            hits = (model(x.to(chosen)).argmax(dim=1).cpu() == y).long()
            total += torch.bincount(y, minlength=num_classes)[:num_classes]
            correct += torch.bincount(y, weights=hits.double(), minlength=num_classes)[:num_classes].long()
    return {c: int(correct[c]) / int(total[c]) for c in range(num_classes) if total[c] > 0}


def evaluate_adversarial_robustness(model: nn.Module, clean_loader: Iterable[Any],
                                    device: str | torch.device | None = None,
                                    epsilon: float = 0.03) -> dict[str, float]:
    """Clean and FGSM accuracy (fractions) over every example of `clean_loader`, their ratio
    (adversarial / clean; NaN when the clean accuracy is 0) and `accuracy_drop` (clean − adversarial),
    under pabkit's keys.

    >>> torch.manual_seed(0) and None
    >>> x = torch.randn(32, 2)
    >>> y = (x[:, 0] > 0).long()
    >>> model = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]])); _ = model.bias.zero_()
    >>> result = evaluate_adversarial_robustness(model, [(x, y)], device="cpu", epsilon=10.0)
    >>> result["clean_accuracy"], result["adversarial_accuracy"], result["accuracy_drop"]
    (1.0, 0.0, 1.0)
    """
    chosen = _device(model, device)
    clean = adversarial = seen = 0
    with eval_mode(model):
        for x, y, *_ in clean_loader:
            x, y = x.to(chosen), y.long().to(chosen)
            with torch.no_grad():
                clean += int((model(x).argmax(dim=1) == y).sum())
            attacked = fgsm(model, x, y, epsilon)
            with torch.no_grad():
                adversarial += int((model(attacked).argmax(dim=1) == y).sum())
            seen += len(y)
    if not seen:
        raise ValueError("clean_loader gave no examples; give a DataLoader of (x, y) batches")
    clean_accuracy, adversarial_accuracy = clean / seen, adversarial / seen
    return {"clean_accuracy": clean_accuracy, "adversarial_accuracy": adversarial_accuracy,
            "robustness_ratio": adversarial_accuracy / clean_accuracy if clean_accuracy else math.nan,
            "accuracy_drop": clean_accuracy - adversarial_accuracy}
