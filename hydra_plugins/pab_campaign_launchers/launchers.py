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
  the app's modules once (`preload`, by default those the launching app imported;
  `pab_campaign.launching.forkserver`) instead of starting cold; a sweeper that launches batches
  and says how many jobs it plans (Optuna's `n_jobs` trials at a time, `n_trials` in all) keeps
  that one process for all of them.
- `SlurmLauncher`: submitit_slurm plus `detach`: submit the job array, record its job ids in
  `detach_record` and return at once; the runs go on and write their results as usual.

Every job gets OMP_NUM_THREADS and MKL_NUM_THREADS = `cpus_per_task`.
Both keep the plugin's `checkpoint` (a DelayedSubmission of the launcher itself), so submitit
requeues a job that gets SIGUSR2 and the run resumes from its `last.pt` (see `preemption`).
"""
from __future__ import annotations

import atexit
import dataclasses
import io
import json
import logging
import math
import os
import secrets
import select
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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
from pab_campaign.launching.refusal import exit_on_refusal
from pab_campaign.launching.sweep_status import POINTER, run_failed, write_lost_job

if TYPE_CHECKING:  # submitit is imported where a launcher runs, not when Hydra scans its plugins
    import submitit

log = logging.getLogger(__name__)

POLL_S = 0.05
# What every job imports to unpickle its launcher and run Hydra's job, whatever the app.
JOB_MODULES = ("hydra", "submitit", "hydra_plugins.hydra_submitit_launcher.submitit_launcher", __name__)
WARM_START_TIMEOUT_S = 120.0
WARM_STOP_TIMEOUT_S = 10.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# submitit waits up to 15 s for an ended job's result file to show (a cluster's shared file system).
# A local job's result is written before its process ends, or never (killed): it is read at once.
LOCAL_RESULT_WAIT_S = 0
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


def read_result_at_once(job: submitit.Job[JobReturn]) -> submitit.Job[JobReturn]:
    """`job`, a local one, whose result (and each of its tasks') is read without waiting for the file
    to appear: a killed job is reported lost at once, not after 15 s for the progress line and 15 s
    more for its result."""
    for each in (job, *job._sub_jobs):
        each._results_timeout_s = LOCAL_RESULT_WAIT_S
    return job


def job_failed(job: submitit.Job[JobReturn], job_output_dir: Path) -> bool:
    """Whether a finished submitit job ended without a result, returned a failed JobReturn (its
    task raised: the way a job of any Hydra app fails), or trained a run of ours that failed."""
    try:
        if job.exception() is not None:
            return True
        if any(getattr(ret, "status", None) == JobStatus.FAILED for ret in job.results()):
            return True
        return (job_output_dir / POINTER).is_file() and run_failed(job_output_dir)
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


@contextmanager
def stderr_to(file: TextIO) -> Iterator[io.StringIO]:
    """Send this process's stderr (fd 2, where sbatch writes) to `file` for the block; yields what was
    written there once the block ends (and writes it to stderr again when the block succeeded)."""
    said = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield said
    except BaseException:
        said.write(_restore(saved, file))
        raise
    text = _restore(saved, file)
    said.write(text)
    sys.stderr.write(text)


def _restore(saved: int, file: TextIO) -> str:
    """Put fd 2 back from `saved`; the text `file` received meanwhile."""
    os.dup2(saved, 2)
    os.close(saved)
    file.seek(0)
    text = file.read()
    file.close()
    return text


def with_threads(python: str, cpus_per_task: int) -> str:
    """The command `python` run with OMP_NUM_THREADS and MKL_NUM_THREADS set to `cpus_per_task`."""
    return shlex.join(["env", *(f"{name}={cpus_per_task}" for name in THREAD_VARIABLES)]) + " " + python


def app_modules() -> list[str]:
    """The modules the launching app has imported that live outside the standard library (the
    app's own imports and what they pulled in): what its jobs will import again."""
    names = []
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if (top in sys.stdlib_module_names or top.startswith("_") or name == "__main__"
                or getattr(module, "__file__", None) is None or "._" in name):
            continue
        names.append(name)
    return names


def preload_modules(preload: Sequence[str] | None) -> list[str]:
    """What the warm python imports: `preload` (or the app's own imports when None) and JOB_MODULES."""
    chosen = list(preload) if preload is not None else app_modules()
    return list(dict.fromkeys([*JOB_MODULES, *chosen]))


class WarmPython:
    """A fork server (`pab_campaign.launching.forkserver`) preloading `modules`: started at once, so its
    imports overlap Hydra's composition of the sweep's configs, and waited for on first use."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.name = f"pab-forkserver-{os.getpid()}-{secrets.token_hex(6)}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pab_campaign.launching.forkserver", "serve", self.name,
             "--preload", ",".join(modules)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready: bool | None = None  # unknown until `command` first waits for it

    def command(self) -> str | None:
        """The `python` of submitit's local tasks when the server is up, else None (a fresh
        interpreter per task); waits for it on the first call only. A server that died since is
        no harm: its clients then start a fresh interpreter themselves."""
        if self.ready is None:
            stdout = self.process.stdout
            assert stdout is not None  # opened with stdout=PIPE
            readable, _, _ = select.select([stdout], [], [], WARM_START_TIMEOUT_S)
            self.ready = bool(readable) and stdout.readline().strip() == READY
            stdout.close()
            if not self.ready:
                log.warning("local launcher: the warm fork server did not start; each run starts a fresh python")
            else:
                log.info("local launcher: runs fork from a warm python (pab_campaign.launching.forkserver, pid %d)",
                         self.process.pid)
        if not self.ready:
            return None
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


def planned_total(config: Any) -> int:
    """Jobs the sweep says it will launch in all (`hydra.sweeper.n_trials`, e.g. an Optuna study
    launched batch by batch); 0 when it does not say."""
    total = OmegaConf.select(config, "hydra.sweeper.n_trials", default=None)
    return total if isinstance(total, int) and total > 0 else 0


def refuse_no_time(params: dict[str, Any]) -> None:
    """LauncherConfigError for a `timeout_min` below 1: submitit would end every job as it starts."""
    if params["timeout_min"] < 1:
        raise LauncherConfigError(f"hydra.launcher.timeout_min={params['timeout_min']} must be >= 1 (minutes a job may "
                                  "run before it is stopped and requeued), e.g. timeout_min=60")


class LocalLauncher(plugin.LocalLauncher):
    """submitit_local that runs at most `parallel_jobs(...)` runs at a time (a pool, not waves).
    Its progress line counts the whole sweep across the batches a sweeper launches."""

    @exit_on_refusal
    def __init__(self, **params: Any) -> None:
        refuse_unknown_keys(params, LocalConf, "local")
        refuse_no_time(params)
        self.max_parallel = params.pop("max_parallel")
        self.use_gpus = params.pop("gpus")
        self.warm_start = params.pop("warm_start") and sys.platform == "linux"
        self.preload = params.pop("preload")
        self.warm_python: WarmPython | None = None
        self.launched = 0  # jobs of this sweep launched so far, over its batches
        self.progress: SweepProgress | None = None
        super().__init__(**params)

    @exit_on_refusal
    def setup(self, **kwargs: Any) -> None:
        # the settings refused here, before the sweeper writes anything (launch would say the same later)
        parallel_jobs(1, available_cores(), self.params["cpus_per_task"], len(visible_gpus()) if self.use_gpus else 0,
                      self.max_parallel)
        super().setup(**kwargs)
        if self.warm_start and self.warm_python is None:
            self._start_warm_python()

    def _start_warm_python(self) -> WarmPython:
        """The fork server of this sweep, started now: kept while the sweep says more batches follow
        (`planned_total`), else stopped after its batch; stopped too when a batch fails or this
        process exits."""
        self.warm_python = WarmPython(preload_modules(self.preload))
        atexit.register(self.warm_python.stop)
        return self.warm_python

    def _stop_warm_python(self) -> None:
        if self.warm_python is not None:
            atexit.unregister(self.warm_python.stop)
            self.warm_python.stop()
            self.warm_python = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into every job: without the fork server's process handle."""
        return {**self.__dict__, "warm_python": None, "progress": None}

    def _executor(self, python: str) -> submitit.LocalExecutor:
        import submitit

        executor = submitit.LocalExecutor(folder=self.params["submitit_folder"],
                                          python=with_threads(python, self.params["cpus_per_task"]))
        generic = {k: v for k, v in self.params.items()
                   if k in ("timeout_min", "tasks_per_node", "nodes", "stderr_to_stdout")}
        executor.update_parameters(**generic)
        return executor

    @exit_on_refusal
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        warm = self.warm_python or (self._start_warm_python() if self.warm_start else None)
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
        except BaseException:  # interrupted or refused: no next batch; jobs still running are its to end
            self._stop_warm_python()
            raise
        self.launched += len(job_overrides)
        if self.launched >= planned_total(self.config):  # the last batch, or a sweep that does not say
            self._stop_warm_python()
        return collect([(idx, finished[idx]) for idx in sorted(finished)], job_overrides, sweep_dir)

    def _run_pool(self, executor: submitit.LocalExecutor, job_overrides: Sequence[Sequence[str]], tasks: list[int],
                  initial_job_idx: int, jobs: int, pool: DevicePool, sweep_dir: Path
                  ) -> dict[int, submitit.Job[JobReturn]]:
        """Submit the runs in order, at most `jobs` at a time and each when the pool has its ranks'
        cores and GPUs, showing the sweep's progress; returns the finished submitit jobs by index."""
        pending = list(zip(range(initial_job_idx, initial_job_idx + len(job_overrides)), job_overrides, tasks))
        running: dict[int, tuple[submitit.Job[JobReturn], int, list[int]]] = {}
        finished: dict[int, submitit.Job[JobReturn]] = {}
        if self.progress is None:
            self.progress = SweepProgress(planned_total(self.config), jobs)
        progress = self.progress
        progress.add(len(job_overrides), jobs)
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
                    running[idx] = (read_result_at_once(executor.submit(self, *job_args(overrides, idx))), ranks, gpus)
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
    """submitit_slurm; with `detach: true` it submits the job array and returns without waiting.
    Where sbatch cannot submit (no SLURM here), the sweep ends with one line and exit status 2; where
    SLURM_CONF names no file, at once (sbatch would retry for a minute before it gives up)."""

    @exit_on_refusal
    def __init__(self, **params: Any) -> None:
        refuse_unknown_keys(params, SlurmConf, "slurm")
        refuse_no_time(params)
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

    @exit_on_refusal
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = prepare_sweep_dir(self.config)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log_job(idx, overrides)
            job_params.append(job_args(overrides, idx))
        conf = os.environ.get("SLURM_CONF")
        if conf and not Path(conf).is_file():
            raise LauncherConfigError(f"hydra/launcher=slurm could not submit the sweep (SLURM_CONF={conf} names no "
                                      "file); run it where sbatch reaches a SLURM cluster, or use hydra/launcher=local")
        try:
            with stderr_to(tempfile.TemporaryFile(mode="w+")) as said:
                jobs = self._executor().map_array(self, *zip(*job_params))
        except Exception as exc:  # submitit: sbatch missing, or sbatch refused (no controller, bad option)
            lines = [line.strip() for line in f"{exc}\n{said.getvalue()}".splitlines() if line.strip()]
            reason = next((line for line in reversed(lines) if "fatal" in line or "error" in line),
                          lines[-1] if lines else type(exc).__name__)
            raise LauncherConfigError(f"hydra/launcher=slurm could not submit the sweep ({reason}); run it where "
                                      "sbatch reaches a SLURM cluster, or use hydra/launcher=local") from None
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
