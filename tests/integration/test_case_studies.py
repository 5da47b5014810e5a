"""Both case-study presets end to end on the CPU, on tiny data in the real on-disk formats: a CIFAR-10
directory of pickles and an ImageNet-style folder of JPEGs; plus the one-line error for a bad root."""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from pab_campaign.store import RunStatus, iter_run_dirs, read_run_json, read_trajectory, write_run_json
from pab_campaign.training.checkpoint import checkpoint_dir
from pab_campaign.training.config import register_schemas
from pab_campaign.training.data.cifar10 import write_batches
from tests.helpers import REPO, assert_one_line_error, run_command, write_image_folder

pytestmark = pytest.mark.slow
CONF = REPO / "pab_campaign" / "conf"
SMALL_RESNET = ["model.width=8", "model.blocks=[1,1,1,1]", "train.batch_size=32", "tracking=default",
                "tracking.probe_size=16", "runtime.threads=1", "runtime.device=cpu", "checkpoint.every=1",
                "checkpoint.keep_last_n=5"]


def _launch(*args: str) -> subprocess.CompletedProcess:
    return run_command(["pab_campaign", *args], timeout=300)


def _runs(campaign: Path) -> dict[str, tuple[dict, pd.DataFrame]]:
    return {directory.name: (read_run_json(directory), read_trajectory(directory).to_pandas())
            for directory in iter_run_dirs(campaign)}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    """300 training and 60 test images; each class a noisy copy of its own random template."""
    rng = np.random.default_rng(0)
    templates = rng.integers(0, 256, (10, 3, 32, 32))

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 10
        noisy = templates[labels] + rng.normal(0, 40, (n, 3, 32, 32))
        return np.clip(noisy, 0, 255).astype(np.uint8), labels

    root = tmp_path_factory.mktemp("cifar10")
    write_batches(root, images(300), images(60))
    return root


def test_cifar10_case_study_grid_resumes_exactly(cifar_root, tmp_path):
    campaign = tmp_path / "campaign"
    args = ["+experiment=cifar10_case_study", f"dataset.root={cifar_root}", f"campaign.dir={campaign}",
            "train.epochs=2", *SMALL_RESNET]
    done = _launch("-m", *args, "dataset.augment=true,false", "optimizer.lr=0.05", "seed=0")
    assert done.returncode == 0, done.stderr[-2000:]
    runs = _runs(campaign)
    assert len(runs) == 2
    by_augment = {record.hparams["dataset.augment"]: table for record, table in runs.values()}
    for record, table in runs.values():
        assert record.status == "completed" and record.hparams["model.name"] == "resnet18"
        assert sorted(table.epoch.unique()) == [0, 1, 2]
        assert {"train", "val", "test"} <= set(table.context.unique())
        losses = table[(table.metric == "loss")]
        assert np.isfinite(losses.value).all() and len(losses) == 9
    on, off = by_augment[True], by_augment[False]
    assert on[on.epoch == 0].reset_index(drop=True).equals(off[off.epoch == 0].reset_index(drop=True))
    batch_loss = lambda t: t[(t.metric == "batch_loss") & (t.epoch == 2)].value.item()  # noqa: E731
    assert batch_loss(on) != batch_loss(off)

    # Resume the augmented run from its epoch-1 checkpoint: it must redraw the same augmentation.
    rid = next(rid for rid, (record, _) in runs.items() if record.hparams["dataset.augment"])
    directory = campaign / "runs" / rid
    for name in ("last.pt", "best.pt", "epoch_0002.pt"):
        (checkpoint_dir(directory) / name).unlink(missing_ok=True)
    write_run_json(directory, dataclasses.replace(read_run_json(directory), status=RunStatus.RUNNING))
    again = _launch(*args, "dataset.augment=true", "optimizer.lr=0.05", "seed=0")
    assert again.returncode == 0, again.stderr[-2000:]
    record, resumed = _runs(campaign)[rid]
    assert record.restarts == 1
    assert resumed.reset_index(drop=True).equals(on.reset_index(drop=True))


def test_imagenet_case_study_runs_on_cpu(tmp_path):
    root = write_image_folder(tmp_path / "imagenet", tuple(f"n{c:08d}" for c in range(3)), 10, 3)
    campaign = tmp_path / "campaign"
    done = _launch(
        "+experiment=imagenet_case_study", f"dataset.root={root}", f"campaign.dir={campaign}", "train.epochs=2",
        "dataset.image_size=32", "dataset.resize_size=36", "dataset.val_fraction=0.2", "dataset.num_workers=1",
        "dataset.train_eval_size=8", "dataset.classes=3", "train.batch_size=8", "tracking=minimal",
        "tracking.probe_size=4", "runtime.threads=1", "runtime.device=cpu", "checkpoint.best_metric=null",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    [(record, table)] = _runs(campaign).values()
    assert record.status == "completed" and record.hparams["model.name"] == "resnet50"
    assert record.hparams["optimizer.name"] == "sgd" and record.hparams["schedule.name"] == "cosine"
    assert "dataset.num_workers" not in record.hparams and "dataset.root" not in record.hparams
    assert sorted(table.epoch.unique()) == [0, 1, 2]
    lr = table[table.metric == "lr"].sort_values("epoch").value.to_numpy()
    assert lr[0] < lr[1]  # cosine with warm-up: the first epoch runs at a fraction of the base rate
    assert np.isfinite(table[table.metric == "loss"].value).all()


def test_imagenet_preset_is_slurm_ready():
    register_schemas()  # as the entry point does (the test passed alone only after another test had)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=imagenet_case_study", "tracking=minimal"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.cpus_per_task > cfg.dataset.num_workers
    assert launcher.mem_gb > 0 and launcher.timeout_min > 0
    assert launcher._target_.startswith("hydra_plugins.pab_campaign_launchers") and launcher.max_num_timeout > 0
    assert cfg.tracking.probe_size == 1024 and cfg.model.name == "resnet50"


@pytest.mark.parametrize("preset, layout", [
    ("cifar10_case_study", "<root>/cifar-10-batches-py/data_batch_1..5 and test_batch"),
    ("imagenet_case_study", "<root>/train/<class>/*.JPEG and <root>/val/<class>/*.JPEG"),
])
def test_missing_root_is_one_line_and_exit_2(tmp_path, preset, layout):
    done = _launch(f"+experiment={preset}", f"dataset.root={tmp_path / 'missing'}", f"campaign.dir={tmp_path / 'c'}",
                   "tracking=minimal")
    assert done.returncode == 2
    assert_one_line_error(done, layout)
    assert not (tmp_path / "c" / "runs").exists()
