"""pabkit's `pab.metrics` functions on plain numbers and lists (pure; what our process summary
computes over a whole trajectory, one step at a time). Two differences, both where pabkit errs:
`learning_stability` divides by |L(t−1)| (pabkit by L(t−1), which flips the sign for a negative
loss), and `class_wise_progression` reads a shorter list as it is (pabkit pads it with zeros, so
a class measured at fewer epochs than the others is called unstable after it was learned)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["class_wise_progression", "generalization_efficiency", "learning_stability", "robustness_evolution",
           "rule_evolution"]


def learning_stability(previous_loss: float, current_loss: float) -> float:
    """|L(t−1) − L(t)| / (|L(t−1)| + 1e-12): the relative change of the validation loss between two
    epochs (0 = unchanged; lower is more stable).

    >>> round(learning_stability(0.8, 0.6), 6)
    0.25
    """
    return abs(previous_loss - current_loss) / (abs(previous_loss) + 1e-12)


def generalization_efficiency(train_loss: float, val_loss: float) -> float:
    """val − train loss (nats; positive = the model does better on what it trained on).

    >>> generalization_efficiency(0.25, 0.5)
    0.25
    """
    return val_loss - train_loss


def rule_evolution(previous_repr: Any, current_repr: Any) -> float:
    """pabkit's representation divergence: the Euclidean distance between the two representations,
    each flattened and scaled to unit length (0 = same direction, 2 = opposite; a zero array stays
    zero). Our tracker records linear CKA of the penultimate features instead (`probe/cka_prev`).

    >>> round(rule_evolution(np.array([1.0, 0.0]), np.array([0.0, 2.0])), 6)
    1.414214
    """
    def unit(values: Any) -> np.ndarray:
        flat = (values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values))
        flat = flat.astype(np.float64).reshape(-1)
        norm = np.linalg.norm(flat)
        return flat / norm if norm > 0 else flat

    before, after = unit(previous_repr), unit(current_repr)
    if before.shape != after.shape:
        raise ValueError(f"representations of {before.size} and {after.size} values cannot be compared; give two "
                         "of one shape (the same probe examples and layer)")
    return float(np.linalg.norm(before - after))


def class_wise_progression(class_accuracies: Mapping[Any, Sequence[float]],
                           threshold: float = 0.8) -> tuple[list[Any], list[Any], list[Any]]:
    """(early, late, unstable) classes over E epochs (the longest list): early = first at or above
    `threshold` before epoch E // 3, late = first there at or after 2E // 3 or never, unstable =
    below it again after it was first reached. A class with fewer values than E is judged on the
    values it has (pabkit pads its list with zeros, which makes a class reached in a short list
    unstable).

    >>> class_wise_progression({0: [0.9], 1: [0.1, 0.9, 0.9]})
    ([0], [], [])
    >>> class_wise_progression({0: [0.9, 0.9, 0.9], 1: [0.1, 0.2, 0.3], 2: [0.9, 0.5, 0.9]})
    ([0, 2], [1], [2])
    """
    epochs = max((len(values) for values in class_accuracies.values()), default=0)
    early, late, unstable = [], [], []
    for class_id, values in class_accuracies.items():
        first = next((i for i, value in enumerate(values) if value >= threshold), None)
        if first is None:
            late.append(class_id)
            continue
        if any(value < threshold for value in values[first:]):
            unstable.append(class_id)
        if first < epochs // 3:
            early.append(class_id)
        elif first >= 2 * epochs // 3:
            late.append(class_id)
    return early, late, unstable


def robustness_evolution(clean_accuracies: Sequence[float], adversarial_accuracies: Sequence[float]) -> dict[str, Any]:
    """The adversarial accuracy over epochs 1..n: `peak_epoch` (1-based, the first of equal peaks),
    `peak_value`, `final_value`, `degradation` (peak − final) / peak, and `robustness_ratio`
    (adversarial / clean per epoch; NaN where the clean accuracy is 0).

    >>> result = robustness_evolution([0.8, 0.9, 0.95], [0.4, 0.5, 0.25])
    >>> result["peak_epoch"], result["final_value"], round(result["degradation"], 6)
    (2, 0.25, 0.5)
    """
    clean, adversarial = np.asarray(clean_accuracies, float), np.asarray(adversarial_accuracies, float)
    if clean.shape != adversarial.shape or clean.ndim != 1 or not len(clean):
        raise ValueError(f"clean ({clean.size}) and adversarial ({adversarial.size}) accuracies must be two lists of "
                         "one value per epoch, of one length")
    peak = int(np.argmax(adversarial))
    peak_value, final_value = float(adversarial[peak]), float(adversarial[-1])
    ratio = [a / c if c > 0 else math.nan for a, c in zip(adversarial.tolist(), clean.tolist())]
    return {"peak_epoch": peak + 1, "peak_value": peak_value, "final_value": final_value,
            "degradation": (peak_value - final_value) / peak_value if peak_value > 0 else 0.0,
            "robustness_ratio": ratio}
