"""Track your own PyTorch training loop into a campaign, as our own runs are tracked.

    with Tracker("outputs/mine", {"model": "resnet", "lr": 0.1, "seed": 0}, probe_data=(x_val, y_val)) as tracker:
        start = tracker.resume(model, optimizer)          # 0 for a new run, else the epoch after the last checkpoint
        for epoch in range(start, epochs + 1):            # epoch 0 = before training
            if epoch > 0:
                train_one_epoch(model, optimizer)
            tracker.epoch(model, epoch, train_loss=..., train_acc=..., val_loss=..., val_acc=..., optimizer=optimizer,
                          val_f1=...)                     # any metric of your own: val_f1 is recorded as val/f1

The run directory is `<campaign_dir>/runs/<run_id>` with the same `run.json`, `trajectory.parquet` and
`checkpoints/` as a run of `python -m pab_campaign`, `run_id` the hash of the hyper-parameters given,
so every `pab-campaign` command reads it. After each `epoch()` the trajectory is rewritten with every
epoch so far and `last.pt` is saved every `checkpoint_every` epochs; the run ends `completed` when the
with-block ends, `failed` (with the error's line) when it raises, `preempted` when it is interrupted
(Ctrl-C, SystemExit), and `diverged` when a loss given to `epoch()` is not finite: that epoch's numbers
are kept (the blown-up model is not probed), and the with-block ends there without an error. The run
directory is written through the `RunWriter` our own runs use (`run_writer.py`), under its policies
(the lock, an unreadable run.json or history, a finished run never reopened).

The probes are those of a tracking preset (`conf/tracking/<name>.yaml`). The performance probe
records the losses and accuracies given (and the gaps between them); the others measure the model on
`probe_data` (e.g. the first examples of the validation set): class-wise accuracy (recorded under
the preset's split, `val`), prediction churn, robustness and FIM_norm; the weight spectra read the
model's Linear and Conv layers. The representation probe needs penultimate features: a model with
`features` and `head` modules gives them itself, any other model through `features(model, x)`.
Probes that lack what they need are skipped, each with a one-line notice.
Metrics of the user's own: `tracker.log(epoch=3, **{"probe/sharpness": 0.2})` or keyword scalars on
`epoch()` (`val_f1=0.8` is `val/f1`) go into the trajectory beside the probes' rows, under a name of
the `context/metric[key]` form that no probe writes; `tracker.log(step=1200, **{"train/loss": 0.3})`
goes to `steps.parquet` with the wall-clock time, written at each `epoch()` and when the run ends.
"""
from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from pab_campaign.errors import ConfigError, PabError, StoreError, one_line
from pab_campaign.store import MAX_STEP, RunStatus, StepBuffer, TrajectoryBuffer, run_dir
from pab_campaign.training import checkpoint, provenance
from pab_campaign.training.data import SPLITS, DataBundle, Split
from pab_campaign.training.evaluate import Evaluation, eval_mode
from pab_campaign.training.identity import run_id
from pab_campaign.training.models import Classifier
from pab_campaign.training.probes import ProbeContext, Row, forward_features
from pab_campaign.training.probes.hookpoints import check_hookpoints
from pab_campaign.training.probes.registry import build_probes
from pab_campaign.training.run_writer import RunWriter
from pab_campaign.training.state import TrainingState
from pab_campaign.training.tracker_inputs import (
    TRACKER_NAMES,
    check_campaign_dir,
    check_epoch_number,
    load_tracking,
    named_scalars,
    number,
    probe_split,
    scalar_name,
    user_hparams,
)

log = logging.getLogger(__name__)

# Probes that need no probe data: performance records the numbers given to `epoch()`, spectra the weights.
MODEL_ONLY_PROBES = frozenset({"performance", "spectra"})
Features = Callable[[nn.Module, torch.Tensor], torch.Tensor]
# Stand-ins where a probe reads no data: the numbers given to `epoch()` come without logits.
_NO_LOGITS, _NO_LABELS = torch.empty(0, 0), torch.empty(0, dtype=torch.long)
_NO_SPLIT = Split(torch.empty(0), _NO_LABELS)
_NO_DATA = DataBundle("none", _NO_SPLIT, _NO_SPLIT, _NO_SPLIT, 0, ())


class RunDiverged(PabError):
    """A loss given to `Tracker.epoch` is not finite: the run ended `diverged`, its trajectory kept.
    Inside the Tracker's with-block it ends the block quietly."""


# ---- the tracker ---------------------------------------------------------------------------------

class Tracker:
    """One run of a user's own training loop, written as a run of this campaign (see the module
    docstring). Use it as a context manager; `epoch()` after each epoch, `resume()` once before.

    `hparams` name the run (flat or nested; include the seed), `tracking` is a preset name or a
    mapping of probes, `probe_data` the examples the probes measure, `checkpoint_every` the epochs
    between `last.pt` checkpoints (what `resume` reads), `features(model, x)` the penultimate
    features (N × D) for the representation probe, and `epochs` the planned last epoch (probes are
    then also measured there)."""

    def __init__(self, campaign_dir: Path | str, hparams: Mapping[str, Any], tracking: str | Mapping = "default",
                 probe_data: Any = None, checkpoint_every: int = 1, *, features: Features | None = None,
                 epochs: int | None = None) -> None:
        self.campaign_dir = Path(campaign_dir).resolve()
        check_campaign_dir(self.campaign_dir)
        self.hparams = user_hparams(hparams)
        self.run_id = run_id(self.hparams)
        self.run_dir = run_dir(self.campaign_dir, self.run_id)
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every={checkpoint_every!r} must be a whole number >= 1 (epochs between "
                              "checkpoints)")
        if epochs is not None and (not isinstance(epochs, int) or epochs < 0):
            raise ConfigError(f"epochs={epochs!r} must be a whole number >= 0 (the last epoch), or None")
        if features is not None and not callable(features):
            raise ConfigError("features must be a function (model, x) -> penultimate features (N × D)")
        preset = load_tracking(tracking)
        self.checkpoint_every, self.features, self.final_epoch = checkpoint_every, features, epochs
        self.probe_set = probe_split(probe_data, int(preset.probe_size))
        probes = cast(dict[str, Any], OmegaConf.to_container(preset.probes))  # a DictConfig gives a dict
        self.probes = [p for p in build_probes(probes) if self._usable(p)]
        self.hookpoints = tuple(str(name) for name in preset.hookpoints)
        seed = self.hparams.get("seed")
        self.recorded_seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        self.seed = self.recorded_seed or 0
        self._writer = RunWriter(self.run_dir, self.run_id, self.campaign_dir.name, self.hparams, self.recorded_seed,
                                 code_dir=provenance.caller_dir())
        self.status: RunStatus | None = None
        # (context, metric) of the values the tracker and its probes record, and of the user's own: kept apart.
        # The probes' names are taken at once: a user's metric of that name was refused only when the
        # probe first came due (epoch 10 for fim), having kept the user's values until then.
        self._ours: set[tuple[str, str]] = set(TRACKER_NAMES).union(*(probe.records() for probe in self.probes))
        self._theirs: set[tuple[str, str]] = set()
        self.probe_states: dict[str, dict[str, Any]] = {}
        self.best_value: float | None = None
        self.last_epoch: int | None = None
        self._checkpointed: int | None = None
        self._parts: tuple[nn.Module, Any, Any] | None = None
        self._open = self._tracked = False
        self._noticed: set[str] = set()

    def _usable(self, probe: Any) -> bool:
        """Whether `probe` can measure here; a one-line notice when it cannot."""
        if probe.name in MODEL_ONLY_PROBES:
            return True
        if self.probe_set is None:
            log.warning("tracking: probe '%s' skipped: it measures the model on probe_data; pass "
                        "probe_data=(x, y), e.g. validation examples", probe.name)
            return False
        return True

    # ---- the run directory ---------------------------------------------------------------------
    @property
    def trajectory(self) -> TrajectoryBuffer:
        """Every row recorded so far (what `trajectory.parquet` holds)."""
        return self._writer.trajectory

    @property
    def steps(self) -> StepBuffer:
        """Every value logged per step so far (what `steps.parquet` holds)."""
        return self._writer.steps

    def __enter__(self) -> Tracker:
        """Claim the run directory through the run writer: RunLocked when another live process
        writes it, RunRefused when its run.json cannot be read and it has history, StoreError when
        its trajectory cannot be read (the run ends failed). A finished run is left as it is."""
        writing = self._writer.open()
        record = self._writer.record
        assert record is not None
        self.status = record.status
        if writing:
            self.last_epoch = max(self.trajectory.epoch) if len(self.trajectory) else None
        else:
            self.last_epoch = record.epochs_done
        self._open = True
        return self

    def _finish(self, status: RunStatus, error: str | None = None) -> None:
        """Record how the run ended (not over a new owner of its lock) and release the lock."""
        self._writer.finish(status, error)
        self._follow_record()

    def _end(self, exc: BaseException) -> None:
        """End the run after `exc`: preempted for an interruption, else failed with its line."""
        self._writer.end(exc)
        self._follow_record()

    def _follow_record(self) -> None:
        assert self._writer.record is not None
        self.status = self._writer.record.status

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: Any) -> bool:
        self._open = False
        if isinstance(exc, RunDiverged):
            return True
        if not self._writer.writing:
            return False
        if exc is not None:
            self._end(exc)
            return False
        if self.last_epoch is None:
            self._finish(RunStatus.FAILED, "no epoch was tracked; call tracker.epoch(model, epoch, ...) in the loop")
            return False
        if self._parts is not None and self._checkpointed != self.last_epoch:
            try:
                self._save_checkpoint(self.last_epoch, *self._parts)
            except BaseException as error:
                self._end(error)
                raise
        self._finish(RunStatus.COMPLETED)
        return False

    def _final(self) -> bool:
        """Whether the run has ended completed or diverged: it is never reopened, as a sweep skips it."""
        return self.status is not None and self.status.finished

    def _require_open(self, what: str) -> None:
        if not self._open:
            raise ConfigError(f"tracker.{what}() needs the tracker open: with Tracker(...) as tracker: ...")

    # ---- resume --------------------------------------------------------------------------------
    def resume(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
               scheduler: Any = None) -> int:
        """Load the last checkpoint into `model` (and `optimizer`, `scheduler`, the global RNGs and
        the probes' memory) and return the next epoch to run: 0 for a new run. Trajectory rows of
        epochs after that checkpoint are dropped, to be measured again; StoreError (every file kept)
        when the trajectory lacks epochs the checkpoint recorded. A finished run (completed or
        diverged) is final and kept whole: the epoch after its last one comes back, so the loop
        does not run again."""
        self._require_open("resume")
        if self._tracked:
            raise ConfigError("tracker.resume() goes before the first tracker.epoch() or tracker.log() of the "
                              "with-block (it drops what was recorded after the run's last checkpoint)")
        latest = checkpoint.latest(self.run_dir)
        epoch, recorded = -1, None
        if latest is not None:
            state = TrainingState(model, optimizer, scheduler)
            try:
                state.load_state_dict(checkpoint.load(latest))
            except (ValueError, RuntimeError, KeyError) as exc:
                raise StoreError(f"{latest} does not fit this model and optimizer ({one_line(exc)}); the hparams "
                                 "must name the model that wrote it, or give other hparams for a new run") from None
            self.probe_states, self.best_value, epoch = state.probe_states, state.best_value, state.epoch
            recorded, self._checkpointed = state.recorded_epochs, epoch
        if self._final():
            assert self.last_epoch is not None
            return self.last_epoch + 1
        self._writer.resume(epoch, recorded)
        self.last_epoch = epoch if epoch >= 0 else None
        return epoch + 1

    # ---- one epoch -----------------------------------------------------------------------------
    def epoch(self, model: nn.Module, epoch: int, train_loss: Any = None, train_acc: Any = None,
              val_loss: Any = None, val_acc: Any = None, test_loss: Any = None, test_acc: Any = None,
              optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None, **scalars: Any) -> None:
        """Record epoch `epoch` (0 = before training): the losses (nats) and accuracies (fractions)
        given, metrics of the user's own (`scalars`: `val_f1=0.8` is val/f1, `**{"probe/x": 1.0}`
        any name, see `log`), the preset's probes on `model`, then rewrite the trajectory (and the
        steps logged), checkpoint (every `checkpoint_every` epochs; with `optimizer` and `scheduler`
        when given) and run.json. RunDiverged (the run ends `diverged`) when a loss given is not finite."""
        self._require_open("epoch")
        if self._final():
            raise ConfigError(f"run {self.run_id} is already {self.status} ({self.run_dir}) and final; give other "
                              "hparams (e.g. more epochs) for a new run")
        self._check_epoch(epoch)
        own = self._own_rows(epoch, named_scalars(scalars))
        losses = {split: number(f"{split}_loss", value)
                  for split, value in zip(SPLITS, (train_loss, val_loss, test_loss)) if value is not None}
        accuracies = {split: number(f"{split}_acc", value, fraction=True)
                      for split, value in zip(SPLITS, (train_acc, val_acc, test_acc)) if value is not None}
        given = {split: Evaluation(losses.get(split, math.nan), accuracies.get(split, math.nan), _NO_LOGITS,
                                   _NO_LABELS) for split in SPLITS if split in losses or split in accuracies}
        bad = [f"{split}_loss={value}" for split, value in losses.items() if not math.isfinite(value)]
        rows: list[Row] = ([("train", "lr", None, float(optimizer.param_groups[0]["lr"]))]
                           if optimizer is not None else [])
        rows += self._measure(model, epoch, given, diverged=bool(bad))
        self._claim({(context, metric) for context, metric, _key, _value in rows}, ours=True)
        self._tracked = True
        self.trajectory.extend(epoch, rows + own)
        self._writer.save_trajectory()
        self._writer.save_steps()
        self.last_epoch, self._parts = epoch, (model, optimizer, scheduler)
        if bad:
            error = f"non-finite loss at epoch {epoch}: {', '.join(bad)}"
            self._writer.record_epoch(epoch)
            self._finish(RunStatus.DIVERGED, error)
            raise RunDiverged(f"run {self.run_id} diverged: {error}; its trajectory is kept in {self.run_dir}")
        self._keep_best(epoch, given.get("val"), model, optimizer, scheduler)
        if epoch % self.checkpoint_every == 0:
            self._save_checkpoint(epoch, model, optimizer, scheduler)
        self._writer.record_epoch(epoch)

    # ---- metrics of the user's own --------------------------------------------------------------
    def log(self, epoch: int | None = None, step: int | None = None, **scalars: Any) -> None:
        """Record metrics of the user's own, named `context/metric[key]` (`tracker.log(epoch=3,
        **{"val/f1": 0.8, "weights/norm[fc1]": 2.5})`; a keyword `val_f1` is val/f1): with `epoch`
        alone, into the trajectory at that epoch (the epoch just given to `epoch()` or a later one);
        with `step`, into `steps.parquet` with the wall-clock time (in `epoch` when given, else in the
        epoch being trained). Values are numbers (0-d tensors accepted; NaN kept as not measured)."""
        self._require_open("log")
        if self._final():
            raise ConfigError(f"run {self.run_id} is already {self.status} ({self.run_dir}) and final; nothing logged")
        if not scalars:
            raise ConfigError("tracker.log() needs metrics: tracker.log(epoch=3, **{'val/f1': 0.8}) or val_f1=0.8")
        named = named_scalars(scalars)
        self._tracked = True
        if step is None:
            if epoch is None:
                raise ConfigError("tracker.log() needs epoch= (into the trajectory) or step= (into steps.parquet)")
            self._check_log_epoch(epoch)
            rows = self._own_rows(epoch, named)
            self.trajectory.extend(epoch, rows)
            self._writer.save_trajectory()
            return
        if not isinstance(step, numbers.Integral) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
            raise ConfigError(f"step={step!r} must be a whole number from 0 to 2**63 - 1 (the training step, e.g. the "
                              "batch count)")
        if epoch is not None:
            self._check_log_epoch(epoch)
        in_epoch = epoch if epoch is not None else (0 if self.last_epoch is None else self.last_epoch + 1)
        now = time.time()
        for context, metric, key, value in self._own_rows(in_epoch, named, per_step=True):
            self.steps.add(int(step), in_epoch, now, context, metric, value, key)

    def _check_log_epoch(self, epoch: Any) -> None:
        check_epoch_number(epoch)
        if self.last_epoch is not None and epoch < self.last_epoch:
            raise ConfigError(f"epoch {epoch} is over: {self.run_dir} holds epochs up to {self.last_epoch}; log the "
                              "epoch just recorded or a later one")

    def _own_rows(self, epoch: int, named: dict[str, Any], per_step: bool = False) -> list[Row]:
        """(context, metric, key, value) rows of the user's metrics; ConfigError for a bad name, a
        value that is not a number, and (per epoch) a name the tracker or its probes record or a value
        recorded already at this epoch."""
        rows: list[Row] = []
        for name, value in named.items():
            context, metric, key = scalar_name(name)
            rows.append((context, metric, key, number(name, value)))
        if not per_step:  # steps.parquet holds the user's values alone: train/loss per step is theirs to log
            self._claim({(context, metric) for context, metric, _key, _value in rows}, ours=False)
            recorded = {(c, m, k) for e, c, m, k in zip(self.trajectory.epoch, self.trajectory.context,
                                                          self.trajectory.metric, self.trajectory.key) if e == epoch}
            again = [f"{c}/{m}" + (f"[{k}]" if k else "") for c, m, k, _v in rows if (c, m, k) in recorded]
            if again:
                raise ConfigError(f"{', '.join(again)} already recorded at epoch {epoch}; one value per metric and "
                                  "epoch (per-step values go to tracker.log(step=...))")
        return rows

    def _claim(self, names: set[tuple[str, str]], ours: bool) -> None:
        """Keep the tracker's metric names and the user's apart; ConfigError naming a clash."""
        other = self._theirs if ours else self._ours
        clash = sorted(names & other)
        if clash:
            context, metric = clash[0]
            raise ConfigError(f"'{context}/{metric}' is recorded by the tracker or its probes; name your own metric "
                              "otherwise (e.g. val/f1, probe/sharpness), or give losses and accuracies as "
                              "tracker.epoch(..., val_loss=..., val_acc=...)")
        (self._ours if ours else self._theirs).update(names)

    def _check_epoch(self, epoch: Any) -> None:
        check_epoch_number(epoch)
        if self.last_epoch is not None and epoch <= self.last_epoch:
            what = "is already recorded" if epoch == self.last_epoch else "goes backwards"
            raise ConfigError(f"epoch {epoch} {what}: {self.run_dir} holds epochs up to {self.last_epoch}; epochs must "
                              "increase (after a restart, start = tracker.resume(model, optimizer) is the next one)")

    def _measure(self, model: nn.Module, epoch: int, given: dict[str, Evaluation], diverged: bool) -> list[Row]:
        """Rows of every probe due at `epoch`: performance on the numbers given, the others on the
        probe data (one shared forward pass); only performance once the run has `diverged`."""
        due = [p for p in self.probes if p.due(epoch, -1 if self.final_epoch is None else self.final_epoch)
               and (p.name == "performance" or not diverged)]
        rows: list[Row] = []
        if not any(p.name not in MODEL_ONLY_PROBES for p in due):
            for probe in due:
                rows += probe.measure(ProbeContext(epoch, model, _NO_DATA, _NO_SPLIT, given, seed=self.seed))
            return rows
        assert self.probe_set is not None
        features, logits = self._forward(model)
        labels = self.probe_set.y
        data = DataBundle("probe_data", self.probe_set, self.probe_set, self.probe_set, logits.shape[1],
                          tuple(self.probe_set.x.shape[1:]))
        measured = {split: Evaluation(e.loss, e.acc, logits, labels) for split, e in given.items()}
        shared = {"probe_outputs": (features, logits)}
        if self.hookpoints:
            check_hookpoints(model, self.hookpoints)
        for probe in due:
            hooked = probe.name == "representation" and bool(self.hookpoints)
            if probe.uses_features and features is None and not hooked:
                if probe.name not in self._noticed:
                    self._noticed.add(probe.name)
                    log.warning("tracking: probe '%s' skipped: it needs penultimate features, and %s has no "
                                "`features` and `head` modules; pass features=lambda model, x: ... (N × D)",
                                probe.name, type(model).__name__)
                continue
            evaluations = given if probe.name == "performance" else measured
            split = getattr(probe, "split", None)
            if split is not None and split not in evaluations:
                evaluations = {**evaluations, split: Evaluation(math.nan, math.nan, logits, labels)}
            context = ProbeContext(epoch, model, data, self.probe_set, evaluations,
                                   self.probe_states.setdefault(probe.name, {}), seed=self.seed, shared=shared,
                                   hookpoints=self.hookpoints)
            rows += probe.measure(context)
        return rows

    @torch.no_grad()
    def _forward(self, model: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(penultimate features N × D or None, logits N × C) of the probe data, eval mode, float32 on CPU."""
        assert self.probe_set is not None
        x = self.probe_set.x
        if self.features is None and isinstance(model, Classifier):
            return forward_features(model, x)
        features_of = self.features or (_features_module if _has_features_and_head(model) else None)
        device = next(model.parameters()).device
        feature_chunks, logit_chunks = [], []
        with eval_mode(model):
            for start in range(0, len(x), 512):
                batch = x[start:start + 512].to(device)
                logit_chunks.append(model(batch).float().cpu())
                if features_of is not None:
                    feature_chunks.append(torch.as_tensor(features_of(model, batch)).flatten(1).float().cpu())
        features = torch.cat(feature_chunks) if feature_chunks else None
        if features is not None and len(features) != len(x):
            raise ConfigError(f"features(model, x) gave {len(features)} rows for {len(x)} examples; it must give one "
                              "row of penultimate features per example")
        return features, torch.cat(logit_chunks)

    # ---- checkpoints ---------------------------------------------------------------------------
    def _state(self, epoch: int, model: nn.Module, optimizer: Any, scheduler: Any) -> dict[str, Any]:
        return TrainingState(model, optimizer, scheduler, None, self.probe_states, epoch, self.best_value,
                             self._writer.recorded_epochs()).state_dict()

    def _save_checkpoint(self, epoch: int, model: nn.Module, optimizer: Any, scheduler: Any) -> None:
        """`last.pt`: what `resume` reads."""
        checkpoint.save(checkpoint.checkpoint_dir(self.run_dir) / checkpoint.LAST,
                        self._state(epoch, model, optimizer, scheduler))
        self._checkpointed = epoch

    def _keep_best(self, epoch: int, val: Evaluation | None, model: nn.Module, optimizer: Any, scheduler: Any) -> None:
        """`best.pt` whenever the val loss given reaches a new minimum."""
        if val is None or not math.isfinite(val.loss) or (self.best_value is not None and val.loss >= self.best_value):
            return
        self.best_value = val.loss
        checkpoint.save(checkpoint.checkpoint_dir(self.run_dir) / checkpoint.BEST,
                        self._state(epoch, model, optimizer, scheduler))


# ---- the one-call case ---------------------------------------------------------------------------
def _loader(data: Any, batch_size: int, generator: torch.Generator | None = None) -> torch.utils.data.DataLoader:
    dataset = torch.utils.data.TensorDataset(*data) if isinstance(data, (tuple, list)) else data
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=generator is not None,
                                       generator=generator)


@torch.no_grad()
def _evaluate(model: nn.Module, data: Any, criterion: Callable, batch_size: int) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` in eval mode over every example of `data`."""
    device = next(model.parameters()).device
    total, correct, seen = 0.0, 0, 0
    with eval_mode(model):
        for x, y in _loader(data, batch_size):
            x, y = x.to(device), y.to(device)
            logits = model(x)
            total += float(criterion(logits, y)) * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            seen += len(y)
    return total / max(seen, 1), correct / max(seen, 1)


def track_learning_curve(model: nn.Module, train_data: Any, val_data: Any, epochs: int, batch_size: int, *,
                         campaign_dir: Path | str = "outputs/tracked", hparams: Mapping[str, Any] | None = None,
                         optimizer: torch.optim.Optimizer | None = None, criterion: Callable | None = None,
                         tracking: str | Mapping = "default", probe_data: Any = None,
                         features: Features | None = None, checkpoint_every: int = 1, seed: int = 0) -> Tracker:
    """Train `model` for `epochs` epochs and track every epoch (0 = before training) into
    `campaign_dir`; an interrupted run with the same hparams resumes. `train_data`/`val_data` are
    (x, y) tensors or Datasets; the optimiser defaults to Adam (lr 1e-3) and the loss to
    cross-entropy; batches are shuffled by a generator seeded from (`seed`, epoch). The train loss
    and accuracy are measured in eval mode over the whole training set, as our runs do. Returns the
    closed Tracker (`run_dir`, `status`)."""
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = criterion or F.cross_entropy
    params = {"model": type(model).__name__, "optimizer": type(optimizer).__name__,
              "lr": optimizer.param_groups[0]["lr"], "epochs": epochs, "batch_size": batch_size, "seed": seed,
              **(hparams or {})}
    with Tracker(campaign_dir, params, tracking, val_data if probe_data is None else probe_data, checkpoint_every,
                 features=features, epochs=epochs) as tracker:
        device = next(model.parameters()).device
        for epoch in range(tracker.resume(model, optimizer), epochs + 1):
            if epoch > 0:
                model.train()
                order = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
                for x, y in _loader(train_data, batch_size, order):
                    optimizer.zero_grad(set_to_none=True)
                    loss = criterion(model(x.to(device)), y.to(device))
                    loss.backward()
                    optimizer.step()
            train_loss, train_acc = _evaluate(model, train_data, criterion, batch_size)
            val_loss, val_acc = _evaluate(model, val_data, criterion, batch_size)
            tracker.epoch(model, epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                          val_acc=val_acc, optimizer=optimizer)
    return tracker


def _has_features_and_head(model: nn.Module) -> bool:
    """Whether `model` has `features` and `head` modules (its penultimate features: `features(x)`)."""
    return isinstance(getattr(model, "features", None), nn.Module) and isinstance(getattr(model, "head", None),
                                                                                  nn.Module)


def _features_module(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The penultimate features of a model with a `features` module. Its logits come from `model(x)`:
    its forward may pool or reshape between `features` and `head`."""
    return model.get_submodule("features")(x)
