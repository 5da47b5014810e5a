"""One distributed run started from the entry point (`python -m pab_campaign runtime.distributed=true
runtime.nproc=N` outside any job that already gives it ranks): what decides it, the checks before
any rank starts, and what each spawned rank runs (`rank_main`, the target of `launching.ranks`)."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from pab_campaign.errors import ConfigError, PabError, StoreError, one_line
from pab_campaign.store import RunStatus, read_run_json, run_dir, write_run_json
from pab_campaign.training import distributed
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.run import RunOutcome, execute, validate, wants_cuda


def needs_ranks(cfg: DictConfig) -> bool:
    """Whether this process must start the run's `runtime.nproc` ranks itself."""
    return bool(cfg.runtime.distributed) and int(cfg.runtime.nproc) > 1 and not distributed.in_rank_environment()


def check_ranks(cfg: DictConfig) -> None:
    """Refuse (ConfigError) a run whose ranks cannot start here: its config, or more ranks than
    devices in the pool (GPUs for a CUDA run, cores for a CPU one)."""
    nproc = int(cfg.runtime.nproc)
    if wants_cuda(cfg):
        pool, kind = torch.cuda.device_count(), "GPUs"
    else:
        pool, kind = len(os.sched_getaffinity(0)), "CPU cores"
    if nproc > pool:
        raise ConfigError(f"runtime.nproc={nproc} ranks but {pool} {kind} here, one rank per device; use "
                          f"runtime.nproc<={pool}")
    validate(cfg)


def check_run(cfg: DictConfig) -> None:
    """What a single run (no -m) is refused for before it starts: ranks this process cannot start
    (`check_ranks`, which validates too), else its config (`validate`)."""
    if needs_ranks(cfg):
        check_ranks(cfg)
    else:
        validate(cfg)


def rank_main(environment: dict[str, str], results: Any, cfg: DictConfig, overrides: list[str]) -> None:
    """One spawned rank: its torchrun variables, logging to stderr, then the run. SIGUSR2 (a
    scheduler's preemption notice) is left to the process that started the ranks, which ends them
    with SIGTERM. A config error ends the rank in one line with exit code 2."""
    os.environ.update(environment)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    rank = int(environment["RANK"])
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stderr,
                        format=f"[%(asctime)s][%(name)s][%(levelname)s][rank {rank}] - %(message)s")
    _end_with_the_launcher()
    try:
        outcome = execute(cfg, overrides)
    except distributed.RankFailed as exc:
        print(f"pab_campaign: {one_line(exc)}", file=sys.stderr)
        results.put(("error", rank, one_line(exc)))
        sys.exit(1)
    except PabError as exc:
        print(f"pab_campaign: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    if rank == 0:
        results.put(("outcome", outcome))


def _end_with_the_launcher() -> None:
    """Have the kernel send this rank SIGTERM when the process that started it dies, even by SIGKILL
    (rank 0 then records the run `preempted`; the ranks never train on as orphans)."""
    import ctypes

    with contextlib.suppress(AttributeError, OSError):  # not Linux: the launcher's own SIGTERM still reaches them
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def record_failure(cfg: DictConfig, error: str) -> None:
    """Record the run of `cfg` failed with `error` where its ranks ended without rank 0 recording why
    (another rank failed, and the launcher's SIGTERM made rank 0 record a preemption)."""
    rid = run_id(hparams(cfg))
    directory = run_dir(Path(cfg.campaign.dir).resolve(), rid)
    try:
        record = read_run_json(directory)
    except StoreError:
        return
    if record.status in (RunStatus.PREEMPTED, RunStatus.RUNNING, RunStatus.FAILED):
        write_run_json(directory, dataclasses.replace(record, status=RunStatus.FAILED, error=error))


PR_SET_PDEATHSIG = 1  # prctl's option (linux/prctl.h)


def lost_outcome(cfg: DictConfig, error: str) -> RunOutcome:
    """The outcome of a run whose ranks ended without rank 0's result (one was killed, or failed)."""
    rid = run_id(hparams(cfg))
    return RunOutcome(rid, RunStatus.FAILED, run_dir(Path(cfg.campaign.dir).resolve(), rid), error)
