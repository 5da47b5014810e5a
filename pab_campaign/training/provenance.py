"""Where, when and with what a run executes: host, SLURM job, the user's code (the git repository
of the app's original working directory, or of the script that created a Tracker: commit, dirty,
diff hash), library versions (this package's among them), and the record each attempt starts with."""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

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


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def user_code(directory: Path) -> dict[str, Any] | None:
    """The user's code the run came from: the git repository holding `directory` (`repo`), its
    HEAD `commit`, whether the work tree differs from it (`dirty`: tracked changes or untracked
    files) and the SHA-256 of `git diff HEAD` (`diff_sha256`, None when clean); None outside git."""
    top = _git(directory, "rev-parse", "--show-toplevel")
    head = _git(directory, "rev-parse", "HEAD")
    if top is None or head is None or top.returncode != 0 or head.returncode != 0:
        return None
    status = _git(directory, "status", "--porcelain")
    diff = _git(directory, "diff", "HEAD", "--binary")
    dirty = bool(status is not None and status.stdout.strip())
    return {"repo": top.stdout.decode().strip(), "commit": head.stdout.decode().strip(), "dirty": dirty,
            "diff_sha256": hashlib.sha256(diff.stdout).hexdigest() if dirty and diff is not None else None}


def caller_dir() -> Path:
    """The folder of the first file on the call stack outside this package (the user's script that
    created a Tracker); the working directory when there is none."""
    package = Path(pab_campaign.__file__).resolve().parent
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_file() and package not in path.resolve().parents:
            return path.resolve().parent
        frame = frame.f_back
    return Path.cwd()


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
                 previous: RunRecord | None, world_size: int = 1, code_dir: Path | None = None) -> RunRecord:
    """The record of this attempt, running: a new run, or a restart of `previous` (its start, time
    spent and epochs kept, restarts counted), with this host, job, versions (this package's among
    them), the user's code in `code_dir` (default: the working directory): `git_commit`, `code`, and
    the world size of every attempt (`world_size` ranks now; 1 for earlier attempts a record
    predating the field does not list: they were single-process)."""
    code = user_code(Path(code_dir or Path.cwd()).resolve())
    return RunRecord(
        run_id=run_id, status=RunStatus.RUNNING, campaign=campaign, hparams=hparams, overrides=list(overrides),
        seed=seed, started_at=previous.started_at if previous else now(), ended_at=None,
        duration_s=(previous.duration_s or 0.0) if previous else 0.0,
        epochs_done=previous.epochs_done if previous else 0, restarts=previous.restarts + 1 if previous else 0,
        host=host(), slurm_job_id=slurm_job_id(), git_commit=code["commit"] if code else None,
        code=code, versions=versions(), error=None, world_sizes=[*earlier_world_sizes(previous), world_size])


def earlier_world_sizes(previous: RunRecord | None) -> list[int]:
    """The world sizes of `previous`'s attempts (restarts + 1 of them), 1 where it does not say."""
    if previous is None:
        return []
    attempts = previous.restarts + 1
    return [1] * max(0, attempts - len(previous.world_sizes)) + previous.world_sizes[-attempts:]
