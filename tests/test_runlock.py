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


# ---- locks that cannot be read ----------------------------------------------------------------
def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def _plant(run, kind: str, outside) -> None:
    """A run.lock that is not a lock record: what a killed writer, a stranger or an archive leaves."""
    path = run / LOCK_FILE
    run.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.touch()
    elif kind == "garbage":
        path.write_bytes(b"\x00\xff not json {")
    elif kind == "nested":  # deeper than the JSON parser recurses
        path.write_text("[" * 3000 + "]" * 3000)
    elif kind == "truncated":
        path.write_text('{"host": "' + host_name() + '", "pid": ' + str(_dead_pid()) + ', "sta')
    elif kind == "directory":
        path.mkdir()
    elif kind == "full directory":
        path.mkdir()
        (path / "keep.txt").write_text("someone's file")
    elif kind == "symlink":
        path.symlink_to(outside)
    elif kind == "fifo":
        os.mkfifo(path)


@pytest.mark.parametrize(("kind", "described"), [("directory", "a directory"), ("full directory", "a directory"),
                                                 ("symlink", "a symbolic link"), ("fifo", "a FIFO")])
def test_a_lock_that_is_no_file_is_cleared_at_once_without_following_or_blocking(tmp_path, kind, described, caplog):
    """None of these is ever a lock (RunLock writes regular files): fresh or not, it is cleared at
    once, a link's target is left untouched and a directory's files are kept, moved aside."""
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    run = tmp_path / "run"
    _plant(run, kind, outside)
    from pab_campaign.runlock import has_live_writer

    assert not has_live_writer(run)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger="pab_campaign.runlock"), RunLock(run) as lock:
        assert time.monotonic() - started < 2
        assert lock.held() and lock.cleared is not None and f"({described}, 0 s old)" in lock.cleared
    assert "cleared an unreadable lock" in caplog.text
    assert outside.read_text() == "not yours"
    kept = [p for p in run.iterdir() if p.name.startswith(f".{LOCK_FILE}.not-a-lock-")]
    if kind == "full directory":
        assert len(kept) == 1 and (kept[0] / "keep.txt").read_text() == "someone's file"
        assert "moved aside" in caplog.text
    else:
        assert not kept
    assert not (run / LOCK_FILE).exists()


@pytest.mark.parametrize("kind", ["empty", "garbage", "nested"])
def test_an_unreadable_lock_file_blocks_only_while_a_writer_could_still_be_filling_it(tmp_path, kind, monkeypatch):
    """An empty file (a writer killed between creating and filling its lock) or garbage is waited for
    UNREADABLE_GRACE_S after its last change, then cleared; an old one at once."""
    from pab_campaign import runlock
    from pab_campaign.runlock import has_live_writer

    monkeypatch.setattr(runlock, "UNREADABLE_GRACE_S", 1.0)
    run = tmp_path / "run"
    _plant(run, kind, None)
    assert has_live_writer(run)  # it may still be being written
    started = time.monotonic()
    with RunLock(run) as lock:
        waited = time.monotonic() - started
        assert 0.5 < waited < 5 and lock.cleared is not None
    _plant(run, kind, None)
    _age(run / LOCK_FILE, 2.0)
    assert not has_live_writer(run)
    started = time.monotonic()
    with RunLock(run) as lock:
        assert time.monotonic() - started < 0.5 and lock.held()


def test_an_unreadable_lock_is_judged_by_the_pid_it_names(tmp_path):
    """A half-written record naming a process of this host that has ended is cleared at once, however
    fresh; one naming a live process is held like its lock, until its age makes it stale."""
    run = tmp_path / "run"
    _plant(run, "truncated", None)
    started = time.monotonic()
    with RunLock(run) as lock:
        assert time.monotonic() - started < 0.5 and "naming pid" in lock.cleared
    (run / LOCK_FILE).write_text('{"host": "' + host_name() + f'", "pid": {os.getpid()}, "tok')
    with pytest.raises(RunLocked, match="that process is alive"):
        RunLock(run).acquire()
    _age(run / LOCK_FILE, 120)
    with RunLock(run, stale_after_s=60) as lock:
        assert lock.held()
