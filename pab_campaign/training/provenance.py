"""Where, when and with what a run executes: host, SLURM job, git commit, library versions, and
the record each attempt of a run starts with."""
from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import pab_campaign
from pab_campaign.store import RunRecord, RunStatus


def host() -> str:
    return socket.gethostname()


def slurm_job_id() -> str | None:
    """`ARRAYJOB_TASK` for an array task, else the plain SLURM job id, else None."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


@functools.cache
def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(pab_campaign.__file__).parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pab_campaign": pab_campaign.__version__,
    }


def now() -> str:
    """The current UTC time, ISO 8601 to the second (run.json's timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start_record(run_id: str, campaign: str, hparams: dict, seed: int | None, overrides: list[str],
                 previous: RunRecord | None, world_size: int = 1) -> RunRecord:
    """The record of this attempt, running: a new run, or a restart of `previous` (its start, time
    spent and epochs kept, restarts counted), with this host, job, commit, versions and the world
    size of every attempt (`world_size` ranks now; 1 for earlier attempts a record predating the
    field does not list: they were single-process)."""
    return RunRecord(
        run_id=run_id, status=RunStatus.RUNNING, campaign=campaign, hparams=hparams, overrides=list(overrides),
        seed=seed, started_at=previous.started_at if previous else now(), ended_at=None,
        duration_s=(previous.duration_s or 0.0) if previous else 0.0,
        epochs_done=previous.epochs_done if previous else 0, restarts=previous.restarts + 1 if previous else 0,
        host=host(), slurm_job_id=slurm_job_id(), git_commit=git_commit(), versions=versions(), error=None,
        world_sizes=[*earlier_world_sizes(previous), world_size])


def earlier_world_sizes(previous: RunRecord | None) -> list[int]:
    """The world sizes of `previous`'s attempts (restarts + 1 of them), 1 where it does not say."""
    if previous is None:
        return []
    attempts = previous.restarts + 1
    return [1] * max(0, attempts - len(previous.world_sizes)) + previous.world_sizes[-attempts:]
