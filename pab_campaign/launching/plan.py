"""How many runs to train at once on this machine (pure planning for the local launcher).

It lives in the package, not in `hydra_plugins`, because Hydra re-executes plugin modules when it
scans them: classes defined there would be created anew, and `except LauncherConfigError` would miss.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from hydra.errors import HydraException


class LauncherConfigError(HydraException):
    """A launcher setting that cannot work; the message names the key and the fix."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[int]:
    """Indices of the GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [int(x) for x in env.split(",") if x.strip().lstrip("-").isdigit() and int(x) >= 0]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(listing.stdout.splitlines()) if line.startswith("GPU ")]


def parallel_jobs(n_runs: int, cores: int, cpus_per_task: int, gpus: int, max_parallel: int | None) -> int:
    """How many runs to train at once: `min(n_runs, cores // cpus_per_task, gpus if gpus else inf)`.

    `max_parallel` (None = as many as fit) may lower it; asking for more than fits is an error,
    so that jobs x cpus_per_task never exceeds the cores.
    """
    if cpus_per_task < 1:
        raise LauncherConfigError(f"hydra.launcher.cpus_per_task={cpus_per_task} must be >= 1, "
                                  "e.g. hydra.launcher.cpus_per_task=1")
    fit = max(1, cores // cpus_per_task)
    if gpus:
        fit = min(fit, gpus)
    if max_parallel is not None:
        if max_parallel < 1:
            raise LauncherConfigError(f"hydra.launcher.max_parallel={max_parallel} must be >= 1 or null")
        if max_parallel > fit:
            raise LauncherConfigError(
                f"hydra.launcher.max_parallel={max_parallel} x hydra.launcher.cpus_per_task={cpus_per_task} needs "
                f"more than the {cores} cores{f' / {gpus} GPUs' if gpus else ''} here; use max_parallel<={fit} "
                "or a smaller cpus_per_task")
        fit = max_parallel
    return max(1, min(fit, n_runs))


def check_job_tasks(tasks: int, cores: int, cpus_per_task: int, gpus: int) -> None:
    """A run of `tasks` ranks (runtime.nproc) must fit this machine: one GPU per rank when GPUs are
    used, and tasks x cpus_per_task cores."""
    if gpus and tasks > gpus:
        raise LauncherConfigError(f"runtime.nproc={tasks} ranks but the pool has {gpus} GPUs, one per rank; use "
                                  f"runtime.nproc<={gpus}")
    if tasks * cpus_per_task > cores:
        fit = max(1, cores // cpus_per_task)
        raise LauncherConfigError(f"runtime.nproc={tasks} ranks x hydra.launcher.cpus_per_task={cpus_per_task} need "
                                  f"more than the {cores} cores here; use runtime.nproc<={fit} or a smaller "
                                  "cpus_per_task")


class DevicePool:
    """The cores (in slots of `cpus_per_task`) and GPUs the local launcher hands to running jobs; a
    job of `tasks` ranks takes `tasks` slots and, when there are GPUs, `tasks` of them."""

    def __init__(self, cores: int, cpus_per_task: int, gpus: list[int]) -> None:
        self.slots = max(1, cores // cpus_per_task)
        self.free_gpus = list(gpus)
        self.uses_gpus = bool(gpus)

    def fits(self, tasks: int) -> bool:
        return tasks <= self.slots and (not self.uses_gpus or tasks <= len(self.free_gpus))

    def take(self, tasks: int) -> list[int]:
        """Take `tasks` slots (and GPUs); the GPUs taken (empty without GPUs)."""
        assert self.fits(tasks)
        self.slots -= tasks
        taken = self.free_gpus[:tasks] if self.uses_gpus else []
        self.free_gpus = self.free_gpus[len(taken):]
        return taken

    def give_back(self, tasks: int, gpus: list[int]) -> None:
        self.slots += tasks
        self.free_gpus.extend(gpus)
