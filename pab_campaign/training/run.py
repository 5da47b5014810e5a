"""One run: build data, model and optimiser from the config, train epoch by epoch, measure with the
probes, checkpoint, resume, and keep `run.json` / `trajectory.parquet` current (the layout is `pab_campaign.store`'s).

The steps follow `setup → train → save_checkpoint → cleanup`; `execute(cfg)` runs them all and
never raises for a training error: the run ends `failed` (or `diverged`) with the error's last line
in `run.json` and its full traceback appended to `<run>/run.log`, and the sweep goes on.

With `runtime.distributed` the process is one rank of several (`distributed.py`): every rank trains
its share of each global batch under DistributedDataParallel; rank 0 alone holds the run's lock,
evaluates, probes and writes, and the others wait for its verdict (go on, stop, or it ended) after
each of its solo steps, so the trajectory has exactly the rows of a single-process run.

Every file of the run is written through a `RunWriter` (`run_writer.py`, the Tracker's too): a
run another live process is writing is skipped and said so; a finished run is never reopened; a run
whose `run.json` cannot be read is refused when it has history; a run whose trajectory cannot be
read back, or lacks epochs its checkpoint recorded, is not resumed over it: it ends `failed` with
the reason and every file is kept.
"""
from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from pab_campaign.errors import ConfigError, StoreError, one_line
from pab_campaign.runlock import RunLocked, RunLockLost
from pab_campaign.store import RunStatus, run_dir
from pab_campaign.training import checkpoint, distributed, preemption
from pab_campaign.training.acceleration import autocast, on_cuda, prepare_model
from pab_campaign.training.config import check_campaign_dir, check_campaign_name, job_threads, undeclared_keys
from pab_campaign.training.data import SPLITS, build_dataset, check_dataset
from pab_campaign.training.data.batching import augment_generator, on_device, train_batches
from pab_campaign.training.data.sharding import GlobalBatchSampler
from pab_campaign.training.distributed import Collective, RankEnded, RankFailed, Ranks, RanksDisagree
from pab_campaign.training.evaluate import Evaluation, evaluate
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.models import build_model, check_model
from pab_campaign.training.objective import parse_objective
from pab_campaign.training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler
from pab_campaign.training.probes import ProbeContext
from pab_campaign.training.probes.hookpoints import check_hookpoints, check_hookpoints_probe
from pab_campaign.training.probes.registry import build_probes
from pab_campaign.training.run_writer import RunRefused, RunWriter
from pab_campaign.training.state import TrainingState

log = logging.getLogger(__name__)


# What `checkpoint.best_metric` may name: a split's loss or accuracy, as every epoch evaluates them.
BEST_METRICS = tuple(f"{split}/{metric}" for split in ("train", "val", "test") for metric in ("loss", "acc"))


def validate(cfg: DictConfig) -> None:
    """Refuse configs that cannot run, before anything is written. The schemas have checked every
    key and type while Hydra composed `cfg`; what is left are ranges, names and files. A sweep runs
    this on every job's config before the first job starts (`hydra.sweeper.validate`)."""
    added = undeclared_keys(cfg)
    if added:
        raise ConfigError(f"{added[0]} is not a config key (added with +?); see `python -m pab_campaign --cfg job`")
    check_campaign_name(str(cfg.campaign.name))
    check_campaign_dir(str(cfg.campaign.dir))
    parse_objective(cfg.campaign.objective)
    checks = [
        (0 < cfg.optimizer.lr < math.inf, f"optimizer.lr={cfg.optimizer.lr} must be > 0 and finite, e.g. "
                                           "optimizer.lr=0.05"),
        (cfg.optimizer.weight_decay >= 0, f"optimizer.weight_decay={cfg.optimizer.weight_decay} must be >= 0"),
        (cfg.train.epochs >= 1, f"train.epochs={cfg.train.epochs} must be >= 1, e.g. train.epochs=10"),
        (cfg.train.batch_size >= 1, f"train.batch_size={cfg.train.batch_size} must be >= 1"),
        (cfg.runtime.device in ("cpu", "cuda", "auto"),
         f"runtime.device='{cfg.runtime.device}' must be cpu, cuda or auto"),
        (cfg.runtime.threads is None or cfg.runtime.threads >= 1,
         f"runtime.threads={cfg.runtime.threads} must be >= 1, or null for the launcher's threads"),
        (cfg.checkpoint.best_mode in ("min", "max"),
         f"checkpoint.best_mode='{cfg.checkpoint.best_mode}' must be min or max"),
        (cfg.runtime.nproc >= 1, f"runtime.nproc={cfg.runtime.nproc} must be >= 1, e.g. runtime.nproc=2"),
        (cfg.runtime.dist_timeout_min >= 1, f"runtime.dist_timeout_min={cfg.runtime.dist_timeout_min} must be >= 1"),
        (0 <= cfg.seed < 2**32, f"seed={cfg.seed} must be in 0 .. 2**32 - 1 (torch's and numpy's seeds)"),
        (getattr(cfg.optimizer, "momentum", 0) >= 0, f"optimizer.momentum={getattr(cfg.optimizer, 'momentum', 0)} "
                                                      "must be >= 0"),
        (all(0 <= beta < 1 for beta in getattr(cfg.optimizer, "betas", [])),
         f"optimizer.betas={list(getattr(cfg.optimizer, 'betas', []))} must each be in [0, 1)"),
        (cfg.tracking.probe_size >= 1, f"tracking.probe_size={cfg.tracking.probe_size} must be >= 1 (the probes' "
                                       "validation examples)"),
        *((cfg.checkpoint[key] >= 0, f"checkpoint.{key}={cfg.checkpoint[key]} must be >= 0 (0 = {off})")
          for key, off in (("every", "no numbered checkpoints"), ("keep_last_n", "none kept for being recent"),
                           ("keep_every_n", "none kept for its epoch"))),
        (not cfg.checkpoint.best_metric or str(cfg.checkpoint.best_metric) in BEST_METRICS,
         f"checkpoint.best_metric='{cfg.checkpoint.best_metric}' must be one of {', '.join(BEST_METRICS)}, or null"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value: give it in your config (a preset of your own must set every "
                          f"key of its schema) or on the command line, e.g. {missing[0]}=...")
    job_threads(cfg.runtime.threads)
    OPTIMIZERS.get(cfg.optimizer.name)
    SCHEDULES.get(cfg.schedule.name)
    check_model(cfg.model)
    build_probes(cast(dict[str, Any], OmegaConf.to_container(cfg.tracking.probes)))
    check_hookpoints_probe(list(cfg.tracking.hookpoints), list(cfg.tracking.probes))
    try:
        check_dataset(cfg.dataset)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.runtime.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device=cuda but no CUDA device is visible; use runtime.device=cpu or auto")
    # `auto` may find no GPU on the machine that checks a sweep, yet the job's node has some.
    distributed.backend(str(cfg.runtime.backend), torch.device("cpu" if cfg.runtime.device == "cpu" else "cuda"))
    if cfg.runtime.distributed:
        distributed.check_batch(int(cfg.train.batch_size), planned_world_size(cfg))


def wants_cuda(cfg: DictConfig) -> bool:
    return cfg.runtime.device == "cuda" or (cfg.runtime.device == "auto" and torch.cuda.is_available())


def planned_world_size(cfg: DictConfig) -> int:
    """The ranks a distributed run will have: those of the job it runs in (torchrun, a submitit job
    of several tasks), else, when a sweep is being checked for the SLURM launcher, its nodes x
    tasks_per_node, else `runtime.nproc`."""
    ranks = distributed.from_environment()
    if ranks.distributed:
        return ranks.world_size
    launcher = distributed.planned_launcher_tasks()
    return launcher if launcher is not None else int(cfg.runtime.nproc)


@dataclass
class RunOutcome:
    """How one run ended, for the sweep's status table."""

    run_id: str
    status: RunStatus
    directory: Path
    error: str | None = None
    skipped: bool = False
    # Why a run was skipped other than being finished before (e.g. another process is writing it).
    note: str | None = None
    # The rank that returned it: only rank 0's speaks for the run.
    rank: int = 0


CONTINUE, STOP = 0, 1


@dataclass
class Run:
    """The state of one run between its steps. Rank 0 writes its files through `writer` (None on
    the other ranks); `ranks` are the processes training it together (one by default)."""

    cfg: DictConfig
    writer: RunWriter | None
    ranks: Ranks = field(default_factory=Ranks)
    run_id: str = ""
    divergence: str | None = None

    # ---- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        """Build data, model and optimiser, resume from the last checkpoint (every rank loads it),
        then wrap the model for data-parallel training once rank 0 has checked the history."""
        cfg = self.cfg
        torch.set_num_threads(job_threads(cfg.runtime.threads))
        self.device = distributed.rank_device(wants_cuda(cfg), self.ranks)
        self.collective = Collective(self.ranks, self.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            # CPU kernels are deterministic at a fixed thread count already (the tests check it);
            # the switch imports torch._inductor (~1.5 s of start-up), so only CUDA pays for it.
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.data = on_device(build_dataset(cfg.dataset), self.device)
        self.model = build_model(cfg.model, self.data.input_shape, self.data.num_classes)
        self.optimizer = build_optimizer(cfg.optimizer, self.model)
        self.probes = build_probes(cast(dict[str, Any], OmegaConf.to_container(cfg.tracking.probes)))
        self.hookpoints = tuple(str(name) for name in cfg.tracking.hookpoints)
        check_hookpoints(self.model, self.hookpoints)
        self.state = TrainingState(
            self.model, self.optimizer, build_scheduler(cfg.schedule, self.optimizer, cfg.train.epochs),
            probe_states={probe.name: {} for probe in self.probes})
        self.probe_set = self.data.probe(int(cfg.tracking.probe_size))
        batchnorm = torch.nn.modules.batchnorm._BatchNorm
        min_share = 2 if any(isinstance(m, batchnorm) for m in self.model.modules()) else 1
        self.sampler = GlobalBatchSampler(len(self.data.train), int(cfg.train.batch_size), self.ranks.world_size,
                                          self.ranks.rank, distributed.derived_seed("order", cfg.seed), min_share)
        unlike = self.sampler.unlike_one_process()
        if unlike and self.ranks.is_main:
            log.warning("run %s: the last global batch of each epoch (%d examples) is skipped on %d ranks (fewer than "
                        "%d per rank) where one process trains on it, so this run's weights differ from one "
                        "process's; a train.batch_size leaving no remainder of the %d training examples avoids it",
                        self.run_id, unlike, self.ranks.world_size, min_share, len(self.data.train))
        self._resume()
        self._solo(self._check_history)
        self.model, self.step_model = prepare_model(
            self.model, self.device, cfg.runtime, lambda m: distributed.data_parallel(m, self.device, self.ranks))

    def _resume(self) -> None:
        """Continue from the latest checkpoint, if any (every rank reads rank 0's, so all go on from
        the same weights, optimiser state and epoch)."""
        latest = checkpoint.latest(self.directory)
        if latest is not None:
            self.state.load_state_dict(checkpoint.load(latest))
            log.info("run %s: resuming from %s (epoch %d)", self.run_id, latest.name, self.state.epoch)
        found = self.state.epoch if latest is not None else -1
        odd = self.collective.disagreeing(found)
        if odd:  # the ranks would go on from other epochs and wait on each other's collectives
            seen = f"epoch {found}" if found >= 0 else "no checkpoint"
            raise RanksDisagree(f"rank(s) {', '.join(map(str, odd))} found another last checkpoint than rank 0 (rank "
                                f"{self.ranks.rank} found {seen} in {self.directory}); every rank must see the run's "
                                "folder: put campaign.root on a file system all nodes share")

    def _check_history(self) -> int:
        """Rank 0: the writer checks the history against the checkpoint and drops trajectory rows
        after its epoch (StoreError when the history lacks epochs it recorded)."""
        assert self.writer is not None
        self.writer.resume(self.state.epoch, self.state.recorded_epochs)
        return CONTINUE

    @property
    def directory(self) -> Path:
        return run_dir(Path(self.cfg.campaign.dir).resolve(), self.run_id)

    def _solo(self, work: Callable[[], int]) -> int:
        """Run `work` on rank 0 alone and share its verdict (CONTINUE or STOP) with every rank. When
        it raises, the others are told the run ended (they raise RankEnded) and it re-raises."""
        if not self.ranks.is_main:
            verdict = self.collective.share(None)
            if verdict == Collective.ABORT:
                raise RankEnded(f"rank 0 ended run {self.run_id}; see its run.json")
            return verdict
        try:
            verdict = work()
        except BaseException:
            _tell_the_others(self.collective, Collective.ABORT)
            raise
        return self.collective.share(verdict)

    # ---- train ---------------------------------------------------------------------------
    def train(self) -> RunStatus:
        """Measure epoch 0 (if not resumed past it), then train; returns the final status. A run that
        diverged says which value became non-finite at which epoch in `divergence` (run.json's error)."""
        epochs, start = int(self.cfg.train.epochs), self.state.next_epoch
        if start == 0:
            self._solo(partial(self._end_epoch, 0, math.nan, time.monotonic()))
        for epoch in range(max(start, 1), epochs + 1):
            started = time.monotonic()
            train_loss = self._train_epoch(epoch)
            if self._solo(partial(self._end_epoch, epoch, train_loss, started)) == STOP:
                return RunStatus.DIVERGED
        return RunStatus.COMPLETED

    def _train_epoch(self, epoch: int) -> float:
        """One pass over the training split in the epoch's seeded order (`GlobalBatchSampler`: this
        rank's share of each global batch), augmented (when `dataset.augment`) by a generator derived
        from (seed, epoch, rank); mean loss (nats) per example over every rank, NaN if it blew up.

        Each rank's loss is its share's mean scaled by share·world/global batch, so the gradients
        DistributedDataParallel averages are those of the global batch's mean loss, as in one
        process. On CUDA, and over several ranks, the loss is summed on the device and checked once
        at the end, so steps never wait for the host (and every rank takes every step)."""
        self.model.train()
        assert self.state.scheduler is not None  # set up with the optimizer, before the first epoch
        world, rank = self.ranks.world_size, self.ranks.rank
        if world > 1:  # dropout draws: a pure function of (seed, epoch, rank), so a resume draws them again
            torch.manual_seed(distributed.derived_seed("dropout", self.cfg.seed, epoch, rank))
        self.sampler.set_epoch(epoch)
        order = self.sampler.indices()
        generator = None
        if self.cfg.dataset.get("augment"):
            generator = augment_generator(int(self.cfg.seed), epoch, rank)
        check_each_step = not on_cuda(self.device) and world == 1
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        batches = train_batches(self.data, order, self.sampler.rank_batch_size, self.device, 1, generator)
        for (x, y), global_size in zip(batches, self.sampler.global_sizes()):
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self.cfg.runtime):
                loss = F.cross_entropy(self.step_model(x), y)
            if check_each_step and not torch.isfinite(loss):
                self.state.scheduler.step()
                return math.nan
            scale = len(y) * world / global_size
            (loss * scale if scale != 1 else loss).backward()
            self.optimizer.step()
            total += loss.detach().double() * len(y)
            seen += len(y)
        self.state.scheduler.step()
        summed, count = self.collective.sum([total.item(), float(seen)])
        mean = summed / max(count, 1.0)
        return mean if math.isfinite(mean) else math.nan

    def _end_epoch(self, epoch: int, train_loss: float, started: float) -> int:
        """Rank 0: evaluate, probe, then persist trajectory, checkpoint and run.json for `epoch`;
        STOP when the run diverged (and `train.stop_on_divergence`), else CONTINUE."""
        assert self.writer is not None
        with autocast(self.device, self.cfg.runtime):
            evaluations = {name: evaluate(self.model, getattr(self.data, name)) for name in SPLITS}
        final_epoch = int(self.cfg.train.epochs)
        trajectory = self.writer.trajectory
        trajectory.add(epoch, "train", "lr", self.optimizer.param_groups[0]["lr"])
        if epoch > 0:
            trajectory.add(epoch, "train", "batch_loss", train_loss)
        shared: dict[str, Any] = {}
        for probe in self.probes:
            if probe.due(epoch, final_epoch):
                context = ProbeContext(epoch, self.model, self.data, self.probe_set, evaluations,
                                       self.state.probe_states.setdefault(probe.name, {}), seed=int(self.cfg.seed),
                                       shared=shared, hookpoints=self.hookpoints)
                trajectory.extend(epoch, probe.measure(context))
        self.writer.save_trajectory()
        self.save_checkpoint(epoch, evaluations)
        self.writer.record_epoch(epoch)
        if epoch == 0:
            return CONTINUE
        if self.cfg.runtime.verbose:
            log.info("run %s epoch %d/%d  train loss %.4f | val loss %.4f acc %.4f | %.2fs", self.run_id, epoch,
                     final_epoch, train_loss, evaluations["val"].loss, evaluations["val"].acc,
                     time.monotonic() - started)
        bad = [f"{name}={value}" for name, value in (("train_loss", train_loss),
                                                     ("train_eval_loss", evaluations["train"].loss))
               if not math.isfinite(value)]
        if self.cfg.train.stop_on_divergence and bad:
            self.divergence = f"non-finite loss at epoch {epoch}: {', '.join(bad)}"
            return STOP
        return CONTINUE

    # ---- save_checkpoint -----------------------------------------------------------------
    def save_checkpoint(self, epoch: int, evaluations: dict[str, Evaluation]) -> None:
        """`last.pt` every epoch, `epoch_NNNN.pt` every k epochs (then prune), `best.pt` on improvement."""
        assert self.writer is not None
        ckpt = self.cfg.checkpoint
        improved = self._improves_best(evaluations)
        self.state.epoch, self.state.recorded_epochs = epoch, self.writer.recorded_epochs()
        state = self.state.state_dict()
        directory = checkpoint.checkpoint_dir(self.writer.directory)
        numbered = ckpt.every and epoch > 0 and epoch % ckpt.every == 0
        paths = [directory / checkpoint.numbered_name(epoch)] if numbered else []
        paths += [directory / checkpoint.BEST] if improved else []
        # `last.pt` goes last: a crash before it re-runs this epoch and rewrites the files above.
        paths.append(directory / checkpoint.LAST)
        checkpoint.save(paths[0], state, copies=paths[1:])
        if numbered:
            checkpoint.prune(directory, int(ckpt.keep_last_n), int(ckpt.keep_every_n))

    def _improves_best(self, evaluations: dict[str, Evaluation]) -> bool:
        """Update the best value of `checkpoint.best_metric` (split/loss|acc); True if it improved."""
        spec = self.cfg.checkpoint.best_metric
        if not spec:
            return False
        split, metric = spec.split("/")
        value = getattr(evaluations[split], metric)
        if not math.isfinite(value):
            return False
        best = self.state.best_value
        better = best is None or (value < best if self.cfg.checkpoint.best_mode == "min" else value > best)
        if better:
            self.state.best_value = value
        return better


def original_cwd() -> Path:
    """The directory the Hydra app was started in (where the user's code is), else this one."""
    return Path(HydraConfig.get().runtime.cwd) if HydraConfig.initialized() else Path.cwd()


def execute(cfg: DictConfig, overrides: list[str] | tuple[str, ...] = ()) -> RunOutcome:
    """Run `cfg` to its end in `<campaign.dir>/runs/<run_id>`; skip it if it already finished or
    another live process is writing it, refuse it (nothing written) when its `run.json` cannot be
    read and it has history. As one of several ranks, the process trains its share and rank 0 alone
    writes; every rank returns rank 0's decision to skip, and the others' outcomes say which rank
    they were."""
    validate(cfg)
    ranks = _ranks(cfg)
    rid = run_id(hparams(cfg))
    directory = run_dir(Path(cfg.campaign.dir).resolve(), rid)
    device = torch.device("cuda" if wants_cuda(cfg) else "cpu")
    with distributed.process_group(ranks, distributed.backend(str(cfg.runtime.backend), device),
                                   int(cfg.runtime.dist_timeout_min)):
        collective = Collective(ranks, distributed.rank_device(wants_cuda(cfg), ranks))
        _agree_on_the_run(collective, rid, directory)
        if not ranks.is_main:
            return _execute_rank(cfg, collective, rid, directory)
        writer = RunWriter(directory, rid, str(cfg.campaign.name), hparams(cfg), int(cfg.seed), list(overrides),
                           ranks.world_size, code_dir=original_cwd())
        try:
            return _execute(cfg, writer, collective)
        finally:
            writer.lock.release()


def _ranks(cfg: DictConfig) -> Ranks:
    """The ranks of this process: the job's (its variables checked) with `runtime.distributed`, else one.
    ConfigError for a process the job made one of several ranks that would train the run alone."""
    if cfg.runtime.distributed:
        distributed.check_environment()
        return distributed.from_environment()
    given = distributed.from_environment()
    if given.distributed:
        raise ConfigError(f"this process is rank {given.rank} of {given.world_size} (torchrun's RANK and "
                          "WORLD_SIZE, or a job of several tasks) but runtime.distributed=false, so each rank would "
                          "train the whole run alone; add runtime.distributed=true")
    return Ranks()


def _agree_on_the_run(collective: Collective, rid: str, directory: Path) -> None:
    """Every rank must train one run (its id: the semantic config) in one folder: a rank started with
    other overrides (or whose `campaign.dir` resolves elsewhere) would train other weights into rank
    0's run. ConfigError on every rank otherwise."""
    ranks = collective.ranks
    odd = collective.disagreeing(distributed.derived_seed("run", rid, directory))
    if odd:
        raise ConfigError(f"rank(s) {', '.join(map(str, odd))} were started with another run than rank 0 (rank "
                          f"{ranks.rank}: run {rid} in {directory.parent}); start every rank with the same overrides "
                          "and campaign folder")


def _tell_the_others(collective: Collective, verdict: int) -> None:
    """Rank 0 shares `verdict` on its way out; a peer already gone is logged, not raised over the
    error that ends the run."""
    try:
        collective.share(verdict)
    except Exception as exc:  # the peers may be gone already
        log.warning("could not tell the other ranks the run ended: %s", one_line(exc))


def _execute_rank(cfg: DictConfig, collective: Collective, rid: str, directory: Path) -> RunOutcome:
    """A rank other than 0: train along with rank 0 while it says go on."""
    ranks = collective.ranks
    run = Run(cfg, None, ranks, rid)
    skipped = RunOutcome(rid, RunStatus.RUNNING, directory, skipped=True, note="rank 0 writes", rank=ranks.rank)
    if collective.share(None) != CONTINUE:  # rank 0 did not open the run
        return skipped
    try:
        run.setup()
        status = run.train()
    except RankEnded as exc:
        log.info("rank %d: %s", ranks.rank, exc)
        return skipped
    except Exception as exc:  # rank 0 cannot see it: the launcher of the ranks records it
        raise RankFailed(f"rank {ranks.rank} failed in run {rid}: {one_line(exc)}") from exc
    return RunOutcome(rid, status, directory, note="rank 0 writes", rank=ranks.rank)


def _execute(cfg: DictConfig, writer: RunWriter, collective: Collective) -> RunOutcome:
    rid, directory, ranks = writer.run_id, writer.directory, collective.ranks
    try:
        opened = writer.open()
    except RunLocked as exc:
        _tell_the_others(collective, STOP)
        log.warning("run %s skipped: %s", rid, one_line(exc))
        status = writer.previous.status if writer.previous else RunStatus.RUNNING
        return RunOutcome(rid, status, directory, skipped=True, note=f"another process is writing it ({exc.holder})")
    except RunRefused as exc:
        _tell_the_others(collective, STOP)
        log.error("run %s refused: %s", rid, one_line(exc))
        return RunOutcome(rid, RunStatus.FAILED, directory, one_line(exc), skipped=True,
                          note=exc.note)
    except StoreError:  # the history cannot be read: the attempt ended failed, with the reason
        _tell_the_others(collective, STOP)
        return RunOutcome(rid, RunStatus.FAILED, directory, writer.record.error if writer.record else None)
    collective.share(CONTINUE if opened else STOP)
    if not opened:
        assert writer.record is not None
        return RunOutcome(rid, writer.record.status, directory, writer.record.error, skipped=True)
    if ranks.distributed:
        log.info("run %s: %d ranks, global batch %d (%d per rank)", rid, ranks.world_size,
                 cfg.train.batch_size, cfg.train.batch_size // ranks.world_size)
    run = Run(cfg, writer, ranks, rid)
    try:
        with preemption.guard(writer.finish):
            run.setup()
            status = run.train()
    except RunLockLost as exc:
        writer.end(exc)
        return RunOutcome(rid, RunStatus.RUNNING, directory, skipped=True, note=one_line(exc))
    except Exception as exc:
        status = writer.end(exc)
        assert writer.record is not None
        return RunOutcome(rid, status, directory, writer.record.error)
    writer.finish(status, run.divergence)
    assert writer.record is not None
    log.info("run %s %s after %d epochs (%s)%s", rid, status, writer.record.epochs_done, directory,
             f": {run.divergence}" if run.divergence else "")
    return RunOutcome(rid, status, directory, run.divergence)
