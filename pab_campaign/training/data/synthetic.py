"""Synthetic images: one Gaussian prototype per class plus per-pixel Gaussian noise, seeded."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from pab_campaign.training.config import SyntheticConfig
from pab_campaign.training.data.augment import random_shift
from pab_campaign.training.data.base import DataBundle, bundle_from_arrays


def build(cfg: SyntheticConfig) -> DataBundle:
    if cfg.n_classes < 2 or cfg.n_samples < 10 * cfg.n_classes or cfg.side < 4:
        raise ValueError(
            f"synthetic data needs n_classes >= 2, n_samples >= 10 * n_classes and side >= 4 "
            f"(got n_classes={cfg.n_classes}, n_samples={cfg.n_samples}, side={cfg.side})"
        )
    rng = np.random.default_rng(cfg.split_seed)
    prototypes = rng.normal(size=(cfg.n_classes, 1, cfg.side, cfg.side))
    labels = np.arange(cfg.n_samples) % cfg.n_classes
    rng.shuffle(labels)
    images = prototypes[labels] + cfg.noise * rng.normal(size=(cfg.n_samples, 1, cfg.side, cfg.side))
    bundle = bundle_from_arrays("synthetic", images.astype(np.float32), labels.astype(np.int64), cfg)
    return replace(bundle, augment=random_shift)
