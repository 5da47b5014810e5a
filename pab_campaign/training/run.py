"""One run: build data, model and optimiser from the config, train epoch by epoch, measure with the
probes, checkpoint, resume, and keep `run.json` / `trajectory.parquet` current (the layout is `pab_campaign.store`'s).

The steps follow `setup → train → save_checkpoint → cleanup`; `execute(cfg)` runs them all and
never raises for a training error: the run ends `failed` (or `diverged`) with the error's last line
in `run.json` and its full traceback appended to `<run>/run.log`, and the sweep goes on.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from pab_campaign.errors import ConfigError, StoreError, one_line
from pab_campaign.runlock import RunLocked, RunLockLost
from pab_campaign.store import RunStatus, run_dir
from pab_campaign.training import checkpoint, preemption
from pab_campaign.training.acceleration import autocast, on_cuda, prepare_model
from pab_campaign.training.config import check_campaign_name, job_threads, undeclared_keys
from pab_campaign.training.data import SPLITS, build_dataset, check_dataset
from pab_campaign.training.data.batching import augment_generator, on_device, train_batches
from pab_campaign.training.evaluate import Evaluation, evaluate
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.models import build_model, check_model
from pab_campaign.training.objective import parse_objective
from pab_campaign.training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler
from pab_campaign.training.probes import ProbeContext
from pab_campaign.training.probes.registry import build_probes
from pab_campaign.training.run_writer import RunRefused, RunWriter
from pab_campaign.training.state import TrainingState

log = logging.getLogger(__name__)


def validate(cfg: DictConfig) -> None:
    """Refuse configs that cannot run, before anything is written. The schemas have checked every
    key and type while Hydra composed `cfg`; what is left are ranges, names and files. A sweep runs
    this on every job's config before the first job starts (`hydra.sweeper.validate`)."""
    added = undeclared_keys(cfg)
    if added:
        raise ConfigError(f"{added[0]} is not a config key (added with +?); see `python -m pab_campaign --cfg job`")
    check_campaign_name(str(cfg.campaign.name))
    parse_objective(cfg.campaign.objective)
    checks = [
        (cfg.optimizer.lr > 0, f"optimizer.lr={cfg.optimizer.lr} must be > 0, e.g. optimizer.lr=0.05"),
        (cfg.optimizer.weight_decay >= 0, f"optimizer.weight_decay={cfg.optimizer.weight_decay} must be >= 0"),
        (cfg.train.epochs >= 1, f"train.epochs={cfg.train.epochs} must be >= 1, e.g. train.epochs=10"),
        (cfg.train.batch_size >= 1, f"train.batch_size={cfg.train.batch_size} must be >= 1"),
        (cfg.runtime.device in ("cpu", "cuda", "auto"),
         f"runtime.device='{cfg.runtime.device}' must be cpu, cuda or auto"),
        (cfg.runtime.threads is None or cfg.runtime.threads >= 1,
         f"runtime.threads={cfg.runtime.threads} must be >= 1, or null for the launcher's threads"),
        (cfg.checkpoint.best_mode in ("min", "max"),
         f"checkpoint.best_mode='{cfg.checkpoint.best_mode}' must be min or max"),
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
    build_probes(OmegaConf.to_container(cfg.tracking.probes))
    try:
        check_dataset(cfg.dataset)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if cfg.runtime.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device=cuda but no CUDA device is visible; use runtime.device=cpu or auto")


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


@dataclass
class Run:
    """The state of one run between its steps; its files are written through `writer`."""

    cfg: DictConfig
    writer: RunWriter
    divergence: str | None = None

    # ---- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        torch.set_num_threads(job_threads(cfg.runtime.threads))
        wants_cuda = cfg.runtime.device == "cuda" or (cfg.runtime.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if wants_cuda else "cpu")
        if wants_cuda:
            # CPU kernels are deterministic at a fixed thread count already (the tests check it);
            # the switch imports torch._inductor (~1.5 s of start-up), so only CUDA pays for it.
            torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.data = on_device(build_dataset(cfg.dataset), self.device)
        self.model, self.step_model = prepare_model(
            build_model(cfg.model, self.data.input_shape, self.data.num_classes), self.device, cfg.runtime)
        self.optimizer = build_optimizer(cfg.optimizer, self.model)
        self.probes = build_probes(OmegaConf.to_container(cfg.tracking.probes))
        self.state = TrainingState(
            self.model, self.optimizer, build_scheduler(cfg.schedule, self.optimizer, cfg.train.epochs),
            torch.Generator().manual_seed(int(cfg.seed)), {probe.name: {} for probe in self.probes})
        self.probe_set = self.data.probe(int(cfg.tracking.probe_size))
        batchnorm = torch.nn.modules.batchnorm._BatchNorm
        self.min_batch = 2 if any(isinstance(m, batchnorm) for m in self.model.modules()) else 1
        self._resume()

    def _resume(self) -> None:
        """Continue from the latest checkpoint, if any; the writer checks the history against it and
        drops trajectory rows after its epoch (StoreError when the history lacks epochs it recorded)."""
        latest = checkpoint.latest(self.writer.directory)
        if latest is not None:
            self.state.load_state_dict(checkpoint.load(latest))
            log.info("run %s: resuming from %s (epoch %d)", self.writer.run_id, latest.name, self.state.epoch)
        self.writer.resume(self.state.epoch, self.state.recorded_epochs)

    # ---- train ---------------------------------------------------------------------------
    def train(self) -> RunStatus:
        """Measure epoch 0 (if not resumed past it), then train; returns the final status. A run that
        diverged says which value became non-finite at which epoch in `divergence` (run.json's error)."""
        epochs = int(self.cfg.train.epochs)
        if self.state.next_epoch == 0:
            self._end_epoch(0, train_loss=math.nan)
        for epoch in range(self.state.next_epoch, epochs + 1):
            started = time.monotonic()
            train_loss = self._train_epoch(epoch)
            evaluations = self._end_epoch(epoch, train_loss)
            if self.cfg.runtime.verbose:
                log.info(
                    "run %s epoch %d/%d  train loss %.4f | val loss %.4f acc %.4f | %.2fs",
                    self.writer.run_id, epoch, epochs, train_loss,
                    evaluations["val"].loss, evaluations["val"].acc, time.monotonic() - started,
                )
            bad = [f"{name}={value}" for name, value in (("train_loss", train_loss),
                                                         ("train_eval_loss", evaluations["train"].loss))
                   if not math.isfinite(value)]
            if self.cfg.train.stop_on_divergence and bad:
                self.divergence = f"non-finite loss at epoch {epoch}: {', '.join(bad)}"
                return RunStatus.DIVERGED
        return RunStatus.COMPLETED

    def _train_epoch(self, epoch: int) -> float:
        """One pass over the training split in a seeded order, augmented (when `dataset.augment`) by a
        generator derived from (seed, epoch); mean batch loss (nats), NaN if it blew up. On CUDA the
        loss is summed on the device and checked once at the end, so steps never wait for the host."""
        self.model.train()
        order = torch.randperm(len(self.data.train), generator=self.state.batch_order)
        generator = augment_generator(int(self.cfg.seed), epoch) if self.cfg.dataset.get("augment") else None
        check_each_step = not on_cuda(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        for x, y in train_batches(self.data, order, int(self.cfg.train.batch_size), self.device,
                                  self.min_batch, generator):
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self.cfg.runtime):
                loss = F.cross_entropy(self.step_model(x), y)
            if check_each_step and not torch.isfinite(loss):
                self.state.scheduler.step()
                return math.nan
            loss.backward()
            self.optimizer.step()
            total += loss.detach().double() * len(y)
            seen += len(y)
        self.state.scheduler.step()
        mean = total.item() / max(seen, 1)
        return mean if math.isfinite(mean) else math.nan

    def _end_epoch(self, epoch: int, train_loss: float) -> dict[str, Evaluation]:
        """Evaluate, probe, then persist trajectory, checkpoint and run.json for `epoch`."""
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
                                       shared=shared)
                trajectory.extend(epoch, probe.measure(context))
        self.writer.save_trajectory()
        self.save_checkpoint(epoch, evaluations)
        self.writer.record_epoch(epoch)
        return evaluations

    # ---- save_checkpoint -----------------------------------------------------------------
    def save_checkpoint(self, epoch: int, evaluations: dict[str, Evaluation]) -> None:
        """`last.pt` every epoch, `epoch_NNNN.pt` every k epochs (then prune), `best.pt` on improvement."""
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
    read and it has history."""
    validate(cfg)
    rid = run_id(hparams(cfg))
    directory = run_dir(Path(cfg.campaign.dir).resolve(), rid)
    writer = RunWriter(directory, rid, str(cfg.campaign.name), hparams(cfg), int(cfg.seed), list(overrides),
                       code_dir=original_cwd())
    try:
        return _execute(cfg, writer)
    finally:
        writer.lock.release()


def _execute(cfg: DictConfig, writer: RunWriter) -> RunOutcome:
    rid, directory = writer.run_id, writer.directory
    try:
        opened = writer.open()
    except RunLocked as exc:
        log.warning("run %s skipped: %s", rid, one_line(exc))
        status = writer.previous.status if writer.previous else RunStatus.RUNNING
        return RunOutcome(rid, status, directory, skipped=True, note=f"another process is writing it ({exc.holder})")
    except RunRefused as exc:
        log.error("run %s refused: %s", rid, one_line(exc))
        return RunOutcome(rid, RunStatus.FAILED, directory, one_line(exc), skipped=True,
                          note="its run.json cannot be read; every file kept")
    except StoreError:  # the history cannot be read: the attempt ended failed, with the reason
        return RunOutcome(rid, RunStatus.FAILED, directory, writer.record.error if writer.record else None)
    if not opened:
        assert writer.record is not None
        return RunOutcome(rid, writer.record.status, directory, writer.record.error, skipped=True)
    run = Run(cfg, writer)
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
