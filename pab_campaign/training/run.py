"""One run: build data, model and optimiser from the config, train epoch by epoch, measure with the
probes, checkpoint, resume, and keep `run.json` / `trajectory.parquet` current (the layout is `pab_campaign.store`'s).

The steps follow `setup → train → save_checkpoint → cleanup`; `execute(cfg)` runs them all and
never raises for a training error: the run ends `failed` (or `diverged`) with the error's last line
in `run.json` and its full traceback appended to `<run>/run.log`, and the sweep goes on.

One writer at a time: `execute` holds the run's `RunLock` from before it reads `run.json` until
the run's last write. A run another live process is writing is skipped and said so; a finished
run is never reopened. A run whose trajectory cannot be read back is not resumed over it: it ends
`failed` with the reason and every file is kept.
"""
from __future__ import annotations

import logging
import math
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F

from pab_campaign.errors import ConfigError, StoreError, one_line
from pab_campaign.runlock import RunLock, RunLocked, RunLockLost
from pab_campaign.store import (
    RUN_JSON,
    RUN_LOG,
    RunRecord,
    RunStatus,
    TrajectoryBuffer,
    read_run_json,
    read_trajectory,
    remove_stale_temps,
    run_dir,
    write_run_json,
    write_trajectory,
)
from pab_campaign.training import checkpoint, preemption, provenance
from pab_campaign.training.acceleration import autocast, on_cuda, prepare_model
from pab_campaign.training.config import check_campaign_dir, check_campaign_name, job_threads, undeclared_keys
from pab_campaign.training.data import SPLITS, build_dataset, check_dataset
from pab_campaign.training.data.batching import augment_generator, on_device, train_batches
from pab_campaign.training.evaluate import Evaluation, evaluate
from pab_campaign.training.identity import hparams, run_id
from pab_campaign.training.models import build_model, check_model
from pab_campaign.training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_scheduler
from pab_campaign.training.probes import ProbeContext
from pab_campaign.training.probes.registry import build_probes
from pab_campaign.training.state import TrainingState

log = logging.getLogger(__name__)


def validate(cfg: DictConfig) -> None:
    """Refuse configs that cannot run, before anything is written. The schemas have checked every
    key and type while Hydra composed `cfg`; what is left are ranges, names and files. A sweep runs
    this on every job's config before the first job starts (`hydra.sweeper.validate`)."""
    added = undeclared_keys(cfg)
    if added:
        raise ConfigError(f"{added[0]} is not a config key (added with +?); see `python -m pab_campaign --cfg job`")
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} has no value: give it in your config (a preset of your own must set every "
                          f"key of its schema) or on the command line, e.g. {missing[0]}=...")
    check_campaign_name(str(cfg.campaign.name))
    check_campaign_dir(str(cfg.campaign.dir))
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
    """The state of one run between its steps."""

    cfg: DictConfig
    directory: Path
    record: RunRecord
    lock: RunLock
    trajectory: TrajectoryBuffer = field(default_factory=TrajectoryBuffer)
    attempt_started: float = field(default_factory=time.monotonic)
    previous_duration: float = 0.0

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
        """Continue from the latest checkpoint, if any, dropping trajectory rows after its epoch."""
        latest = checkpoint.latest(self.directory)
        if latest is None:
            return
        self.state.load_state_dict(checkpoint.load(latest))
        self.trajectory = self._history(self.state.epoch)
        self.trajectory.truncate_after(self.state.epoch)
        log.info("run %s: resuming from %s (epoch %d)", self.record.run_id, latest.name, self.state.epoch)

    def _history(self, epoch: int) -> TrajectoryBuffer:
        """The trajectory a resume from `epoch` continues: it must be readable and hold every epoch
        0..`epoch`, or the run would go on with a history cut short. StoreError otherwise (the file is
        left as it is)."""
        advice = ("the run was not resumed over it (every file kept); restore the file, or move the run "
                  "directory aside to train the run from scratch")
        try:
            buffer = TrajectoryBuffer.from_table(read_trajectory(self.directory))
        except StoreError as exc:
            raise StoreError(f"{exc}; {advice}") from None
        missing = sorted(set(range(epoch + 1)) - set(buffer.epoch))
        if missing:
            raise StoreError(f"{self.directory / 'trajectory.parquet'} lacks epochs {missing[:5]}"
                             f"{'...' if len(missing) > 5 else ''} that the checkpoint of epoch {epoch} "
                             f"follows; {advice}")
        return buffer

    # ---- train ---------------------------------------------------------------------------
    def train(self) -> RunStatus:
        """Measure epoch 0 (if not resumed past it), then train; returns the final status."""
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
                    self.record.run_id, epoch, epochs, train_loss,
                    evaluations["val"].loss, evaluations["val"].acc, time.monotonic() - started,
                )
            if self.cfg.train.stop_on_divergence and not (
                math.isfinite(train_loss) and math.isfinite(evaluations["train"].loss)
            ):
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
        self.trajectory.add(epoch, "train", "lr", self.optimizer.param_groups[0]["lr"])
        if epoch > 0:
            self.trajectory.add(epoch, "train", "batch_loss", train_loss)
        shared: dict[str, Any] = {}
        for probe in self.probes:
            if probe.due(epoch, final_epoch):
                context = ProbeContext(epoch, self.model, self.data, self.probe_set, evaluations,
                                       self.state.probe_states.setdefault(probe.name, {}), seed=int(self.cfg.seed),
                                       shared=shared)
                self.trajectory.extend(epoch, probe.measure(context))
        self.lock.verify()
        write_trajectory(self.directory, self.trajectory.to_table())
        self.save_checkpoint(epoch, evaluations)
        self.record.epochs_done = epoch
        self.record.duration_s = self.previous_duration + time.monotonic() - self.attempt_started
        write_run_json(self.directory, self.record)
        return evaluations

    # ---- save_checkpoint -----------------------------------------------------------------
    def save_checkpoint(self, epoch: int, evaluations: dict[str, Evaluation]) -> None:
        """`last.pt` every epoch, `epoch_NNNN.pt` every k epochs (then prune), `best.pt` on improvement."""
        ckpt = self.cfg.checkpoint
        improved = self._improves_best(evaluations)
        self.state.epoch = epoch
        state = self.state.state_dict()
        directory = checkpoint.checkpoint_dir(self.directory)
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

    # ---- cleanup -------------------------------------------------------------------------
    def finish(self, status: RunStatus, error: str | None = None) -> None:
        """Record how the run ended, unless its lock was taken over (then another writer owns it)."""
        if not self.lock.held():
            log.error("run %s: lock lost, %s not recorded", self.record.run_id, status)
            return
        self.record.status, self.record.error, self.record.ended_at = RunStatus(status), error, provenance.now()
        self.record.duration_s = self.previous_duration + time.monotonic() - self.attempt_started
        write_run_json(self.directory, self.record)


def _previous_record(directory: Path) -> RunRecord | None:
    if not (directory / RUN_JSON).exists():
        return None
    try:
        return read_run_json(directory)
    except StoreError:
        return None


def _log_traceback(directory: Path, rid: str, exc: BaseException) -> None:
    """Append the full traceback of `exc` to `<run>/run.log` (run.json keeps its last line)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        with open(directory / RUN_LOG, "a") as handle:
            handle.write(f"--- {provenance.now()} run {rid} failed\n{text}")
    except OSError as error:
        log.error("run %s: could not write %s (%s)", rid, directory / RUN_LOG, error)


def execute(cfg: DictConfig, overrides: list[str] | tuple[str, ...] = ()) -> RunOutcome:
    """Run `cfg` to its end in `<campaign.dir>/runs/<run_id>`; skip it if it already finished or
    another live process is writing it."""
    validate(cfg)
    rid = run_id(hparams(cfg))
    directory = run_dir(Path(cfg.campaign.dir).resolve(), rid)
    previous = _previous_record(directory)
    if previous and previous.status.finished:
        log.info("run %s already %s, skipped (%s)", rid, previous.status, directory)
        return RunOutcome(rid, previous.status, directory, previous.error, skipped=True)
    lock = RunLock(directory)
    try:
        lock.acquire()
    except RunLocked as exc:
        log.warning("run %s skipped: %s", rid, one_line(exc))
        return RunOutcome(rid, previous.status if previous else RunStatus.RUNNING, directory, skipped=True,
                          note=f"another process is writing it ({exc.holder})")
    try:
        return _execute_locked(cfg, rid, directory, list(overrides), lock)
    finally:
        lock.release()


def _execute_locked(cfg: DictConfig, rid: str, directory: Path, overrides: list[str], lock: RunLock) -> RunOutcome:
    """`execute` once the run's lock is held: read the record again (another writer may have just
    finished the run), clear temp files a killed writer left, then run."""
    if lock.took_over is not None:
        log.warning("run %s: took over the stale lock of %s", rid, lock.took_over.describe())
    previous = _previous_record(directory)
    if previous and previous.status.finished:
        log.info("run %s already %s, skipped (%s)", rid, previous.status, directory)
        return RunOutcome(rid, previous.status, directory, previous.error, skipped=True)
    for folder in (directory, checkpoint.checkpoint_dir(directory)):
        remove_stale_temps(folder)
    record = provenance.start_record(rid, str(cfg.campaign.name), hparams(cfg), int(cfg.seed), overrides, previous)
    write_run_json(directory, record)
    run = Run(cfg, directory, record, lock, previous_duration=record.duration_s)
    try:
        with preemption.guard(run.finish):
            run.setup()
            status = run.train()
    except RunLockLost as exc:
        log.error("run %s: %s", rid, one_line(exc))
        return RunOutcome(rid, RunStatus.RUNNING, directory, skipped=True, note=one_line(exc))
    except Exception as exc:
        error = f"{type(exc).__name__}: {one_line(exc)}"
        log.error("run %s failed: %s (traceback in %s)", rid, error, directory / RUN_LOG)
        _log_traceback(directory, rid, exc)
        run.finish(RunStatus.FAILED, error)
        return RunOutcome(rid, RunStatus.FAILED, directory, error)
    run.finish(status)
    log.info("run %s %s after %d epochs (%s)", rid, status, record.epochs_done, directory)
    return RunOutcome(rid, status, directory)
