"""Preemption and time limits: a run interrupted by SIGUSR2 ends `preempted`, never `running`.

Under submitit (local or SLURM) the job's SIGUSR2 handler checkpoints the submitted callable (our
launcher, whose `checkpoint` resubmits itself), requeues the job and exits with `SystemExit`
raised wherever training happened to be. `guard(record_status)` wraps that handler so the run's
`run.json` says `preempted` before the requeue is issued, and marks it `preempted` too when the run
is interrupted by `SystemExit` / `KeyboardInterrupt` (Ctrl-C) without the signal. The requeued job
finds the run unfinished and resumes from its last checkpoint (`run.py`), counting a restart.
"""
from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from pab_campaign.store import RunStatus

log = logging.getLogger(__name__)

def preempt_signal() -> signal.Signals:
    """The signal submitit treats as preemption/time limit (SUBMITIT_PREEMPT_SIGNAL, default USR2)."""
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


@contextmanager
def guard(record_status: Callable[[RunStatus, str | None], None]) -> Iterator[None]:
    """Within the block, a preemption signal or an interrupting exit calls
    `record_status(RunStatus.PREEMPTED, None)` once, then lets submitit's handler / the exit go on."""
    sig = preempt_signal()
    previous = signal.getsignal(sig)
    marked: list[str] = []

    def mark(reason: str) -> None:
        if not marked:
            marked.append(reason)
            log.warning("run interrupted (%s): recorded as preempted; it resumes from its last checkpoint", reason)
            record_status(RunStatus.PREEMPTED, None)

    def on_signal(signum: int, frame: FrameType | None) -> Any:
        mark(signal.Signals(signum).name)
        if callable(previous):
            return previous(signum, frame)
        raise SystemExit(128 + signum)

    installed = callable(previous)  # only under submitit, which installs a handler before the task runs
    if installed:
        signal.signal(sig, on_signal)
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as exc:
        mark(type(exc).__name__)
        raise
    finally:
        if installed:
            signal.signal(sig, previous)
