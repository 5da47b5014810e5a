"""scikit-learn's digits: 1797 real 8×8 grey images (values 0..16), 10 classes, shipped offline.

The images are read from the file `sklearn.datasets.load_digits` reads (`digits.csv.gz`: one image
per row, 64 pixel values then the label) without importing scikit-learn, whose import costs about
1.5 s of every run's start-up; when that file is not where this scikit-learn keeps it,
`load_digits` itself is called.
"""
from __future__ import annotations

import gzip
from dataclasses import replace
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from pab_campaign.training.data.augment import random_shift
from pab_campaign.training.data.base import DataBundle, bundle_from_arrays


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


def build(cfg) -> DataBundle:
    images, labels = load_images_and_labels()
    bundle = bundle_from_arrays("digits", (images / 16.0).astype(np.float32)[:, None, :, :], labels, cfg)
    return replace(bundle, augment=random_shift)
