"""Helpers shared by the tests (imported explicitly; conftest.py holds only fixtures): composing the
real Hydra config in-process, running the package's commands in subprocesses, campaigns written
with the project's own writer, and small models and probe contexts."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from pab_campaign.store import (
    RunRecord,
    RunStatus,
    TrajectoryBuffer,
    read_trajectory,
    run_dir,
    write_run_json,
    write_trajectory,
)
from pab_campaign.training.config import register_schemas
from pab_campaign.training.evaluate import evaluate
from pab_campaign.training.models import build_model
from pab_campaign.training.probes import ProbeContext

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(REPO / "pab_campaign" / "conf")


def compose_config(overrides: list[str], campaign_dir: Path | None = None) -> DictConfig:
    """The resolved run config for `overrides`, as `python -m pab_campaign` would see it (typed by
    the schemas the entry point registers); writing into `campaign_dir` when one is given."""
    campaign = [f"campaign.root={campaign_dir.parent}", f"campaign.name={campaign_dir.name}"] if campaign_dir else []
    register_schemas()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=[*campaign, *overrides])


def command_env(**extra: str) -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH and unbuffered output."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def run_command(args: list[str], cwd: Path | None = None, timeout: float = 600,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m <args>` with this interpreter; output captured as text."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, env=env or command_env(),
                          capture_output=True, text=True, timeout=timeout)


def train_argv(campaign_dir: Path, args: list[str]) -> list[str]:
    """argv of `python -m pab_campaign` into `campaign_dir`; flags such as -m go before the overrides."""
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return [sys.executable, "-m", "pab_campaign", *flags, f"campaign.root={campaign_dir.parent}",
            f"campaign.name={campaign_dir.name}", *overrides]


def train(args: list[str], campaign_dir: Path, timeout: float = 600,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m pab_campaign` into `campaign_dir`, run to its end."""
    return subprocess.run(train_argv(campaign_dir, args), cwd=REPO, env=env or command_env(), capture_output=True,
                          text=True, timeout=timeout)


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


def forkserver_clients(marker: Path) -> list[int]:
    """Pids of the fork-server clients (submitit's local tasks) whose command line names `marker`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError):
            continue
        if "pab_campaign.launching.forkserver" in cmdline and "connect" in cmdline and str(marker) in " ".join(cmdline):
            pids.append(int(proc.name))
    return pids


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


def make_model(data, norm: str = "none") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = OmegaConf.create({"name": "cnn", "channels": [4, 8], "hidden": 16, "norm": norm, "dropout": 0.0})
    return build_model(cfg, data.input_shape, data.num_classes)


def make_context(data, model, epoch: int = 0, state: dict | None = None, seed: int = 0) -> ProbeContext:
    evaluations = {name: evaluate(model, getattr(data, name)) for name in ("train", "val", "test")}
    return ProbeContext(epoch, model, data, data.probe(64), evaluations, {} if state is None else state, seed=seed)


def write_run(root: Path, run_id: str, hparams: dict, values: dict[tuple[str, str], list[float]],
              status: str = "completed", campaign: str = "c1", duration: float = 10.0,
              keyed: dict[tuple[str, str, str], list[float]] | None = None) -> Path:
    """One run: `values[(context, metric)]` is its series over epochs 0..E (NaN kept)."""
    directory = run_dir(root, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = TrajectoryBuffer()
    for (context, metric), series in values.items():
        for epoch, value in enumerate(series):
            buffer.add(epoch, context, metric, value)
    for (context, metric, key), series in (keyed or {}).items():
        for epoch, value in enumerate(series):
            buffer.add(epoch, context, metric, value, key)
    write_trajectory(directory, buffer.to_table())
    epochs = max(len(s) for s in values.values()) - 1
    write_run_json(directory, RunRecord(
        run_id=run_id, status=RunStatus(status), campaign=campaign, hparams=hparams, seed=hparams.get("seed"),
        started_at="2025-01-01T00:00:00", ended_at="2025-01-01T00:00:10", duration_s=duration, epochs_done=epochs,
        host="test"))
    return directory


def make_grid(root: Path, seeds: int = 4, epochs: int = 6, campaign: str = "c1", seed: int = 0,
              prefix: str = "") -> list[str]:
    """A model.name × optimizer.lr grid (model.hidden restates model.name) with `seeds` seeds each;
    random val/test loss and acc per epoch. Returns the run ids."""
    rng = np.random.default_rng(seed)
    ids = []
    for model, hidden in (("mlp", 64), ("cnn", 16)):
        for lr in (0.1, 0.01):
            for s in range(seeds):
                rid = f"{prefix}{model}-{lr}-{s}"
                values = {(c, m): list(rng.uniform(0, 1, epochs + 1))
                          for c in ("train", "val", "test") for m in ("loss", "acc")}
                write_run(root, rid, {"model.name": model, "model.hidden": hidden, "optimizer.lr": lr, "seed": s},
                          values, campaign=campaign, duration=float(rng.uniform(5, 15)),
                          keyed={("val", "class_acc", "0"): list(rng.uniform(0, 1, epochs + 1))})
                ids.append(rid)
    return ids


def planted_phase_runs(n_runs: int, n_features: int = 4, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sequences drawn from a known 3-state Gaussian HMM (hmmlearn's sampler): per run, values
    (T × F, T in 50..80, then scaled and shifted per run, which the per-run z-score undoes) and the
    planted states (T,). The chain switches often, so every run spends about a third in each state."""
    from hmmlearn.hmm import GaussianHMM

    rng = np.random.default_rng(seed)
    model = GaussianHMM(3, "diag")
    model.startprob_ = np.array([0.6, 0.3, 0.1])
    model.transmat_ = np.array([[0.85, 0.1, 0.05], [0.05, 0.85, 0.1], [0.1, 0.05, 0.85]])
    means = np.zeros((3, n_features))
    means[1, 0], means[2, 1], means[1, 2 % n_features], means[2, 3 % n_features] = 3.0, 3.0, 1.5, -1.5
    model.means_ = means
    model.covars_ = np.full((3, n_features), 0.5)
    values, states = [], []
    for run in range(n_runs):
        x, s = model.sample(int(rng.integers(50, 81)), random_state=int(rng.integers(1 << 30)))
        values.append(x * (1 + run % 3) + run)
        states.append(s)
    return values, states


def write_planted_campaign(root: Path, n_runs: int, n_features: int = 4, seed: int = 0,
                           nan_run: int | None = None, restated: bool = False) -> tuple[list[str], list[np.ndarray]]:
    """A campaign of `planted_phase_runs` as features weights/f0..f{F-1}, with a val/acc curve that
    converges faster with weight decay 0.01 than with 0.0 (alternating runs) and `model.hidden`
    32 or 64 (`restated`: and a `model.name`, narrow or wide, that splits the runs as it does).
    `nan_run` gets a NaN feature value at epoch 10. Returns run ids and planted states."""
    rng = np.random.default_rng(seed + 1)
    values, states = planted_phase_runs(n_runs, n_features, seed)
    ids = []
    for run, x in enumerate(values):
        run_id = f"run{run:03d}"
        epochs = np.arange(len(x))
        series = {("weights", f"f{i}"): list(x[:, i]) for i in range(n_features)}
        series[("val", "acc")] = list(0.9 * (1 - np.exp(-epochs / (5 + 10 * (run % 2)))) + rng.normal(0, 0.01, len(x)))
        if run == nan_run:
            series[("weights", "f1")][10] = float("nan")
        hparams = {"optimizer.weight_decay": [0.01, 0.0][run % 2], "model.hidden": [32, 64][run % 3 == 0], "seed": run}
        if restated:
            hparams["model.name"] = ["narrow", "wide"][run % 3 == 0]
        write_run(root, run_id, hparams, series)
        ids.append(run_id)
    return ids, states
