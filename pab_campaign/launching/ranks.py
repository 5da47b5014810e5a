"""Start the ranks of one run on this machine, as torchrun does: `nproc` fresh processes (the
`spawn` start method, safe with CUDA), each with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, and watch them as one job:

- a rank that ends with an error or is killed ends the others (SIGTERM, then SIGKILL after
  `GRACE_S`), and `RanksFailed` names it; the run resumes from its last checkpoint when launched again;
- when this process is interrupted (Ctrl-C, SIGTERM, a scheduler's preemption) the ranks get
  SIGTERM (rank 0 records the run `preempted`) before the interruption goes on;
- what the ranks put on the queue they are given is returned (rank 0's result, another rank's error).

Only the standard library: the target (a training function) is the caller's.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from pab_campaign.errors import PabError

# Seconds the other ranks get to end after rank 0 ended, or after SIGTERM, before SIGKILL.
GRACE_S = 30.0


class RanksFailed(PabError):
    """Rank `rank` ended with an error or was killed; `exit_code` is its exit status (negative:
    signal), `reports` what the ranks had put on the results queue by then."""

    def __init__(self, message: str, exit_code: int, rank: int = 0) -> None:
        super().__init__(message)
        self.exit_code, self.rank = exit_code, rank
        self.reports: list[Any] = []


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the rendezvous port of rank 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_environment(rank: int, nproc: int, port: int) -> dict[str, str]:
    """torchrun's variables for rank `rank` of `nproc` on this machine."""
    return {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def describe_exit(rank: int, code: int | None) -> str:
    if code is not None and code < 0:
        return f"rank {rank} was killed by {signal.Signals(-code).name}"
    return f"rank {rank} ended with exit code {code}"


def run_ranks(target: Callable[..., None], args: Sequence[Any], nproc: int) -> list[Any]:
    """Run `target(environment, results, *args)` in `nproc` processes (see the module docstring)
    and return what the ranks put on `results`, in the order they put it (RanksFailed carries it
    too, as `reports`)."""
    context = multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    port = free_port()
    processes = [context.Process(target=target, args=(rank_environment(rank, nproc, port), results, *args),
                                 name=f"rank{rank}") for rank in range(nproc)]
    previous_term = signal.getsignal(signal.SIGTERM)
    if previous_term == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    failed = None
    try:
        for process in processes:
            process.start()
        _watch(processes)
    except RanksFailed as exc:
        failed = exc
    finally:
        _end(processes)
        if previous_term == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous_term)
    reports = _drain(results)  # every rank has ended: all it put is there
    if failed is not None:
        failed.reports = reports
        raise failed
    return reports


def _drain(results: Any) -> list[Any]:
    reports = []
    while not results.empty():
        reports.append(results.get())
    return reports


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _watch(processes: list[Any]) -> None:
    """Wait until every rank ended; RanksFailed as soon as one fails. After rank 0 ends, the others
    get GRACE_S to end on their own."""
    deadline: float | None = None
    while True:
        # One look at who is running per turn: a rank that ends between two looks would otherwise
        # leave an empty list, on which wait() without a timeout never returns.
        running = [p for p in processes if p.exitcode is None]
        for rank, process in enumerate(processes):
            if process not in running and process.exitcode != 0:
                raise RanksFailed(describe_exit(rank, process.exitcode), process.exitcode, rank)
        if not running:
            return
        if processes[0] not in running and deadline is None:
            deadline = time.monotonic() + GRACE_S
        if deadline is not None and time.monotonic() >= deadline:
            return
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        multiprocessing.connection.wait([p.sentinel for p in running], timeout)


def _end(processes: list[Any]) -> None:
    """SIGTERM to the ranks still running, SIGKILL to those still running GRACE_S later."""
    for process in processes:
        if process.exitcode is None and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    for process in processes:
        if process.pid is not None:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()
