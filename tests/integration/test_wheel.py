"""The package works installed from its wheel, like any other package: built from a copy of the
sources, installed without `-e` into a folder of its own (the test environment's dependencies reused
through the interpreter), and run from an empty directory with the repository nowhere on the path: a
one-epoch sweep, `pab-campaign report`, a Tracker run with a preset, and a user's own configs added
with `--config-dir`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pab_campaign.store import RunStatus, iter_run_dirs, read_run_json
from tests.helpers import REPO

pytestmark = pytest.mark.slow

SOURCES = ("pab_campaign", "hydra_plugins", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into (`--target`), with its console script in bin/."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__", "*.pyc")} if (REPO / name).is_dir() else {}
        copy(REPO / name, source / name, **kwargs)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next((root / "dist").glob("pab_campaign-*.whl"))
    target = root / "site"
    done = subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return target


def _env(target: Path) -> dict[str, str]:
    """The environment of a user who installed the wheel: its folder on the path, not the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PAB_CAMPAIGN_ROOT")}
    return {**env, "PYTHONPATH": str(target), "PYTHONUNBUFFERED": "1"}


def _run(args: list[str], target: Path, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=_env(target), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_the_wheel_ships_the_configs_and_runs_from_its_own_folder(installed, tmp_path):
    assert (installed / "pab_campaign" / "conf" / "config.yaml").is_file()
    assert (installed / "pab_campaign" / "conf" / "experiment" / "phases_digits.yaml").is_file()
    assert (installed / "pab_campaign" / "analysis" / "page" / "templates" / "campaign.html.j2").is_file()
    assert (installed / "pab_campaign" / "analysis" / "page" / "vendor" / "uPlot.iife.min.js").is_file()
    assert (installed / "pab_campaign" / "analysis" / "page" / "static" / "page.js").is_file()
    where = _run([sys.executable, "-c", "import pab_campaign, hydra_plugins.pab_campaign_launchers as h;"
                  "from pab_campaign.training.config import CONFIG_DIR; print(pab_campaign.__file__);"
                  "print(h.__file__); print(CONFIG_DIR)"], installed, tmp_path)
    assert all(line.startswith(str(installed)) for line in where.stdout.split()), where.stdout


def test_a_sweep_and_its_report_run_from_an_empty_directory(installed, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    _run([sys.executable, "-m", "pab_campaign", "-m", "train.epochs=1", "optimizer.lr=0.05,0.1", "grid=none",
          "tracking=minimal", "campaign.name=wheel", "runtime.verbose=false"], installed, work)
    runs = list(iter_run_dirs(work / "outputs" / "wheel"))
    assert len(runs) == 2
    assert {read_run_json(run).status for run in runs} == {RunStatus.COMPLETED}
    report = _run([str(installed / "bin" / "pab-campaign"), "report", "outputs/wheel"], installed, work)
    assert "optimizer.lr" in report.stdout and "val/acc" in report.stdout


def test_a_tracker_run_with_a_preset(installed, tmp_path):
    script = textwrap.dedent("""
        import torch
        from torch import nn
        from pab_campaign.training.tracker import Tracker

        torch.manual_seed(0)
        x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        with Tracker("mine", {"model": "tiny", "seed": 0}, tracking="default", probe_data=(x, y)) as tracker:
            for epoch in range(tracker.resume(model), 3):
                tracker.epoch(model, epoch, train_loss=1.0 / (epoch + 1), val_loss=1.1 / (epoch + 1),
                              train_acc=0.3 + 0.1 * epoch, val_acc=0.3 + 0.05 * epoch)
        print(tracker.status.value, tracker.run_dir)
    """)
    result = _run([sys.executable, "-c", script], installed, tmp_path)
    assert result.stdout.split()[0] == "completed"
    report = _run([str(installed / "bin" / "pab-campaign"), "report", "mine", "--contexts", "val", "--metrics", "acc"],
                  installed, tmp_path)
    assert "val/acc" in report.stdout


def test_a_users_own_experiment_and_model_preset_with_config_dir(installed, tmp_path):
    own = tmp_path / "my_conf"
    (own / "experiment").mkdir(parents=True)
    (own / "model").mkdir()
    (own / "model" / "tiny_mlp.yaml").write_text(textwrap.dedent("""
        defaults:
          - /schema/model/mlp@_here_
          - _self_

        name: mlp
        hidden: [8]
        norm: none
        dropout: 0.0
    """))
    (own / "experiment" / "my_exp.yaml").write_text(textwrap.dedent("""
        # @package _global_
        defaults:
          - override /model: tiny_mlp
          - override /tracking: minimal
          - override /grid: none

        campaign:
          name: my_exp
        train:
          epochs: 1
    """))
    _run([sys.executable, "-m", "pab_campaign", "--config-dir", "my_conf", "+experiment=my_exp",
          "runtime.verbose=false"], installed, tmp_path)
    (run,) = iter_run_dirs(tmp_path / "outputs" / "my_exp")
    record = read_run_json(run)
    assert record.status == RunStatus.COMPLETED
    assert record.hparams["model.hidden"] in ([8], "[8]")
