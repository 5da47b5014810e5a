"""Preemption and time limits: a run interrupted by SIGUSR2 ends `preempted`, never `running`.

Under submitit (local or SLURM) the job's SIGUSR2 handler checkpoints the submitted callable (our
launcher, whose `checkpoint` resubmits itself), requeues the job and exits with `SystemExit`
raised wherever training happened to be. `guard(record_status)` wraps that handler so the run's
`run.json` says `preempted` before the requeue is issued, and marks it `preempted` too when the run
is interrupted by `SystemExit` / `KeyboardInterrupt` (Ctrl-C) without the signal. The requeued job
finds the run unfinished and resumes from its last checkpoint (`run.py`), counting a restart.

Outside submitit (Hydra's basic launcher, a plain run) SIGTERM would otherwise end the process on
the spot and leave the run `running`; within the block it is treated like Ctrl-C: the run is marked
`preempted`, its checkpoints are kept, and the process exits with 128 + SIGTERM. (submitit installs
its own SIGTERM handler, which is left alone.) While the status is written, a second Ctrl-C or
SIGTERM is ignored.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from pab_campaign.store import RunStatus

log = logging.getLogger(__name__)
# Times the preempted status is written again when a Ctrl-C arrives before it can be ignored.
MARK_ATTEMPTS = 5


def preempt_signal() -> signal.Signals:
    """The signal submitit treats as preemption/time limit (SUBMITIT_PREEMPT_SIGNAL, default USR2)."""
    return signal.Signals[f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}"]


@contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are ignored (main thread only): one Ctrl-C often arrives
    twice, from the terminal to the whole process group and forwarded by the launcher, and the second
    must not cut the writing of the run's status short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A handler installed outside Python (getsignal gives None) could not be put back: it is left in place.
    previous = {sig: handler for sig in (signal.SIGINT, signal.SIGTERM)
                if (handler := signal.getsignal(sig)) is not None}
    for sig in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def guard(record_status: Callable[[RunStatus, str | None], None]) -> Iterator[None]:
    """Within the block, a preemption signal or an interrupting exit calls
    `record_status(RunStatus.PREEMPTED, None)` once, then lets submitit's handler / the exit go on."""
    sig = preempt_signal()
    previous = signal.getsignal(sig)
    marked: list[str] = []

    def mark(reason: str) -> None:
        if marked:
            return
        marked.append(reason)
        for attempt in range(MARK_ATTEMPTS):
            try:
                with interrupts_ignored():
                    record_status(RunStatus.PREEMPTED, None)
                break
            except KeyboardInterrupt:  # the same Ctrl-C again, before it could be ignored: write it all the same
                if attempt == MARK_ATTEMPTS - 1:
                    raise
        log.warning("run interrupted (%s): recorded as preempted; it resumes from its last checkpoint", reason)

    def on_signal(signum: int, frame: FrameType | None) -> Any:
        mark(signal.Signals(signum).name)
        if callable(previous):
            return previous(signum, frame)
        raise SystemExit(128 + signum)

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        raise SystemExit(128 + signum)

    installed = callable(previous)  # only under submitit, which installs a handler before the task runs
    if installed:
        signal.signal(sig, on_signal)
    previous_term = signal.getsignal(signal.SIGTERM)
    term_installed = previous_term == signal.SIG_DFL and threading.current_thread() is threading.main_thread()
    if term_installed:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as exc:
        mark(type(exc).__name__)
        raise
    finally:
        if installed:
            signal.signal(sig, previous)
        if term_installed:
            signal.signal(signal.SIGTERM, previous_term)
