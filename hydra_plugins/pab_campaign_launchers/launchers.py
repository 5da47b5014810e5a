"""Hydra launchers built on hydra-submitit-launcher; their configs are `config.LocalConf` and
`config.SlurmConf` (`hydra/launcher=local`, `hydra/launcher=slurm`), and they read nothing else of
the app's config, so they serve any Hydra app.

- `LocalLauncher`: submitit_local with bounded parallelism. At most `jobs` runs at once, where
  `jobs x cpus_per_task <= cores`, and, when GPUs are visible, one GPU per job through
  CUDA_VISIBLE_DEVICES (so also `jobs <= GPUs`). A new run starts as soon as one ends. A job whose
  config says `runtime.distributed=true runtime.nproc=N` is one submitit job of N tasks (its
  ranks), given N slots of cores and N GPUs of the pool (so 2-GPU runs on 8 GPUs run 4 at once)
  and a free MASTER_PORT; it starts when that many are free.
  With `warm_start` (Linux), each job's interpreter is forked from one warm process that imported
  torch and the training code once (`pab_campaign.launching.forkserver`) instead of starting cold.
- `SlurmLauncher`: submitit_slurm plus `detach`: submit the job array, record its job ids in
  `detach_record` and return at once; the runs go on and write their results as usual.

Every job gets OMP_NUM_THREADS and MKL_NUM_THREADS = `cpus_per_task`.
Both keep the plugin's `checkpoint` (a DelayedSubmission of the launcher itself), so submitit
requeues a job that gets SIGUSR2 and the run resumes from its `last.pt` (see `preemption`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as plugin
from omegaconf import OmegaConf

from hydra_plugins.pab_campaign_launchers.config import LocalConf, SlurmConf
from pab_campaign.launching.forkserver import READY
from pab_campaign.launching.plan import (
    DevicePool,
    LauncherConfigError,
    available_cores,
    check_job_tasks,
    parallel_jobs,
    visible_gpus,
)
from pab_campaign.launching.progress import ProgressDisplay, SweepProgress
from pab_campaign.launching.ranks import free_port
from pab_campaign.launching.sweep_status import POINTER, run_failed, write_lost_job

if TYPE_CHECKING:  # submitit is imported where a launcher runs, not when Hydra scans its plugins
    import submitit

log = logging.getLogger(__name__)

POLL_S = 0.05
# What a run imports that is worth importing once per sweep (torch.optim pulls in torch._dynamo,
# pyarrow pulls in pandas when it builds a table).
WARM_MODULES = ("torch", "torch._dynamo", "numpy", "pyarrow.parquet", "pandas", "hydra", "submitit",
                "hydra_plugins.hydra_submitit_launcher.submitit_launcher", __name__, "pab_campaign.training.run",
                "pab_campaign.training.data.digits", "pab_campaign.training.data.synthetic")
WARM_START_TIMEOUT_S = 120.0
WARM_STOP_TIMEOUT_S = 10.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# SLURM may send the warning signal up to 60 s before `signal_delay_s` ahead of the time limit; a
# job needs at least a minute after the earliest such signal, or every start is a requeue.
SLURM_SIGNAL_SLACK_S = 60 + 60


def refuse_unknown_keys(params: dict[str, Any], schema: type, name: str) -> None:
    """Composition refuses `hydra.launcher.typo=1`, but `+hydra.launcher.typo=1` adds the key past
    the schema; refuse that here, before the launcher would silently ignore it."""
    allowed = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise LauncherConfigError(f"hydra.launcher ({name}) has unknown keys {unknown}; "
                                  f"allowed keys: {sorted(allowed - {'_target_'})}")


def placeholder_return(overrides: Sequence[str], value: str) -> JobReturn:
    """A JobReturn for a job whose own return never reached this process (lost, or detached)."""
    ret = JobReturn(overrides=list(overrides), cfg=OmegaConf.create(), hydra_cfg=None, working_dir=None)
    ret.status = JobStatus.COMPLETED
    ret.return_value = value
    return ret


def job_args(overrides: Sequence[str], idx: int) -> tuple:
    """The arguments hydra-submitit-launcher's job callable takes for job `idx`."""
    return list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()


def prepare_sweep_dir(config: Any) -> Path:
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return sweep_dir


def log_job(idx: int, overrides: Sequence[str]) -> None:
    log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))


def failed_return(overrides: Sequence[str], error: BaseException) -> JobReturn:
    """A JobReturn of a job that ended without a result, as Hydra marks a failed job: status FAILED,
    the exception as its value (reading `return_value` raises it), so any sweeper records a failure."""
    ret = JobReturn(overrides=list(overrides), cfg=OmegaConf.create(), hydra_cfg=None, working_dir=None)
    ret.status = JobStatus.FAILED
    ret.return_value = error
    return ret


def collect(jobs: list[tuple[int, submitit.Job[JobReturn]]], job_overrides: Sequence[Sequence[str]],
            sweep_dir: Path) -> list[JobReturn]:
    """Wait for each submitit job; a job that ended without a result (killed, cancelled, out of
    memory) is returned as a failed job and recorded as a failed row of the status table, while
    the other jobs' results are still collected."""
    returns = []
    for (idx, job), overrides in zip(jobs, job_overrides):
        try:
            returns.append(job.results()[0])
            continue
        except Exception as exc:
            error = f"job {job.job_id} ended without a result: {str(exc).strip().splitlines()[0]}"
            lost = exc
        log.error("#%d %s", idx, error)
        write_lost_job(sweep_dir / str(idx), list(overrides), error)
        returns.append(failed_return(overrides, lost))
    return returns


def job_failed(job: submitit.Job[JobReturn], job_output_dir: Path) -> bool:
    """Whether a finished submitit job raised, or trained a run of ours that failed (a job of
    another Hydra app, which leaves no pointer to a run, fails only by raising)."""
    try:
        return job.exception() is not None or ((job_output_dir / POINTER).is_file() and run_failed(job_output_dir))
    except Exception:
        return True


# The keys of the app's config (pab_campaign's runtime table) that make one job several ranks.
DISTRIBUTED_KEY, NPROC_KEY = "runtime.distributed", "runtime.nproc"


def job_tasks(launcher: Any, overrides: Sequence[str]) -> int:
    """The ranks of one job: `runtime.nproc` when its config says `runtime.distributed=true`, else 1
    (any Hydra app without these keys: 1). The job's own config is composed only when its
    overrides name one of the keys; otherwise the sweep's config says it."""
    config = launcher.config
    if any(o.lstrip("+~").split("=")[0] in (DISTRIBUTED_KEY, NPROC_KEY) for o in overrides):
        saved = HydraConfig.instance().cfg
        try:
            config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        finally:
            HydraConfig.instance().cfg = saved
    if not OmegaConf.select(config, DISTRIBUTED_KEY, default=False):
        return 1
    return max(1, int(OmegaConf.select(config, NPROC_KEY, default=1)))


def with_threads(python: str, cpus_per_task: int) -> str:
    """The command `python` run with OMP_NUM_THREADS and MKL_NUM_THREADS set to `cpus_per_task`."""
    return shlex.join(["env", *(f"{name}={cpus_per_task}" for name in THREAD_VARIABLES)]) + " " + python


class WarmPython:
    """A fork server (`pab_campaign.launching.forkserver`) preloading WARM_MODULES: started at once, so its
    imports overlap Hydra's composition of the sweep's configs, and waited for on first use."""

    def __init__(self) -> None:
        self.name = f"pab-forkserver-{os.getpid()}-{secrets.token_hex(6)}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pab_campaign.launching.forkserver", "serve", self.name,
             "--preload", ",".join(WARM_MODULES)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def command(self) -> str | None:
        """The `python` of submitit's local tasks when the server is up, else None (a fresh
        interpreter per task)."""
        stdout = self.process.stdout
        assert stdout is not None  # opened with stdout=PIPE
        readable, _, _ = select.select([stdout], [], [], WARM_START_TIMEOUT_S)
        ready = bool(readable) and stdout.readline().strip() == READY
        stdout.close()
        if not ready:
            log.warning("local launcher: the warm fork server did not start; each run starts a fresh python")
            return None
        log.info("local launcher: runs fork from a warm python (pab_campaign.launching.forkserver, pid %d)",
                 self.process.pid)
        return f"{shlex.quote(sys.executable)} -m pab_campaign.launching.forkserver connect {self.name}"

    def stop(self) -> None:
        """Close the server's lifeline; it exits after its last job (at once when never used). A
        server still serving jobs after WARM_STOP_TIMEOUT_S (the sweep was interrupted) is
        terminated; its jobs go on, and their clients report their end as lost."""
        assert self.process.stdout is not None and self.process.stdin is not None  # opened with PIPE
        if not self.process.stdout.closed:  # never asked for: no job can be using it
            self.process.terminate()
        self.process.stdin.close()
        try:
            self.process.wait(timeout=WARM_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait()


class LocalLauncher(plugin.LocalLauncher):
    """submitit_local that runs at most `parallel_jobs(...)` runs at a time (a pool, not waves)."""

    def __init__(self, **params: Any) -> None:
        refuse_unknown_keys(params, LocalConf, "local")
        self.max_parallel = params.pop("max_parallel")
        self.use_gpus = params.pop("gpus")
        self.warm_start = params.pop("warm_start") and sys.platform == "linux"
        self.warm_python: WarmPython | None = None
        super().__init__(**params)

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        if self.warm_start and self.warm_python is None:
            self.warm_python = WarmPython()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into every job: without the fork server's process handle."""
        return {**self.__dict__, "warm_python": None}

    def _executor(self, python: str) -> submitit.LocalExecutor:
        import submitit

        executor = submitit.LocalExecutor(folder=self.params["submitit_folder"],
                                          python=with_threads(python, self.params["cpus_per_task"]))
        generic = {k: v for k, v in self.params.items()
                   if k in ("timeout_min", "tasks_per_node", "nodes", "stderr_to_stdout")}
        executor.update_parameters(**generic)
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        warm = self.warm_python or (WarmPython() if self.warm_start else None)
        self.warm_python = None
        try:
            threads = self.params["cpus_per_task"]
            gpus = visible_gpus() if self.use_gpus else []
            cores = available_cores()
            tasks = [job_tasks(self, overrides) for overrides in job_overrides]
            for count in sorted(set(tasks)):
                check_job_tasks(count, cores, threads, len(gpus))
            jobs = parallel_jobs(len(job_overrides), cores, threads, len(gpus), self.max_parallel)
            sweep_dir = prepare_sweep_dir(self.config)
            log.info("local launcher: %d runs, %d at a time x %s threads%s; sweep dir %s", len(job_overrides), jobs,
                     threads, f", one GPU per rank of {gpus}" if gpus else "", sweep_dir)
            python = (warm.command() if warm else None) or shlex.quote(sys.executable)
            pool = DevicePool(cores, threads, gpus)
            finished = self._run_pool(self._executor(python), job_overrides, tasks, initial_job_idx, jobs, pool,
                                      sweep_dir)
        finally:
            if warm:
                warm.stop()
        return collect([(idx, finished[idx]) for idx in sorted(finished)], job_overrides, sweep_dir)

    def _run_pool(self, executor: submitit.LocalExecutor, job_overrides: Sequence[Sequence[str]], tasks: list[int],
                  initial_job_idx: int, jobs: int, pool: DevicePool, sweep_dir: Path
                  ) -> dict[int, submitit.Job[JobReturn]]:
        """Submit the runs in order, at most `jobs` at a time and each when the pool has its ranks'
        cores and GPUs, showing the sweep's progress; returns the finished submitit jobs by index."""
        pending = list(zip(range(initial_job_idx, initial_job_idx + len(job_overrides)), job_overrides, tasks))
        running: dict[int, tuple[submitit.Job[JobReturn], int, list[int]]] = {}
        finished: dict[int, submitit.Job[JobReturn]] = {}
        progress = SweepProgress(len(job_overrides), jobs)
        with ProgressDisplay() as display:
            while pending or running:
                while pending and len(running) < jobs and pool.fits(pending[0][2]):
                    idx, overrides, ranks = pending.pop(0)
                    gpus = pool.take(ranks)
                    # One task per rank; several ranks meet at a port free now (submitit's
                    # TorchDistributedEnvironment reads MASTER_PORT).
                    executor.update_parameters(tasks_per_node=ranks, gpus_per_node=len(gpus), visible_gpus=tuple(gpus),
                                               setup=[f"export MASTER_PORT={free_port()}"] if ranks > 1 else [])
                    if not display.live:
                        log_job(idx, overrides)
                    running[idx] = (executor.submit(self, *job_args(overrides, idx)), ranks, gpus)
                    progress.start(idx, time.monotonic())
                display.show(progress.line(time.monotonic()), progress.counts())
                time.sleep(POLL_S)
                for idx, (job, ranks, gpus) in list(running.items()):
                    if job.done():
                        finished[idx] = job
                        del running[idx]
                        progress.finish(idx, time.monotonic(), job_failed(job, sweep_dir / str(idx)))
                        pool.give_back(ranks, gpus)
            display.show(progress.line(time.monotonic()), progress.counts())
        return finished


class SlurmLauncher(plugin.SlurmLauncher):
    """submitit_slurm; with `detach: true` it submits the job array and returns without waiting."""

    def __init__(self, **params: Any) -> None:
        refuse_unknown_keys(params, SlurmConf, "slurm")
        self.detach = params.pop("detach")
        self.detach_record = Path(params.pop("detach_record"))
        if params["max_num_timeout"] < 1:
            raise LauncherConfigError(
                "hydra.launcher.max_num_timeout must be >= 1 so a preempted run is requeued, e.g. max_num_timeout=3")
        shortest = math.ceil((params["signal_delay_s"] + SLURM_SIGNAL_SLACK_S) / 60)
        if params["timeout_min"] < shortest:
            raise LauncherConfigError(
                f"hydra.launcher.timeout_min={params['timeout_min']} is too short for signal_delay_s="
                f"{params['signal_delay_s']}: SLURM would signal (and requeue) each job as it starts; "
                f"use timeout_min>={shortest} or a smaller signal_delay_s")
        super().__init__(**params)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = prepare_sweep_dir(self.config)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log_job(idx, overrides)
            job_params.append(job_args(overrides, idx))
        jobs = self._executor().map_array(self, *zip(*job_params))
        if not self.detach:
            return collect(list(enumerate(jobs, start=initial_job_idx)), job_overrides, sweep_dir)
        job_ids = [job.job_id for job in jobs]
        self.detach_record.parent.mkdir(parents=True, exist_ok=True)
        self.detach_record.write_text(json.dumps({"job_ids": job_ids, "sweep_dir": str(sweep_dir.resolve())},
                                                 indent=2) + "\n")
        log.info("detached: submitted %d jobs (%s), recorded in %s; follow them with squeue",
                 len(job_ids), ", ".join(job_ids), self.detach_record)
        return [placeholder_return(overrides, f"submitted {job_id}")
                for overrides, job_id in zip(job_overrides, job_ids)]

    def _executor(self) -> submitit.AutoExecutor:
        """The AutoExecutor the plugin's `launch` builds, from the same parameters; the batch
        script exports the thread variables before it starts the job."""
        import submitit

        init = {"folder": self.params["submitit_folder"], "slurm_max_num_timeout": self.params["max_num_timeout"]}
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        generic = {f.name for f in dataclasses.fields(plugin.BaseQueueConf)}
        threads = [f"export {name}={self.params['cpus_per_task']}" for name in THREAD_VARIABLES]
        params = {**self.params, "setup": threads + list(self.params["setup"] or [])}
        executor.update_parameters(**{
            k if k in generic else f"slurm_{k}": v for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        })
        return executor
