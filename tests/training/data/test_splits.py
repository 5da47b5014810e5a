"""The stratified hold-out against scikit-learn's train_test_split, and the split helpers' bad input."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from pab_campaign.training.data.splits import holdout, stratified_holdout, stratified_split


def _labels(case: int) -> np.ndarray:
    """Label vectors with balanced, unbalanced and equal (tied) class counts."""
    rng = np.random.default_rng(case)
    classes = int(rng.integers(2, 12))
    if case % 4 == 0:
        return rng.permutation(np.repeat(np.arange(classes), int(rng.integers(5, 30))))
    weights = rng.dirichlet(np.full(classes, 0.5 if case % 2 else 50.0))
    labels = rng.choice(classes, size=int(rng.integers(60, 400)), p=weights)
    counts = np.bincount(labels, minlength=classes)
    return labels[np.isin(labels, np.flatnonzero(counts >= 2))]


@pytest.mark.parametrize("case", range(40))
def test_stratified_holdout_draws_what_sklearn_draws(case):
    labels = _labels(case)
    fraction = float(np.random.default_rng(100 + case).uniform(0.1, 0.5))
    seed = 7 * case
    expected_kept, expected_held = train_test_split(np.arange(len(labels)), test_size=fraction,
                                                    stratify=labels, random_state=seed)
    kept, held = stratified_holdout(labels, fraction, seed)
    np.testing.assert_array_equal(kept, expected_kept)
    np.testing.assert_array_equal(held, expected_held)


def test_stratified_split_is_a_stratified_partition():
    labels = np.repeat(np.arange(10), 50)
    train, val, test = stratified_split(labels, 0.2, 0.2, seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(500))
    assert (np.bincount(labels[val]) == 10).all() and (np.bincount(labels[test]) == 10).all()
    assert all(np.array_equal(part, np.sort(part)) for part in (train, val, test))


def test_stratified_holdout_rejects_a_singleton_class_and_too_few_items():
    with pytest.raises(ValueError, match=r"classes \[2\] have fewer than 2 members"):
        stratified_holdout(np.array([0, 0, 1, 1, 2]), 0.4, seed=0)
    with pytest.raises(ValueError, match="cannot cover 3 classes"):
        stratified_holdout(np.repeat(np.arange(3), 4), 0.1, seed=0)


def test_holdout_names_the_setting_to_change():
    with pytest.raises(ValueError, match=r"cannot hold out dataset.val_fraction=0.05 of 12"):
        holdout(np.repeat(np.arange(3), 4), 0.05, seed=0)
