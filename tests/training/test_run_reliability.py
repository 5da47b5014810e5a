"""A run never resumes over a history it cannot read, never writes a run another live process is
writing, never reopens a finished run, and keeps the traceback of its failure in `run.log`."""
from __future__ import annotations

import json
import subprocess

import pytest

from pab_campaign import store
from pab_campaign.runlock import LOCK_FILE, RunLock
from pab_campaign.training.run import execute
from tests.helpers import compose_config

TINY = ["train.epochs=4", "runtime.verbose=false", "tracking=minimal", "checkpoint.every=2",
        "checkpoint.keep_last_n=5", "model=mlp", "optimizer.lr=0.05"]


def _interrupted_at_epoch_2(campaign):
    """A run trained to its end, then put back as a run killed after epoch 2: status `preempted`,
    its latest checkpoint the one of epoch 2."""
    outcome = execute(compose_config(TINY, campaign))
    assert outcome.status == "completed"
    (outcome.directory / "checkpoints" / "last.pt").unlink()
    (outcome.directory / "checkpoints" / "epoch_0004.pt").unlink()
    record = store.read_run_json(outcome.directory)
    record.status = store.RunStatus.PREEMPTED
    store.write_run_json(outcome.directory, record)
    return outcome.directory


def _files(directory) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_an_unreadable_trajectory_is_not_resumed_over(tmp_path):
    directory = _interrupted_at_epoch_2(tmp_path / "c")
    (directory / store.TRAJECTORY).write_bytes(b"")  # emptied by a full disk, a bad copy, a user
    outcome = execute(compose_config(TINY, tmp_path / "c"))
    assert outcome.status == "failed"
    record = store.read_run_json(directory)
    assert record.status == "failed" and "trajectory.parquet" in record.error
    assert "not resumed over it" in record.error and "\n" not in record.error
    assert (directory / store.TRAJECTORY).read_bytes() == b""  # kept as it was, not rewritten from epoch 3
    assert (directory / "checkpoints" / "epoch_0002.pt").exists()


def test_a_trajectory_missing_epochs_the_checkpoint_follows_is_not_resumed_over(tmp_path):
    directory = _interrupted_at_epoch_2(tmp_path / "c")
    table = store.read_trajectory(directory)
    store.write_trajectory(directory, table.filter(table.column("epoch").to_numpy() == 0))
    before = (directory / store.TRAJECTORY).read_bytes()
    assert execute(compose_config(TINY, tmp_path / "c")).status == "failed"
    assert "lacks epochs [1, 2]" in store.read_run_json(directory).error
    assert (directory / store.TRAJECTORY).read_bytes() == before


def test_a_readable_history_resumes(tmp_path):
    directory = _interrupted_at_epoch_2(tmp_path / "c")
    outcome = execute(compose_config(TINY, tmp_path / "c"))
    record = store.read_run_json(directory)
    assert outcome.status == record.status == "completed" and record.restarts == 1
    assert sorted(set(store.read_trajectory(directory).column("epoch").to_pylist())) == [0, 1, 2, 3, 4]


def test_a_run_another_live_process_writes_is_skipped_and_left_alone(tmp_path):
    directory = _interrupted_at_epoch_2(tmp_path / "c")
    record = store.read_run_json(directory)
    record.status = store.RunStatus.RUNNING
    store.write_run_json(directory, record)
    with RunLock(directory):  # held by this live process, as a concurrent sweep would
        before = _files(directory)
        outcome = execute(compose_config(TINY, tmp_path / "c"))
        assert outcome.skipped and outcome.status == "running"
        assert "another process is writing it" in outcome.note
        assert _files(directory) == before


def test_the_stale_lock_of_a_killed_writer_is_taken_over(tmp_path):
    directory = _interrupted_at_epoch_2(tmp_path / "c")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (directory / LOCK_FILE).write_text(json.dumps({"host": store.host_name(), "pid": dead.pid, "start": None,
                                                   "slurm_job_id": None, "token": "feedfacefeedface"}))
    stale_temp = store.temp_path(directory / store.TRAJECTORY)
    stale_temp = stale_temp.with_name(stale_temp.name.replace(f"~{store.os.getpid()}~", f"~{dead.pid}~"))
    stale_temp.write_bytes(b"half a file")
    outcome = execute(compose_config(TINY, tmp_path / "c"))
    assert outcome.status == "completed" and not outcome.skipped
    assert not (directory / LOCK_FILE).exists() and not stale_temp.exists()


def test_a_finished_run_is_never_reopened(tmp_path):
    outcome = execute(compose_config(TINY, tmp_path / "c"))
    before = _files(outcome.directory)
    again = execute(compose_config(TINY, tmp_path / "c"))
    assert again.skipped and again.status == "completed" and again.note is None
    assert _files(outcome.directory) == before and not (outcome.directory / LOCK_FILE).exists()


def test_a_failed_run_keeps_its_traceback_in_run_log(tmp_path):
    # a held-out fraction this small passes the up-front checks and fails as the data is split (2 digits, 10 classes)
    outcome = execute(compose_config([*TINY, "dataset.val_fraction=0.001"], tmp_path / "f"))
    record = store.read_run_json(outcome.directory)
    assert record.status == "failed" and record.error.startswith("ValueError") and "\n" not in record.error
    log = (outcome.directory / store.RUN_LOG).read_text()
    assert "Traceback (most recent call last)" in log and record.error in log
    assert "pab_campaign/training/run.py" in log  # the frames, not just the message


def test_a_tracker_refuses_a_run_another_live_process_writes(tmp_path):
    import torch

    from pab_campaign.runlock import RunLocked
    from pab_campaign.training.identity import run_id
    from pab_campaign.training.tracker import Tracker

    campaign = tmp_path / "own"
    store.runs_dir(campaign).mkdir(parents=True)
    hparams = {"model": "tiny", "seed": 0}
    probe = (torch.zeros(8, 4), torch.zeros(8, dtype=torch.long))
    with RunLock(store.run_dir(campaign, run_id(hparams))), pytest.raises(RunLocked, match="another process"):
        Tracker(campaign, hparams, tracking="minimal", probe_data=probe).__enter__()
    with Tracker(campaign, hparams, tracking="minimal", probe_data=probe) as tracker:  # the lock is free again
        tracker.epoch(torch.nn.Linear(4, 2), 0, train_loss=1.0, val_loss=1.0)
    assert tracker.status == "completed" and not (tracker.run_dir / LOCK_FILE).exists()


def test_a_file_where_the_run_folder_belongs_is_refused_saying_so_and_kept(tmp_path, caplog):
    """It ended in Hydra's 'Error executing job' and mkdir's 'File exists', blamed on campaign.root."""
    import shutil

    cfg = compose_config(TINY, tmp_path / "c")
    first = execute(cfg)
    shutil.rmtree(first.directory)
    first.directory.write_text("notes")
    again = execute(cfg)
    assert again.status == store.RunStatus.FAILED and again.skipped
    assert f"{first.directory} is not a directory (a file or a link) where this run's folder belongs" in caplog.text
    assert first.directory.read_text() == "notes"
