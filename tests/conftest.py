"""Shared fixtures: one small real sweep that several test modules read, a small data set, and a
real single-node SLURM cluster. Helpers live in tests/helpers.py."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pab_campaign.training.data import build_dataset
from tests.helpers import REPO, command_env, train


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


@pytest.fixture(scope="session")
def slurm_env() -> dict[str, str]:
    """A single-node SLURM cluster (scripts/slurm/start.sh) on non-default ports, started once per
    session and stopped (only its own daemons) at the end: the environment that reaches it, with
    this checkout first on PYTHONPATH. Where it cannot start (not root, no apt) the test skips."""
    state = Path(os.environ.get("PAB_SLURM_TEST_DIR", "/tmp/pab_slurm_test"))
    ports = {"PAB_SLURM_CTLD_PORT": "16827", "PAB_SLURM_SLURMD_PORT": "16828", "PAB_SLURM_DBD_PORT": "16829"}
    env = {**os.environ, **ports, "PAB_SLURM_DIR": str(state)}
    scripts = REPO / "scripts" / "slurm"
    started = subprocess.run([str(scripts / "start.sh")], env=env, capture_output=True, text=True, timeout=900)
    if started.returncode == 3:
        reason = started.stderr.strip().splitlines()[-1]
        print(reason)
        pytest.skip(reason)
    assert started.returncode == 0, started.stdout + started.stderr
    yield {**env, "SLURM_CONF": str(state / "slurm.conf"), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": command_env()["PYTHONPATH"]}
    subprocess.run([str(scripts / "stop.sh"), "--purge"], env=env, capture_output=True, timeout=120)
