"""Shared fixtures: one small real sweep that several test modules read, and a small data set.
Helpers live in tests/helpers.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pab_campaign.training.data import build_dataset
from tests.helpers import train


@pytest.fixture(scope="session")
def demo_campaign(tmp_path_factory) -> Path:
    """The default 12-run grid (2 models × 2 learning rates × 3 seeds), 4 epochs, trained for real."""
    campaign = tmp_path_factory.mktemp("campaigns") / "demo"
    result = train(["-m", "train.epochs=4", "runtime.verbose=false"], campaign)
    assert result.returncode == 0, result.stderr[-3000:]
    return campaign


@pytest.fixture(scope="session")
def synthetic_data():
    cfg = OmegaConf.create({"name": "synthetic", "n_samples": 400, "n_classes": 4, "side": 8, "noise": 1.0,
                            "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0,
                            "train_fraction": 1.0, "label_noise": 0.0})
    return build_dataset(cfg)
