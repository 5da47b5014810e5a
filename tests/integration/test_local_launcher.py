"""The local parallel launcher (`hydra/launcher=local`): bounded parallelism, a real sweep with and
without the warm fork server, a run preempted with SIGUSR2 through the fork server that resumes to
the uninterrupted trajectory, and launcher settings that cannot work refused with one line."""
from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from pab_campaign.store import iter_run_dirs, read_run_json, read_trajectory
from tests import helpers
from tests.helpers import (
    REPO,
    assert_one_line_error,
    assert_same_trajectory,
    command_env,
    forkserver_clients,
    train_argv,
    wait_for,
)

FAST = ["model=mlp", "optimizer.lr=0.05", "runtime.verbose=false", "tracking=minimal", "checkpoint.every=0"]


def command(campaign: Path, *overrides: str, launcher: str = "local") -> dict:
    """Popen keyword arguments training `overrides` into `campaign` with `launcher`."""
    sweep = ["-m", f"hydra/launcher={launcher}"] if launcher else []
    return dict(args=train_argv(campaign, [*sweep, *FAST, *overrides]), cwd=REPO, env=command_env(),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def train(campaign: Path, *overrides: str) -> subprocess.CompletedProcess:
    return helpers.train(["-m", "hydra/launcher=local", *FAST, *overrides], campaign, timeout=300)


STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}")


def job_spans(campaign: Path) -> list[tuple[datetime, datetime]]:
    """Per submitit job of the sweep: (first, last) time stamp of its log, to the millisecond, from
    submitit's 'Starting with JobEnvironment' to the run's completion."""
    spans = []
    for log in (campaign / "hydra").glob("*/.submitit/*/*_log.out"):
        stamps = [datetime.strptime(m.group(0), "%Y-%m-%d %H:%M:%S,%f") for m in STAMP.finditer(log.read_text())]
        spans.append((min(stamps), max(stamps)))
    return sorted(spans)


@pytest.mark.parametrize("warm_start", [True, False])
def test_local_sweep_runs_in_parallel_and_completes(tmp_path, warm_start):
    campaign = tmp_path / "local"
    result = train(campaign, "train.epochs=30", "seed=0,1,2", "hydra.launcher.max_parallel=2",
                   f"hydra.launcher.warm_start={warm_start}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "2 at a time x 1 threads" in output
    assert ("runs fork from a warm python" in output) == warm_start
    records = [read_run_json(d) for d in iter_run_dirs(campaign)]
    assert sorted(r.seed for r in records) == [0, 1, 2]
    for record in records:
        assert record.status == "completed"
        epochs = read_trajectory(campaign / "runs" / record.run_id).column("epoch").to_pylist()
        assert sorted(set(epochs)) == list(range(31))
    spans = job_spans(campaign)
    assert len(spans) == 3 and spans[1][0] < spans[0][1], f"the first two runs did not overlap: {spans}"
    assert "sweep: 3 completed" in result.stdout
    assert "sweep: 3/3 runs ended, 0 running, 0 waiting" in result.stdout


def test_run_preempted_through_the_fork_server_is_requeued_and_resumes(tmp_path):
    campaign, reference = tmp_path / "preempted", tmp_path / "reference"
    epochs = 60
    sweep = subprocess.Popen(**command(campaign, f"train.epochs={epochs}", "seed=7"))
    uninterrupted = subprocess.Popen(**command(reference, f"train.epochs={epochs}", "seed=7", launcher=""))

    def record() -> dict:
        dirs = [d for d in iter_run_dirs(campaign) if (d / "run.json").exists()]
        return read_run_json(dirs[0]) if dirs else {}

    wait_for(lambda: getattr(record(), "epochs_done", 0) >= 3, 120, "the run to reach epoch 3")
    clients = forkserver_clients(tmp_path)
    assert len(clients) == 1, f"expected one fork-server client, found {clients}"
    os.kill(clients[0], signal.SIGUSR2)
    out, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, out[-3000:] + err[-3000:]
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()[-3000:]
    final = record()
    assert final.status == "completed" and final.restarts == 1 and final.epochs_done == epochs
    run_dir, ref_dir = next(iter_run_dirs(campaign)), next(iter_run_dirs(reference))
    assert run_dir.name == ref_dir.name
    assert_same_trajectory(run_dir, ref_dir, epochs)


@pytest.mark.parametrize(("override", "message"), [
    ("hydra.launcher.max_parallel=100000",
     "hydra.launcher.max_parallel=100000 x hydra.launcher.cpus_per_task=1 needs more"),
    ("hydra.launcher.cpus_per_task=0", "hydra.launcher.cpus_per_task=0 must be >= 1"),
    ("hydra.launcher.max_paralel=2", "hydra.launcher has no key 'max_paralel'; its keys are"),
    ("+hydra.launcher.max_paralel=2", "unknown keys ['max_paralel']"),
    ("hydra.launcher.warm_start=sometimes", "'sometimes' is not a valid bool"),
])
def test_impossible_launcher_settings_exit_2_with_one_line(tmp_path, override, message):
    campaign = tmp_path / "bad"
    result = train(campaign, "seed=0,1", override)
    assert result.returncode == 2, result.stderr[-2000:]
    assert_one_line_error(result, message)
    assert not campaign.exists()  # refused before the sweeper writes hydra/<time>/multirun.yaml


def test_a_sweep_of_two_rank_runs_gives_each_run_its_ranks(tmp_path):
    """runtime.distributed=true runtime.nproc=2: each run is one submitit job of 2 tasks (its ranks,
    forked from the warm python), rank 0 writes, and run.json records the world size."""
    campaign = tmp_path / "ranks"
    result = train(campaign, "seed=0,1", "model=mlp", "optimizer.lr=0.05", "train.epochs=2",
                   "runtime.distributed=true", "runtime.nproc=2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [read_run_json(d) for d in iter_run_dirs(campaign)]
    assert sorted(r.seed for r in records) == [0, 1]
    assert all(r.status == "completed" and r.world_sizes == [2] and r.epochs_done == 2 for r in records)
    assert "sweep: 2 completed" in result.stdout


def test_more_ranks_than_the_pool_has_are_refused_in_one_line(tmp_path):
    result = train(tmp_path / "c", "runtime.distributed=true", "runtime.nproc=4096", "train.batch_size=4096")
    assert result.returncode == 2
    assert_one_line_error(result, "runtime.nproc=4096 ranks", "runtime.nproc<=")
    assert not (tmp_path / "c" / "runs").exists()
