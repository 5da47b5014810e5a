"""Pure index arithmetic shared by all in-memory data sets: stratified splits, subsets, label noise.

The stratified hold-out draws exactly the indices scikit-learn's
`train_test_split(..., stratify=labels, random_state=seed)` draws (the tests check it against
scikit-learn), without importing scikit-learn: that import costs about 2 s of every run's start-up.
"""
from __future__ import annotations

from math import ceil

import numpy as np


def _apportion(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `draws` items each class gets, proportional to `counts` (shape (classes,)):
    floors first, then one more to the largest remainders, equal remainders tied at random."""
    share = counts / counts.sum() * draws
    taken = np.floor(share)
    missing = int(draws - taken.sum())
    remainder = share - taken
    for value in np.sort(np.unique(remainder))[::-1]:
        if missing <= 0:
            break
        (tied,) = np.where(remainder == value)
        chosen = rng.choice(tied, size=min(len(tied), missing), replace=False)
        taken[chosen] += 1
        missing -= len(chosen)
    return taken.astype(int)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (kept, held out) of a stratified hold-out of ceil(`fraction` x n) of `labels`, both
    in a seeded order; ValueError when a class has fewer than 2 members or a side would get fewer
    items than there are classes."""
    n = len(labels)
    n_held = ceil(fraction * n)
    n_kept = n - n_held
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise ValueError(f"classes {classes[counts < 2].tolist()} have fewer than 2 members")
    if min(n_kept, n_held) < len(classes):
        raise ValueError(f"{n_kept} kept / {n_held} held-out items cannot cover {len(classes)} classes")
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    rng = np.random.RandomState(seed)
    kept_per_class = _apportion(counts, n_kept, rng)
    held_per_class = _apportion(counts - kept_per_class, n_held, rng)
    kept: list[int] = []
    held: list[int] = []
    for index, n_k, n_h in zip(members, kept_per_class, held_per_class):
        shuffled = index[rng.permutation(len(index))]
        kept.extend(shuffled[:n_k])
        held.extend(shuffled[n_k:n_k + n_h])
    return rng.permutation(np.array(kept, dtype=np.int64)), rng.permutation(np.array(held, dtype=np.int64))


def stratified_split(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test) of a stratified split; fractions are of the whole set."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
            "and sum to less than 1"
        )
    rest, test = stratified_holdout(labels, test_fraction, seed)
    train, val = stratified_holdout(labels[rest], val_fraction / (1.0 - test_fraction), seed)
    return np.sort(rest[train]), np.sort(rest[val]), np.sort(test)


def holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, sorted; held out, in a seeded order) of a stratified hold-out of `fraction`
    of `labels`, e.g. the validation split carved from a training pool."""
    try:
        rest, held = stratified_holdout(labels, fraction, seed)
    except ValueError as exc:
        raise ValueError(f"cannot hold out dataset.val_fraction={fraction} of {len(labels)} "
                         f"training images per class ({exc})") from None
    return np.sort(rest), np.random.default_rng(seed).permutation(held)


def subsample(index: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded subset of `index` holding round(fraction * len) of its entries (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"train_fraction={fraction} must be in (0, 1]")
    if fraction == 1:
        return index
    keep = max(1, round(fraction * len(index)))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(index, size=keep, replace=False))


def corrupt_labels(labels: np.ndarray, noise: float, num_classes: int, seed: int) -> np.ndarray:
    """Copy of `labels` where a seeded `noise` fraction is replaced by a different, uniform class."""
    if not 0 <= noise < 1:
        raise ValueError(f"label_noise={noise} must be in [0, 1)")
    noisy = labels.copy()
    if noise == 0:
        return noisy
    rng = np.random.default_rng(seed + 1)
    flip = rng.choice(len(labels), size=round(noise * len(labels)), replace=False)
    shift = rng.integers(1, num_classes, size=len(flip))
    noisy[flip] = (labels[flip] + shift) % num_classes
    return noisy
