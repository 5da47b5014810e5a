"""Data-parallel training over ranks with `torch.distributed`: where the ranks come from, which
backend and device each uses, the process group, and the few collectives the run loop needs.

Ranks come, in this order, from torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT; also what `launching.ranks` sets for the ranks the entry point starts), then from a
submitit job of several tasks (SLURM or the local launcher), read through
`submitit.helpers.TorchDistributedEnvironment` (SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS, the
first node as master, a port drawn from the job id unless MASTER_PORT is set). Otherwise the
process is the only rank.

The backend is NCCL on CUDA and gloo on the CPU (`runtime.backend=auto`); rank r of a node uses
`cuda:<local rank>` of the GPUs it sees (`cuda:0` when it sees one). Only rank 0 writes the run;
the others wait for its verdict after each step it takes alone (`Collective.share`).
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pab_campaign.errors import ConfigError, PabError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "gloo", "nccl")
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RankEnded(RuntimeError):
    """Rank 0 ended the run (finished, skipped or failed); the other ranks stop with it."""


class RankFailed(PabError):
    """A rank other than 0 failed (its error in one line, naming the rank); rank 0 records the run."""


class RanksDisagree(PabError):
    """The ranks of one job are not training one run alike (another config, another campaign
    folder, another checkpoint to resume from)."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: global `rank` of `world_size`, `local_rank` of
    `local_world_size` on its node, and the rendezvous `master_addr`:`master_port` of rank 0."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def from_environment(environ: Mapping[str, str] = os.environ) -> Ranks:
    """The ranks this process belongs to (see the module docstring); one rank when none are set."""
    if "RANK" in environ and "WORLD_SIZE" in environ:
        world = int(environ["WORLD_SIZE"])
        return Ranks(rank=int(environ["RANK"]), world_size=world, local_rank=int(environ.get("LOCAL_RANK", 0)),
                     local_world_size=int(environ.get("LOCAL_WORLD_SIZE", world)),
                     master_addr=environ.get("MASTER_ADDR", "127.0.0.1"),
                     master_port=int(environ.get("MASTER_PORT", 29500)))
    if environ.get("SUBMITIT_EXECUTOR") in ("slurm", "local"):
        import submitit

        job = submitit.JobEnvironment()
        if job.num_tasks > 1:
            env = submitit.helpers.TorchDistributedEnvironment()
            master = "127.0.0.1" if environ["SUBMITIT_EXECUTOR"] == "local" else env.master_addr
            return Ranks(env.rank, env.world_size, env.local_rank, env.local_world_size, master, env.master_port)
    return Ranks()


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """ConfigError where torchrun's variables are set in part: RANK without WORLD_SIZE (or the other
    way round) would train as one process, and ranks on several nodes without MASTER_ADDR would
    each wait for a rank 0 on their own node."""
    if ("RANK" in environ) != ("WORLD_SIZE" in environ):
        given, lacking = ("RANK", "WORLD_SIZE") if "RANK" in environ else ("WORLD_SIZE", "RANK")
        raise ConfigError(f"{given} is set but {lacking} is not; set both (torchrun sets RANK, WORLD_SIZE, "
                          "LOCAL_RANK, MASTER_ADDR and MASTER_PORT), or neither for one process")
    if "WORLD_SIZE" in environ and "MASTER_ADDR" not in environ:
        world, local = int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_WORLD_SIZE", environ["WORLD_SIZE"]))
        if world > local:
            raise ConfigError(f"WORLD_SIZE={world} ranks span nodes (LOCAL_WORLD_SIZE={local}) but MASTER_ADDR is "
                              "not set; set MASTER_ADDR (and MASTER_PORT) to rank 0's node")


def in_rank_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is already one of several ranks (so it must not start its own)."""
    return from_environment(environ).distributed


def planned_launcher_tasks() -> int | None:
    """The tasks (ranks) of each job of the SLURM launcher of the Hydra config being composed or
    checked (nodes x tasks_per_node), when more than one; None otherwise."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    launcher = HydraConfig.get().launcher
    if "slurm" not in str(launcher.get("_target_", "")).lower():
        return None
    tasks = int(launcher.get("nodes", 1)) * int(launcher.get("tasks_per_node", 1))
    return tasks if tasks > 1 else None


def check_batch(global_batch: int, world_size: int) -> None:
    """The global batch must split evenly over the ranks."""
    if global_batch % world_size:
        raise ConfigError(f"train.batch_size={global_batch} does not divide over {world_size} ranks; the global "
                          f"batch is split evenly: use a multiple of {world_size}, e.g. "
                          f"train.batch_size={max(world_size, global_batch // world_size * world_size)}")


def backend(requested: str, device: torch.device) -> str:
    """The process-group backend for `device`: `requested`, or NCCL on CUDA and gloo on the CPU."""
    if requested not in BACKENDS:
        raise ConfigError(f"runtime.backend='{requested}' must be one of {', '.join(BACKENDS)}")
    if requested == "nccl" and device.type != "cuda":
        raise ConfigError("runtime.backend=nccl needs CUDA devices but this run trains on the CPU; use "
                          "runtime.backend=gloo (or auto), or runtime.device=cuda on a GPU machine")
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    return requested


def rank_device(wants_cuda: bool, ranks: Ranks) -> torch.device:
    """This rank's device: the CPU, or `cuda:<local rank>` of the GPUs it sees (`cuda:0` when it
    sees one, as under a scheduler that binds one GPU per task)."""
    if not wants_cuda:
        return torch.device("cpu")
    visible = torch.cuda.device_count()
    if visible == 1:
        return torch.device("cuda", 0)
    if ranks.local_rank >= visible:
        raise ConfigError(f"{ranks.local_world_size} ranks on this node but {visible} GPUs visible; give each rank "
                          "a GPU (hydra.launcher.gpus_per_node >= tasks_per_node, or runtime.nproc <= GPUs)")
    return torch.device("cuda", ranks.local_rank)


def derived_seed(*parts: object) -> int:
    """A 62-bit seed that is a pure function of `parts` (e.g. the run's seed, an epoch, a rank)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


class Collective:
    """The collectives of one run over `ranks` (a no-op for one rank). Tensors travel on
    `device` (NCCL needs CUDA tensors)."""

    ABORT = -1

    def __init__(self, ranks: Ranks, device: torch.device) -> None:
        self.ranks, self.device = ranks, device

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of `values` over every rank (float64)."""
        if not self.ranks.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def disagreeing(self, value: int) -> list[int]:
        """The ranks whose `value` (a 64-bit integer) differs from rank 0's, the same list on every
        rank (empty for one rank)."""
        if not self.ranks.distributed:
            return []
        mine = torch.tensor([value], dtype=torch.int64, device=self.device)
        every = [torch.zeros_like(mine) for _ in range(self.ranks.world_size)]
        dist.all_gather(every, mine)
        values = [int(tensor.item()) for tensor in every]
        return [rank for rank, other in enumerate(values) if other != values[0]]

    def share(self, verdict: int | None) -> int:
        """Rank 0's `verdict` (a small integer), received by every rank; the others pass None."""
        if not self.ranks.distributed:
            assert verdict is not None
            return verdict
        tensor = torch.tensor([0 if verdict is None else verdict], dtype=torch.int64, device=self.device)
        dist.broadcast(tensor, src=0)
        return int(tensor.item())


# What the default process group of this process was made for (backend, ranks, timeout), while it lives.
_group: tuple | None = None


@contextmanager
def process_group(ranks: Ranks, backend_name: str, timeout_min: int) -> Iterator[None]:
    """The default process group of `ranks` for the block (nothing for one rank), rendezvous over
    TCP at rank 0's address. It lives until the process ends: the jobs of a sweep that torchrun
    started run one after another in each rank's one process, and share the group of the first
    (a group made again for each job at the same address raced: a rank joining the next job's
    group could meet the last job's store, and the sweep hung)."""
    global _group
    if not ranks.distributed:
        yield
        return
    key = (backend_name, ranks, timeout_min)
    if dist.is_initialized() and _group != key:
        dist.destroy_process_group()
    if not dist.is_initialized():
        log.info("rank %d of %d (local %d): %s process group at %s:%d", ranks.rank, ranks.world_size,
                 ranks.local_rank, backend_name, ranks.master_addr, ranks.master_port)
        dist.init_process_group(backend_name, init_method=f"tcp://{ranks.master_addr}:{ranks.master_port}",
                                rank=ranks.rank, world_size=ranks.world_size, timeout=timedelta(minutes=timeout_min))
        _group = key
    yield


@atexit.register
def _destroy() -> None:
    """The process group, ended as the process ends."""
    if dist.is_initialized():
        dist.destroy_process_group()


def data_parallel(model: nn.Module, device: torch.device, ranks: Ranks) -> nn.Module:
    """`model` wrapped in DistributedDataParallel (gradients averaged over the ranks at each step;
    rank 0's weights broadcast at the start); `model` itself for one rank."""
    if not ranks.distributed:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
