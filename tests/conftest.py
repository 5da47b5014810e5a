"""Shared fixtures: composing the real Hydra config in-process, running the package's commands in
subprocesses, one small real sweep that several test modules read, and a tiny probe context."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pab_campaign.data import build_dataset
from pab_campaign.evaluate import evaluate
from pab_campaign.models import build_model
from pab_campaign.probes import ProbeContext
from pab_campaign.store import read_trajectory

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(REPO / "conf")


def compose_config(overrides: list[str], campaign_dir: Path | None = None) -> DictConfig:
    """The resolved run config for `overrides`, as `python -m pab_campaign` would see it;
    writing into `campaign_dir` when one is given."""
    campaign = [f"campaign.root={campaign_dir.parent}", f"campaign.name={campaign_dir.name}"] if campaign_dir else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[*campaign, *overrides])


def run_command(args: list[str], cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m <args>` with this interpreter; output captured as text."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def train(args: list[str], campaign_dir: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python -m pab_campaign` into `campaign_dir`; flags such as -m go before the overrides."""
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return run_command(["pab_campaign", *flags, f"campaign.root={campaign_dir.parent}",
                        f"campaign.name={campaign_dir.name}", *overrides], **kwargs)


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return run_command(["pab_campaign.cli", *args], **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """A failed command that printed exactly one non-blank stderr line holding every fragment,
    and no traceback."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_image_folder(root: Path, classes: tuple[str, ...], train_per_class: int, val_per_class: int,
                       side: int = 40) -> Path:
    """JPEG files at <root>/{train,val}/<class>/*.JPEG (ImageNet's folder layout), each class its
    own mean colour plus noise."""
    rng = np.random.default_rng(0)
    for part, count in (("train", train_per_class), ("val", val_per_class)):
        for index, name in enumerate(classes):
            folder = root / part / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(60 + 70 * index, 30, (side, side + 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i}.JPEG", quality=90)
    return root


def wait_for(predicate, timeout: float, what: str, poll: float = 0.1) -> None:
    """Poll `predicate` every `poll` seconds until it holds; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(poll)


def assert_same_trajectory(run_dir: Path, reference_dir: Path, epochs: int) -> None:
    """`run_dir`'s trajectory has epochs 0..`epochs` once each and equals `reference_dir`'s, row for
    row and value for value (to 1e-9)."""
    key = ["epoch", "context", "metric", "key"]
    got = read_trajectory(run_dir).to_pandas()
    want = read_trajectory(reference_dir).to_pandas()
    assert not got.duplicated(key).any()
    assert sorted(got["epoch"].unique()) == list(range(epochs + 1))
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert got[key].astype(str).equals(want[key].astype(str))
    assert (got["value"] - want["value"]).abs().max() < 1e-9


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


def make_model(data, norm: str = "none") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = OmegaConf.create({"name": "cnn", "channels": [4, 8], "hidden": 16, "norm": norm, "dropout": 0.0})
    return build_model(cfg, data.input_shape, data.num_classes)


def make_context(data, model, epoch: int = 0, state: dict | None = None, seed: int = 0) -> ProbeContext:
    evaluations = {name: evaluate(model, getattr(data, name)) for name in ("train", "val", "test")}
    return ProbeContext(epoch, model, data, data.probe(64), evaluations, {} if state is None else state, seed=seed)
