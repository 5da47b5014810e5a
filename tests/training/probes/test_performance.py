"""Macro precision, recall and F1 per split, against scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from pab_campaign.training.evaluate import Evaluation, macro_scores
from pab_campaign.training.probes.performance import performance_rows


def _sklearn(predictions: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, average="macro", zero_division=0)
    return float(precision), float(recall), float(f1)


@pytest.mark.parametrize("seed", range(6))
def test_macro_scores_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(2, 8))
    labels = rng.integers(0, classes, size=int(rng.integers(1, 60)))
    # Mostly right, some wrong, and a class the labels never have among the predictions.
    predictions = np.where(rng.random(len(labels)) < 0.6, labels, rng.integers(0, classes + 1, size=len(labels)))
    ours = macro_scores(torch.from_numpy(predictions), torch.from_numpy(labels))
    assert ours == pytest.approx(_sklearn(predictions, labels), abs=1e-12)


def test_class_absent_from_split() -> None:
    labels = np.array([0, 0, 1, 1, 3, 3])          # class 2 is absent from the split
    never_predicted = np.array([0, 0, 1, 0, 3, 3])  # ... and never predicted: left out of the mean
    predicted_once = np.array([0, 2, 1, 0, 3, 3])   # ... predicted once: counts with 0
    for predictions in (never_predicted, predicted_once):
        ours = macro_scores(torch.from_numpy(predictions), torch.from_numpy(labels))
        assert ours == pytest.approx(_sklearn(predictions, labels), abs=1e-12)
    assert macro_scores(torch.from_numpy(never_predicted), torch.from_numpy(labels))[1] == pytest.approx(5 / 6)
    assert macro_scores(torch.from_numpy(predicted_once), torch.from_numpy(labels))[1] == pytest.approx(2 / 4)


def test_performance_rows_record_macro_scores_per_split() -> None:
    labels = torch.tensor([0, 1, 2, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 2, 2, 1]), 3).float()
    evaluation = Evaluation(loss=0.5, acc=0.5, logits=logits, labels=labels)
    rows = {(c, m): v for c, m, _, v in performance_rows({"train": evaluation, "val": evaluation})}
    expected = _sklearn(np.array([0, 2, 2, 1]), labels.numpy())
    for split in ("train", "val"):
        assert (rows[(split, "precision")], rows[(split, "recall")], rows[(split, "f1")]) == pytest.approx(expected)
    # Numbers alone (the Tracker given losses and accuracies): no predictions, no macro scores.
    given = Evaluation(0.5, 0.5, torch.empty(0, 3), torch.empty(0, dtype=torch.long))
    assert {m for _, m, _, _ in performance_rows({"val": given})} == {"loss", "acc"}
    assert all(math.isfinite(v) for v in rows.values())
