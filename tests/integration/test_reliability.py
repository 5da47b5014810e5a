"""Sweeps under adversity, with real processes: two identical sweeps into one campaign at once (one
writer per run, no run ever goes backwards), SIGTERM on the basic launcher (the run is marked
`preempted`, its checkpoint kept), and a job killed under the local launcher (returned to Hydra as a
failed job; the other jobs, later batches included, still run, and the status table says so)."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hydra.core.utils import JobStatus

from pab_campaign.errors import StoreError
from pab_campaign.store import iter_run_dirs, read_run_json, read_trajectory
from tests.helpers import REPO, command_env, forkserver_clients, train_argv, wait_for

FAST = ["model=mlp", "optimizer.lr=0.05", "runtime.verbose=false", "tracking=minimal", "checkpoint.every=0"]


def _popen(campaign: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(train_argv(campaign, [*FAST, *args]), cwd=REPO, env=command_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(campaign: Path) -> dict[str, object]:
    records = {}
    for directory in iter_run_dirs(campaign):
        try:
            records[directory.name] = read_run_json(directory)
        except StoreError:
            continue
    return records


class Watcher(threading.Thread):
    """Polls every run.json of a campaign and records any run that went backwards: fewer epochs
    than seen before, or no longer `completed` once it was."""

    def __init__(self, campaign: Path) -> None:
        super().__init__(daemon=True)
        self.campaign, self.stop, self.backwards, self.seen = campaign, threading.Event(), [], {}

    def run(self) -> None:
        while not self.stop.is_set():
            for run_id, record in _records(self.campaign).items():
                before = self.seen.get(run_id)
                if before is not None and (record.epochs_done < before.epochs_done
                                           or (before.status == "completed" and record.status != "completed")):
                    self.backwards.append((run_id, before.status, before.epochs_done, record.status,
                                           record.epochs_done))
                self.seen[run_id] = record
            time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_identical_sweeps_into_one_campaign_never_write_a_run_twice(tmp_path):
    campaign = tmp_path / "shared"
    args = ("-m", "seed=0,1,2", "train.epochs=30")
    watcher = Watcher(campaign)
    watcher.start()
    first = _popen(campaign, *args)
    wait_for(lambda: any(r.epochs_done >= 2 for r in _records(campaign).values()), 180, "the first sweep's first run")
    second = _popen(campaign, *args)
    outputs = [process.communicate(timeout=360) for process in (first, second)]
    watcher.stop.set()
    watcher.join()
    for process, (out, err) in zip((first, second), outputs):
        assert process.returncode == 0, out[-3000:] + err[-3000:]
    assert watcher.backwards == [], f"runs went backwards: {watcher.backwards}"
    records = _records(campaign)
    assert len(records) == 3
    for run_id, record in records.items():
        assert record.status == "completed" and record.epochs_done == 30 and record.restarts == 0
        epochs = read_trajectory(campaign / "runs" / run_id).column("epoch").to_pylist()
        assert sorted(set(epochs)) == list(range(31))
        assert not (campaign / "runs" / run_id / "run.lock").exists()
    second_table = " ".join(outputs[1][0].split())
    assert "skipped: another process is writing it" in second_table or "skipped: done before" in second_table


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_on_the_basic_launcher_marks_the_run_preempted_and_keeps_its_checkpoint(tmp_path):
    campaign = tmp_path / "term"
    sweep = _popen(campaign, "-m", "seed=0", "train.epochs=400")
    wait_for(lambda: any(r.epochs_done >= 2 for r in _records(campaign).values()), 180, "the run to reach epoch 2")
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 128 + signal.SIGTERM, err[-3000:]
    (record,) = _records(campaign).values()
    assert record.status == "preempted" and 2 <= record.epochs_done < 400
    run = campaign / "runs" / record.run_id
    assert (run / "checkpoints" / "last.pt").exists() and not (run / "run.lock").exists()
    assert max(read_trajectory(run).column("epoch").to_pylist()) >= record.epochs_done


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_job_is_returned_to_hydra_as_failed(tmp_path):
    """`collect` with real submitit jobs, as the local launcher hands them over: one finishes, one is
    killed (SIGKILL)."""
    import submitit

    from hydra_plugins.pab_campaign_launchers.launchers import collect, read_result_at_once

    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=2)
    jobs = [read_result_at_once(executor.submit(int, "7")), read_result_at_once(executor.submit(_kill_self))]
    returns = collect(list(enumerate(jobs)), [["a=1"], ["a=2"]], tmp_path / "sweep")
    assert returns[0] == 7
    lost = returns[1]
    assert lost.status == JobStatus.FAILED and lost.overrides == ["a=2"]
    with pytest.raises(Exception, match=r"."):
        _ = lost.return_value
    assert "ended without a result" in (tmp_path / "sweep" / "1" / "pab_run.json").read_text()


def _raise() -> None:
    raise RuntimeError("boom")


def test_a_job_of_another_app_fails_only_by_raising(tmp_path):
    """A finished job that left no pointer to a run of ours (another Hydra app's) is not counted
    failed by the progress line; one that raised is."""
    import submitit

    from hydra_plugins.pab_campaign_launchers.launchers import job_failed

    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=2)
    finished, raised = executor.submit(int, "7"), executor.submit(_raise)
    finished.wait()
    raised.wait()
    assert not job_failed(finished, tmp_path / "sweep" / "0")
    assert job_failed(raised, tmp_path / "sweep" / "1")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_sweep_goes_on_past_a_killed_job_and_reports_it(tmp_path):
    campaign = tmp_path / "lost"
    sweep = _popen(campaign, "-m", "hydra/launcher=local", "hydra.sweeper.max_batch_size=1", "seed=0,1,2",
                   "train.epochs=40")
    wait_for(lambda: any(r.epochs_done >= 2 and r.seed == 0 for r in _records(campaign).values()), 180,
             "the first job to reach epoch 2")
    clients = forkserver_clients(tmp_path)
    assert len(clients) == 1, clients
    os.kill(clients[0], signal.SIGKILL)
    out, err = sweep.communicate(timeout=360)
    assert sweep.returncode == 1, out[-3000:] + err[-3000:]
    table = " ".join(out.split())
    assert "ended without a result" in table
    assert "sweep: 2 completed, 1 failed" in table  # the later batches ran
    assert "job #0 (" in out + err
