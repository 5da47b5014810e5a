"""The run lock: one writer per run directory, a stale lock (dead pid, no heartbeat, the same SLURM
job requeued) taken over, exactly one winner when several processes race for a stale lock."""
from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import time

import pytest

from pab_campaign.runlock import LOCK_FILE, RunLock, RunLocked, RunLockLost, read_holder
from pab_campaign.store import host_name


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def _write_lock(run, host: str, pid: int, slurm_job_id: str | None = None, age_s: float = 0.0) -> None:
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_FILE
    path.write_text(json.dumps({"host": host, "pid": pid, "start": None, "slurm_job_id": slurm_job_id,
                                "token": "0123456789abcdef"}))
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    with RunLock(tmp_path / "run") as first:
        assert first.held() and (tmp_path / "run" / LOCK_FILE).exists()
        with pytest.raises(RunLocked, match=f"pid {os.getpid()} on {host_name()}") as refused:
            RunLock(tmp_path / "run").acquire()
        assert refused.value.holder == f"pid {os.getpid()} on {host_name()}"
        assert first.held()
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_the_lock_of_a_process_that_ended_is_taken_over(tmp_path):
    dead = _dead_pid()
    _write_lock(tmp_path / "run", host_name(), dead)
    with RunLock(tmp_path / "run") as lock:
        assert lock.took_over is not None and lock.took_over.pid == dead
        assert read_holder(tmp_path / "run" / LOCK_FILE).pid == os.getpid()


def test_a_lock_of_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path):
    _write_lock(tmp_path / "run", "elsewhere", 4242, age_s=5)
    with pytest.raises(RunLocked, match="pid 4242 on elsewhere"):
        RunLock(tmp_path / "run", stale_after_s=60).acquire()
    _write_lock(tmp_path / "run", "elsewhere", 4242, age_s=120)
    with RunLock(tmp_path / "run", stale_after_s=60) as lock:
        assert lock.took_over.host == "elsewhere"


def test_a_requeued_slurm_job_takes_over_its_own_lock_from_another_node(tmp_path, monkeypatch):
    _write_lock(tmp_path / "run", "node-a", 4242, slurm_job_id="77_3")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "4")
    with pytest.raises(RunLocked):  # another task of the array: not its lock
        RunLock(tmp_path / "run").acquire()
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    with RunLock(tmp_path / "run") as lock:
        assert lock.took_over.slurm_job_id == "77_3"


def test_the_holder_keeps_its_lock_fresh_and_notices_a_takeover(tmp_path):
    with RunLock(tmp_path / "run", heartbeat_s=0.05) as lock:
        old = time.time() - 1000
        os.utime(lock.path, (old, old))
        time.sleep(0.5)
        assert time.time() - lock.path.stat().st_mtime < 5
        lock.verify()
        _write_lock(tmp_path / "run", "elsewhere", 1)  # taken over while this holder was suspended
        with pytest.raises(RunLockLost, match="lost the run's lock"):
            lock.verify()
    assert read_holder(tmp_path / "run" / LOCK_FILE).host == "elsewhere"  # release left the new lock alone


def _race(run, barrier, results) -> None:
    barrier.wait()
    try:
        lock = RunLock(run).acquire()
    except RunLocked:
        results.put("refused")
        return
    results.put("won")
    time.sleep(1.0)
    lock.release()


def test_processes_racing_for_a_stale_lock_leave_exactly_one_winner(tmp_path):
    run = tmp_path / "run"
    context = multiprocessing.get_context("fork")
    for _ in range(3):
        _write_lock(run, host_name(), _dead_pid())
        barrier, results = context.Barrier(6), context.Queue()
        racers = [context.Process(target=_race, args=(run, barrier, results)) for _ in range(6)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
        outcomes = sorted(results.get(timeout=5) for _ in racers)
        assert outcomes == ["refused"] * 5 + ["won"]
        assert not (run / LOCK_FILE).exists()
        assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_a_run_has_a_live_writer_only_while_a_living_process_holds_its_fresh_lock(tmp_path):
    from pab_campaign.runlock import has_live_writer

    assert not has_live_writer(tmp_path)
    lock = RunLock(tmp_path).acquire()
    try:
        assert has_live_writer(tmp_path)
        assert not has_live_writer(tmp_path, stale_after_s=-1.0)  # a heartbeat older than allowed
    finally:
        lock.release()
    assert not has_live_writer(tmp_path)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": host_name(), "pid": _dead_pid(), "start": None,
                                                  "slurm_job_id": None, "token": "t"}))
    assert not has_live_writer(tmp_path)  # a fresh lock of a process that has ended
