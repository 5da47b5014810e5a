"""Where and with what a run executes: host, SLURM job, git commit, library versions."""
from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from pathlib import Path

import numpy as np
import torch

import pab_campaign


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
