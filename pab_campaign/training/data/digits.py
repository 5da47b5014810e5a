"""scikit-learn's digits: 1797 real 8×8 grey images (values 0..16), 10 classes, shipped offline.

The images are read from the file `sklearn.datasets.load_digits` reads (`digits.csv.gz`: one image
per row, 64 pixel values then the label) without importing scikit-learn, whose import costs about
1.5 s of every run's start-up; when that file is not where this scikit-learn keeps it,
`load_digits` itself is called.

`dataset.corner_patch` plants a shortcut for the ModelDiff case study: a bright square in the
top-left corner, where the digits have no ink, on every training image of one class and on a
seeded fraction of the validation images of every class (the test split stays clean).
"""
from __future__ import annotations

import gzip
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import torch

from pab_campaign.training.config import CornerPatchConfig, DigitsConfig
from pab_campaign.training.data.augment import random_shift
from pab_campaign.training.data.base import DataBundle, Split, bundle_from_arrays

NUM_CLASSES = 10
SIDE = 8


def digits_file() -> Path | None:
    """The `digits.csv.gz` shipped inside the installed scikit-learn, or None where it has none."""
    spec = find_spec("sklearn")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if candidate.is_file():
            return candidate
    return None


def load_images_and_labels() -> tuple[np.ndarray, np.ndarray]:
    """Images (1797, 8, 8) float64 in 0..16 and labels (1797,) int64, as `load_digits` gives them."""
    path = digits_file()
    if path is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target.astype(np.int64)
    with gzip.open(path, "rt") as rows:
        table = np.loadtxt(rows, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def check(cfg: DigitsConfig) -> None:
    """ValueError naming the key when `dataset.corner_patch` is out of range."""
    patch = getattr(cfg, "corner_patch", None)
    if patch is None:
        return
    if patch.train_class is not None and not 0 <= patch.train_class < NUM_CLASSES:
        raise ValueError(f"dataset.corner_patch.train_class={patch.train_class} must be a class in 0..9, or null")
    if not 0 <= patch.val_fraction <= 1:
        raise ValueError(f"dataset.corner_patch.val_fraction={patch.val_fraction} must be in [0, 1]")
    if not 1 <= patch.size <= SIDE:
        raise ValueError(f"dataset.corner_patch.size={patch.size} must be in 1..{SIDE} pixels")


def patch_corner(x: torch.Tensor, size: int, value: float) -> torch.Tensor:
    """A copy of `x` (N × C × H × W) whose top-left `size` × `size` pixels are `value`."""
    patched = x.clone()
    patched[..., :size, :size] = value
    return patched


def val_patch_mask(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which validation images carry the patch (bool, shape of `labels`): round(`fraction` x count)
    of every class, drawn by a generator seeded with `seed` alone, so every run with the same
    split sees the same patched images."""
    rng = np.random.default_rng([seed, 0x9A7C])
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        (members,) = np.nonzero(labels == label)
        mask[rng.choice(members, size=round(fraction * len(members)), replace=False)] = True
    return mask


def plant_corner_patch(bundle: DataBundle, patch: CornerPatchConfig, seed: int) -> DataBundle:
    """`bundle` with the corner patch of `patch` (`dataset.corner_patch`) planted. Its value is the
    brightest value of the training images after normalisation (a raw 16 of 16), and the normalisation
    is the clean images', so the validation inputs are identical whichever class the training
    patch marks."""
    value = float(bundle.train.x.max())
    train, val = bundle.train, bundle.val
    if patch.train_class is not None:
        chosen = train.y == int(patch.train_class)
        train = Split(torch.where(chosen[:, None, None, None], patch_corner(train.x, patch.size, value), train.x),
                      train.y)
    if patch.val_fraction > 0:
        chosen = torch.from_numpy(val_patch_mask(val.y.numpy(), patch.val_fraction, seed))
        val = Split(torch.where(chosen[:, None, None, None], patch_corner(val.x, patch.size, value), val.x), val.y)
    return replace(bundle, train=train, val=val)


def build(cfg: DigitsConfig) -> DataBundle:
    images, labels = load_images_and_labels()
    bundle = bundle_from_arrays("digits", (images / 16.0).astype(np.float32)[:, None, :, :], labels, cfg)
    patch = getattr(cfg, "corner_patch", None)
    if patch is not None and (patch.train_class is not None or patch.val_fraction > 0):
        bundle = plant_corner_patch(bundle, patch, int(cfg.split_seed))
    return replace(bundle, augment=random_shift)
