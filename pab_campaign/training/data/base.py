"""The in-memory data set every run trains on: tensors for train/val/test plus a fixed probe subset."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pab_campaign.training.data.splits import corrupt_labels, stratified_split, subsample


@dataclass(frozen=True)
class Split:
    """Inputs `x` (N × C × H × W, float32, normalised) and integer labels `y` (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


# The names of a DataBundle's splits, in the order they are evaluated and recorded.
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataBundle:
    """A data set's three splits (named in SPLITS), its class count, input shape and augmentation."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    # Standard augmentations of this data set as a function of (x, generator) -> x, or None.
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None

    def probe(self, size: int) -> Split:
        """A fixed probe subset: the first `size` validation examples (the split is already shuffled)."""
        return Split(self.val.x[:size], self.val.y[:size])


def bundle_from_arrays(name: str, images: np.ndarray, labels: np.ndarray, cfg) -> DataBundle:
    """Split, subsample, add label noise and normalise (by training-set mean and std)."""
    num_classes = int(labels.max()) + 1
    train, val, test = stratified_split(labels, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    train = subsample(train, cfg.train_fraction, cfg.split_seed)
    rng = np.random.default_rng(cfg.split_seed)
    val, test = rng.permutation(val), rng.permutation(test)
    train_labels = corrupt_labels(labels[train], cfg.label_noise, num_classes, cfg.split_seed)
    mean, std = float(images[train].mean()), float(images[train].std()) or 1.0

    def to_split(index: np.ndarray, y: np.ndarray) -> Split:
        x = torch.from_numpy(((images[index] - mean) / std).astype(np.float32))
        return Split(x, torch.from_numpy(y.astype(np.int64)))

    return DataBundle(
        name=name,
        train=to_split(train, train_labels),
        val=to_split(val, labels[val]),
        test=to_split(test, labels[test]),
        num_classes=num_classes,
        input_shape=tuple(images.shape[1:]),
    )
