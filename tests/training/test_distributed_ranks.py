"""What the ranks of one run must agree on, and what happens when one of them fails, with real
processes on the CPU (gloo): ranks started with other overrides are refused on every rank in one
line; a sweep under torchrun runs every job (it hung at the second); torchrun without
runtime.distributed=true is refused; a rank other than 0 that fails has its error recorded in the
run (it read `preempted`, no error)."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pab_campaign.errors import ConfigError
from pab_campaign.launching.ranks import free_port
from pab_campaign.store import RunStatus, iter_run_dirs, read_run_json
from pab_campaign.training.distributed import check_environment
from tests.helpers import REPO, assert_one_line_error, command_env, train, train_argv, wait_for

FAST = ["model=mlp", "tracking=minimal", "runtime.verbose=false", "checkpoint.every=0", "train.batch_size=64",
        "train.epochs=2", "runtime.dist_timeout_min=1"]


def _by_hand(campaign: Path, overrides: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """One `python -m pab_campaign` per rank, each given torchrun's variables and its own overrides."""
    port = str(free_port())
    jobs = [subprocess.Popen(train_argv(campaign, [*FAST, "runtime.distributed=true", *extra]), cwd=REPO,
                             env=command_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(len(overrides)),
                                             MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for rank, extra in enumerate(overrides)]
    return [subprocess.CompletedProcess(job.args, job.wait(timeout=240), *job.communicate()) for job in jobs]


def test_ranks_started_with_another_run_are_refused_on_every_rank(tmp_path):
    campaign = tmp_path / "c"
    results = _by_hand(campaign, [["optimizer.lr=0.05"], ["optimizer.lr=5.0"]])
    for result in results:
        assert result.returncode == 2, result.stderr[-2000:]
        assert_one_line_error(result, "rank(s) 1 were started with another run than rank 0",
                              "start every rank with the same overrides")
    assert not (campaign / "runs").exists()


def test_torchrun_without_distributed_is_refused(tmp_path):
    result = train(FAST, tmp_path / "c", timeout=120,
                   env=command_env(RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())))
    assert result.returncode == 2
    assert_one_line_error(result, "this process is rank 1 of 2", "add runtime.distributed=true")
    assert not (tmp_path / "c" / "runs").exists()


def test_a_sweep_under_torchrun_runs_every_job(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    campaign = tmp_path / "sweep"
    argv = [torchrun, "--nproc_per_node=2", "-m", "pab_campaign", "-m", "grid=none", "optimizer.lr=0.05,0.1,0.2",
            "runtime.distributed=true", *FAST, f"campaign.root={campaign.parent}", f"campaign.name={campaign.name}"]
    result = subprocess.run(argv, cwd=REPO, env=command_env(OMP_NUM_THREADS="1"), capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [read_run_json(run) for run in iter_run_dirs(campaign)]
    assert sorted(r.hparams["optimizer.lr"] for r in records) == [0.05, 0.1, 0.2]
    assert all(r.status == RunStatus.COMPLETED and r.world_sizes == [2] for r in records)


def test_a_failing_rank_has_its_error_recorded_in_the_run(tmp_path):
    """Rank 1 raises in its second epoch (planted by a sitecustomize every rank imports): the run is
    `failed` with rank 1's own error, not `preempted` by the SIGTERM that ended rank 0."""
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(textwrap.dedent("""
        import os

        import pab_campaign.training.run as run

        train_epoch = run.Run._train_epoch

        def fail_at_two(self, epoch):
            if epoch == 2 and os.environ.get("RANK") == "1":  # set once the spawned rank starts
                raise RuntimeError("planted fault of rank 1")
            return train_epoch(self, epoch)

        run.Run._train_epoch = fail_at_two
        """))
    env = command_env()
    env["PYTHONPATH"] = f"{plant}:{env['PYTHONPATH']}"
    result = train([*FAST, "runtime.distributed=true", "runtime.nproc=2"], tmp_path / "c", timeout=240, env=env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (run,) = iter_run_dirs(tmp_path / "c")
    record = read_run_json(run)
    assert record.status == RunStatus.FAILED
    assert "rank 1 failed in run" in record.error and "planted fault of rank 1" in record.error


@pytest.mark.parametrize(("environ", "fragment"), [
    ({"RANK": "1"}, "RANK is set but WORLD_SIZE is not"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE is set but RANK is not"),
    ({"RANK": "0", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"}, "MASTER_ADDR is not set"),
])
def test_torchruns_variables_set_in_part_are_refused(environ, fragment):
    with pytest.raises(ConfigError, match=fragment):
        check_environment(environ)
    check_environment({"RANK": "0", "WORLD_SIZE": "2"})  # one node: rank 0 is on this one
    check_environment({})


def test_ranks_that_would_resume_from_other_epochs_end_the_run_failed(tmp_path):
    """A rank that sees no checkpoint where rank 0 resumes from one (nodes without a shared file
    system; planted: rank 1's `checkpoint.latest` finds nothing) ends the run `failed`, saying so,
    where it waited in a collective until the timeout."""
    campaign = tmp_path / "c"
    args = [*FAST, "runtime.distributed=true", "runtime.nproc=2", "train.epochs=30"]
    job = subprocess.Popen(train_argv(campaign, args), cwd=REPO, env=command_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)

    def epochs_done() -> int:
        try:
            return read_run_json(next(iter_run_dirs(campaign))).epochs_done
        except Exception:
            return 0

    wait_for(lambda: epochs_done() >= 1, 240, "the run to finish epoch 1")
    job.send_signal(signal.SIGTERM)  # preempted: it resumes from last.pt when launched again
    job.communicate(timeout=120)
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(textwrap.dedent("""
        import os

        from pab_campaign.training import checkpoint

        latest = checkpoint.latest
        checkpoint.latest = lambda directory: None if os.environ.get("RANK") == "1" else latest(directory)
        """))
    env = command_env()
    env["PYTHONPATH"] = f"{plant}:{env['PYTHONPATH']}"
    started = time.monotonic()
    again = train(args, campaign, timeout=240, env=env)
    assert time.monotonic() - started < 120 and again.returncode == 1, again.stderr[-3000:]
    record = read_run_json(next(iter_run_dirs(campaign)))
    assert record.status == RunStatus.FAILED
    assert "rank(s) 1 found another last checkpoint than rank 0" in record.error
