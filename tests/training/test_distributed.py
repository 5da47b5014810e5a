"""Distributed runs on the CPU with gloo, through `python -m pab_campaign runtime.distributed=true
runtime.nproc=2` (the entry point starts the ranks): 2 ranks x 32 equal 1 process x 64, a rank
SIGKILLed mid-run ends the job and the relaunch resumes to the uninterrupted run's trajectory, and
the one-line refusals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from pab_campaign.store import RunRecord, RunStatus, iter_run_dirs, read_run_json, read_trajectory
from pab_campaign.training.data.sharding import GlobalBatchSampler
from pab_campaign.training.provenance import start_record
from tests.helpers import REPO, assert_one_line_error, command_env, train, train_argv, wait_for

# model=mlp has no BatchNorm; dropout 0. Digits: 1078 training examples, so the last global batch of
# 64 has 54 (27 per rank).
FAST = ["model=mlp", "tracking=minimal", "runtime.verbose=false", "checkpoint.every=0", "train.batch_size=64"]
TWO_RANKS = ["runtime.distributed=true", "runtime.nproc=2"]
EPOCHS = 4


def trajectory(run_dir: Path):
    key = ["epoch", "context", "metric", "key"]
    return read_trajectory(run_dir).to_pandas().sort_values(key).reset_index(drop=True), key


def assert_equal_trajectories(got_dir: Path, want_dir: Path, tolerance: float) -> None:
    got, key = trajectory(got_dir)
    want, _ = trajectory(want_dir)
    assert sorted(got["epoch"].unique()) == list(range(EPOCHS + 1))
    assert got[key].astype(str).equals(want[key].astype(str))  # exactly the same rows
    assert (got["value"] - want["value"]).abs().max() <= tolerance


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """An uninterrupted 2-rank run (global batch 64)."""
    campaign = tmp_path_factory.mktemp("dist") / "two"
    result = train([*FAST, *TWO_RANKS, f"train.epochs={EPOCHS}"], campaign, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return next(iter_run_dirs(campaign))


def test_two_ranks_of_32_equal_one_process_of_64(two_ranks, tmp_path):
    result = train([*FAST, f"train.epochs={EPOCHS}"], tmp_path / "one", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one = next(iter_run_dirs(tmp_path / "one"))
    assert one.name == two_ranks.name  # the world size is not part of the run's identity
    assert_equal_trajectories(two_ranks, one, 1e-5)
    record = read_run_json(two_ranks)
    assert record.status == RunStatus.COMPLETED and record.world_sizes == [2] and record.epochs_done == EPOCHS
    assert read_run_json(one).world_sizes == [1]
    assert not (two_ranks / "run.lock").exists()


def test_a_killed_rank_ends_the_job_and_the_relaunch_resumes_to_the_same_trajectory(two_ranks, tmp_path):
    campaign = tmp_path / "killed"
    args = [*FAST, *TWO_RANKS, f"train.epochs={EPOCHS}"]
    job = subprocess.Popen(train_argv(campaign, args), cwd=REPO, env=command_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    run_dir = campaign / "runs" / two_ranks.name

    def epochs_done() -> int:
        try:
            return read_run_json(run_dir).epochs_done
        except Exception:
            return 0

    wait_for(lambda: epochs_done() >= 1, 240, "the 2-rank run to finish epoch 1")
    rank0 = json.loads((run_dir / "run.lock").read_text())["pid"]  # rank 0 holds the lock
    os.kill(rank0, signal.SIGKILL)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 1, err[-3000:]
    assert "rank 0 was killed by SIGKILL" in err
    killed = read_run_json(run_dir)  # rank 0 could record nothing: the process that started the ranks did
    assert killed.status == RunStatus.FAILED and "rank 0 was killed by SIGKILL" in killed.error
    again = train(args, campaign, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    record = read_run_json(run_dir)
    assert record.status == RunStatus.COMPLETED and record.restarts == 1 and record.world_sizes == [2, 2]
    assert_equal_trajectories(run_dir, two_ranks, 1e-9)


@pytest.mark.parametrize(("overrides", "fragments"), [
    (["train.batch_size=63"], ["train.batch_size=63 does not divide over 2 ranks", "train.batch_size=62"]),
    (["runtime.backend=nccl", "runtime.device=cpu"], ["runtime.backend=nccl needs CUDA devices"]),
    (["runtime.nproc=4096"], ["runtime.nproc=4096 ranks but", "runtime.nproc<="]),
])
def test_what_cannot_run_distributed_is_refused_in_one_line(tmp_path, overrides, fragments):
    result = train([*FAST, *TWO_RANKS, "train.epochs=1", *overrides], tmp_path / "c", timeout=120)
    assert result.returncode == 2
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "c" / "runs").exists()


def test_each_global_batch_is_split_over_the_ranks_whatever_the_world_size():
    """The ranks' shares of global batch b are together the single process's batch b, in an order
    that depends on the seed and epoch only; a last batch too small to give each rank min_share is
    skipped by all."""
    n, batch = 203, 16
    single = GlobalBatchSampler(n, batch, 1, 0, seed=5)
    single.set_epoch(3)
    one = single.indices()
    for world in (2, 4):
        samplers = [GlobalBatchSampler(n, batch, world, rank, seed=5) for rank in range(world)]
        for sampler in samplers:
            sampler.set_epoch(3)
        shares = [s.indices().split(batch // world) for s in samplers]
        assert samplers[0].global_sizes() == single.global_sizes()[:len(shares[0])]
        for b, size in enumerate(samplers[0].global_sizes()):
            together = torch.cat([share[b] for share in shares])
            assert len(together) == size
            assert sorted(together.tolist()) == sorted(one[b * batch:b * batch + size].tolist())
    # 203 = 12 x 16 + 11: with 4 ranks and min_share 3 the last batch (2 or 3 per rank) is skipped.
    assert GlobalBatchSampler(n, batch, 4, 0, seed=5, min_share=3).global_sizes() == [16] * 12
    assert GlobalBatchSampler(n, batch, 1, 0, seed=5, min_share=3).global_sizes() == [16] * 12 + [11]
    other_epoch = GlobalBatchSampler(n, batch, 1, 0, seed=5)
    assert not torch.equal(other_epoch.indices(), one)
    # what the ranks skip and one process trains on (the run warns of it): the 11 above; 1 of 1,077 on
    # 2 ranks; nothing where one process skips it too, or where every rank gets its share
    assert GlobalBatchSampler(n, batch, 4, 0, seed=5, min_share=3).unlike_one_process() == 11
    assert GlobalBatchSampler(1077, 1076, 2, 0, seed=5).unlike_one_process() == 1
    assert GlobalBatchSampler(1077, 1076, 1, 0, seed=5, min_share=2).unlike_one_process() == 0
    assert GlobalBatchSampler(n, batch, 2, 0, seed=5).unlike_one_process() == 0


def test_run_json_records_the_world_size_of_each_attempt():
    older = RunRecord.from_dict({"run_id": "r", "status": "preempted", "restarts": 1})  # before the field existed
    assert older.world_sizes == []
    again = start_record("r", "c", {}, 0, [], older, world_size=4)
    assert again.world_sizes == [1, 1, 4] and again.restarts == 2
    assert RunRecord.from_json(again.to_json()).world_sizes == [1, 1, 4]
    with pytest.raises(Exception, match="world_sizes"):
        RunRecord.from_dict({"run_id": "r", "status": "running", "world_sizes": [0]})
