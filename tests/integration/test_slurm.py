"""Sweeps on a real single-node SLURM cluster (scripts/slurm/start.sh) through
`python -m pab_campaign -m hydra/launcher=slurm`: a job array, a failing run, a detached sweep,
and a run preempted with SIGUSR2 that is requeued and resumes to the same trajectory.

The cluster is the session fixture `slurm_env` (tests/conftest.py); where it cannot be started
(not root, no apt) every test here skips and says why."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from pab_campaign.store import iter_run_dirs, read_run_json, read_trajectory
from tests import helpers
from tests.helpers import REPO, assert_same_trajectory, train_argv, wait_for

# One point of the default grid (a command-line sweep replaces the grid only key by key).
FAST = ["model=mlp", "optimizer.lr=0.05", "runtime.verbose=false", "tracking=minimal", "checkpoint.every=0"]


def train(env: dict[str, str], campaign: Path, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return helpers.train(["-m", "hydra/launcher=slurm", *FAST, *overrides], campaign, timeout=timeout, env=env)


def epochs_of(run_dir: Path) -> list[int]:
    return sorted(set(read_trajectory(run_dir).column("epoch").to_pylist()))


def test_job_array_completes_and_a_failing_run_is_reported(slurm_env, tmp_path):
    campaign = tmp_path / "array"
    # a held-out fraction of 0.001 passes the up-front checks but holds 2 of 1,797 digits, fewer than the
    # 10 classes: that run fails as it builds its data, on the cluster
    result = train(slurm_env, campaign, "seed=0", "train.epochs=2", "dataset.val_fraction=0.2,0.25,0.3,0.35,0.001")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    records = [read_run_json(d) for d in iter_run_dirs(campaign)]
    by_fraction = {r.hparams["dataset.val_fraction"]: r for r in records}
    assert sorted(by_fraction) == [0.001, 0.2, 0.25, 0.3, 0.35]
    array_ids = set()
    for fraction in (0.2, 0.25, 0.3, 0.35):
        record = by_fraction[fraction]
        assert record.status == "completed" and record.epochs_done == 2
        assert epochs_of(campaign / "runs" / record.run_id) == [0, 1, 2]
        array_ids.add(record.slurm_job_id.split("_")[0])
    assert len(array_ids) == 1, f"expected one job array, got SLURM ids {array_ids}"
    failed = by_fraction[0.001]
    assert failed.status == "failed" and "cannot cover 10 classes" in failed.error
    assert "sweep: 4 completed, 1 failed" in result.stdout
    assert failed.error[:30] in " ".join(result.stdout.split())  # the table's error cell (it wraps longer text)
    listed = subprocess.run([sys.executable, "-m", "pab_campaign.cli", "ls", str(campaign), "--status", "failed"],
                            cwd=REPO, env=slurm_env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert failed.run_id in listed.stdout and by_fraction[0.2].run_id not in listed.stdout


def test_preempted_run_is_requeued_and_resumes_to_the_same_trajectory(slurm_env, tmp_path):
    campaign, reference = tmp_path / "preempted", tmp_path / "reference"
    epochs = "train.epochs=50"
    submitted = train(slurm_env, campaign, epochs, "seed=7", "hydra.launcher.detach=true",
                      "hydra.launcher.timeout_min=5")
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    assert "detached" in submitted.stdout and f"pab-campaign ls {campaign}" in submitted.stdout
    uninterrupted = subprocess.Popen(train_argv(reference, [*FAST, epochs, "seed=7"]), cwd=REPO, env=slurm_env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def record() -> dict | None:
        dirs = list(iter_run_dirs(campaign))
        return read_run_json(dirs[0]) if dirs and (dirs[0] / "run.json").exists() else None

    wait_for(lambda: getattr(record(), "epochs_done", 0) >= 3, 180, "the SLURM run to reach epoch 3")
    job_id = record().slurm_job_id
    subprocess.run(["scancel", "--signal=USR2", job_id], env=slurm_env, check=True, timeout=30)
    wait_for(lambda: record().status != "running", 60, "the run to record the preemption")
    interrupted_at = record()
    assert interrupted_at.status == "preempted" and interrupted_at.epochs_done < 50
    wait_for(lambda: record().status == "completed", 240, "the requeued run to complete")
    final = record()
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-3000:]
    assert final.restarts == 1 and final.epochs_done == 50
    run_dir = next(iter_run_dirs(campaign))
    assert not (run_dir / "run.lock").exists()
    ref_dir = next(iter_run_dirs(reference))
    assert run_dir.name == ref_dir.name
    assert_same_trajectory(run_dir, ref_dir, epochs=50)
    log = "\n".join(p.read_text() for p in (campaign / "hydra").glob("*/.submitit/*/*_log.err"))
    assert "Requeued" in log or "requeue" in log.lower(), log[-2000:]
    record = next((campaign / "hydra").glob("*/submitted.json"))
    submitted_file = json.loads(record.read_text())
    assert job_id.split("_")[0] in submitted_file["job_ids"][0]
    assert submitted_file["sweep_dir"] == str(record.parent.resolve())


def test_a_killed_job_is_reported_failed_and_its_run_resumes_when_launched_again(slurm_env, tmp_path):
    """A job whose training process is killed ends without a result: the sweep reports it failed (exit 1) while the
    other job completes; launched again, the run takes over the lock the killed job left and resumes."""
    campaign = tmp_path / "cancelled"
    args = ["seed=0,1", "train.epochs=200"]
    sweep = subprocess.Popen(train_argv(campaign, ["-m", "hydra/launcher=slurm", *FAST, *args]), cwd=REPO,
                             env=slurm_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def seed0():
        records = [read_run_json(d) for d in iter_run_dirs(campaign) if (d / "run.json").exists()]
        return next((r for r in records if r.seed == 0), None)

    wait_for(lambda: getattr(seed0(), "epochs_done", 0) >= 2, 180, "seed 0 to reach epoch 2")
    # SIGKILL to the training process, as the out-of-memory killer sends it. (`scancel` would send
    # SIGTERM, which submitit ignores, and SIGKILL only KillWait later: the run could finish first.)
    holder = json.loads((campaign / "runs" / seed0().run_id / "run.lock").read_text())
    os.kill(holder["pid"], signal.SIGKILL)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 1, out[-3000:] + err[-3000:]
    table = " ".join(out.split())
    assert "ended without a result" in table and "sweep: 1 completed, 1 failed" in table
    killed = seed0()
    assert killed.status == "running" and (campaign / "runs" / killed.run_id / "run.lock").exists()
    again = train(slurm_env, campaign, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    final = seed0()
    assert final.status == "completed" and final.restarts == 1 and final.epochs_done == 200
    assert epochs_of(campaign / "runs" / final.run_id) == list(range(201))
    assert not (campaign / "runs" / final.run_id / "run.lock").exists()


def test_a_two_task_job_trains_one_distributed_run_and_resumes_it_after_preemption(slurm_env, tmp_path):
    """hydra.launcher.tasks_per_node=2 runtime.distributed=true: one SLURM job of two tasks, each a
    rank (gloo on the CPU) from SLURM's task variables through submitit; rank 0 writes. SIGUSR2
    requeues the whole job and both ranks resume from the last checkpoint, ending on the trajectory
    of an uninterrupted 2-rank run started by the entry point."""
    campaign, reference = tmp_path / "dist", tmp_path / "dist_reference"
    ranks = ["runtime.distributed=true", "train.epochs=30", "seed=3"]
    submitted = train(slurm_env, campaign, *ranks, "hydra.launcher.tasks_per_node=2", "hydra.launcher.detach=true",
                      "hydra.launcher.timeout_min=5")
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    uninterrupted = subprocess.Popen(train_argv(reference, [*FAST, *ranks, "runtime.nproc=2"]), cwd=REPO,
                                     env=slurm_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def record():
        dirs = list(iter_run_dirs(campaign))
        return read_run_json(dirs[0]) if dirs and (dirs[0] / "run.json").exists() else None

    wait_for(lambda: getattr(record(), "epochs_done", 0) >= 3, 240, "the 2-task SLURM run to reach epoch 3")
    assert record().world_sizes == [2]
    subprocess.run(["scancel", "--signal=USR2", record().slurm_job_id], env=slurm_env, check=True, timeout=30)
    wait_for(lambda: record().status != "running", 60, "the run to record the preemption")
    assert record().status == "preempted" and record().epochs_done < 30
    wait_for(lambda: record().status == "completed", 300, "the requeued 2-task job to complete the run")
    final = record()
    assert final.restarts == 1 and final.epochs_done == 30 and final.world_sizes == [2, 2]
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-3000:]
    run_dir, ref_dir = next(iter_run_dirs(campaign)), next(iter_run_dirs(reference))
    assert run_dir.name == ref_dir.name
    # the job writes `completed`, then releases the lock: the test may read run.json in between
    wait_for(lambda: not (run_dir / "run.lock").exists(), 30, "the completed run's lock to be released")
    assert_same_trajectory(run_dir, ref_dir, epochs=30)
