"""Crash-safe resume: a training subprocess killed with a real SIGKILL mid-run and launched again
with the same command ends with the trajectory of an uninterrupted run, row for row, value for value."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from pab_campaign.errors import StoreError
from pab_campaign.store import iter_run_dirs, read_run_json, read_trajectory
from tests.helpers import command_env, train_argv

ARGS = ["train.epochs=12", "dataset.train_fraction=0.5", "model=cnn", "model.dropout=0.2", "tracking=full",
        "tracking.probes.fim.samples=32",
        "checkpoint.every=3", "checkpoint.keep_last_n=1", "runtime.verbose=false"]


def _command(root: Path) -> list[str]:
    return train_argv(root / "resume", ARGS)


def _epochs_done(campaign: Path) -> int:
    for directory in iter_run_dirs(campaign):
        try:
            return int(read_trajectory(directory).column("epoch").to_pylist()[-1])
        except (StoreError, IndexError):
            return -1
    return -1


def _final(campaign: Path) -> tuple[pd.DataFrame, dict]:
    (directory,) = list(iter_run_dirs(campaign))
    frame = read_trajectory(directory).to_pandas().astype({"context": str, "metric": str, "key": object})
    return frame, read_run_json(directory)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_then_relaunch_equals_an_uninterrupted_run(tmp_path):
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    clean_process = subprocess.Popen(_command(clean_root), env=command_env(), cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    process = subprocess.Popen(_command(killed_root), env=command_env(), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _epochs_done(killed_root / "resume") < 2:
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "training never reached epoch 2"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    (interrupted,) = list(iter_run_dirs(killed_root / "resume"))
    assert read_run_json(interrupted).status == "running"
    assert _epochs_done(killed_root / "resume") < 12, "killed too late to test a resume"

    relaunch = subprocess.run(_command(killed_root), env=command_env(), cwd=tmp_path, check=True,
                              capture_output=True, text=True)
    assert "resuming from last.pt" in relaunch.stdout + relaunch.stderr
    _, clean_errors = clean_process.communicate(timeout=120)
    assert clean_process.returncode == 0, clean_errors[-2000:]

    resumed, resumed_record = _final(killed_root / "resume")
    clean, clean_record = _final(clean_root / "resume")
    assert resumed_record.status == clean_record.status == "completed"
    assert resumed_record.restarts == 1 and clean_record.restarts == 0
    assert resumed_record.run_id == clean_record.run_id
    assert resumed.epoch.max() == 12
    pd.testing.assert_frame_equal(resumed, clean, check_exact=True)
