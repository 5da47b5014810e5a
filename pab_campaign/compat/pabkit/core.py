"""pabkit's `ProcessAwareBenchmark` over our Tracker: each `track_epoch` is a `Tracker.epoch` of one
run under `checkpoint_dir` (a campaign directory: `runs/<run_id>/run.json, trajectory.parquet,
checkpoints/`), so every `pab-campaign` command reads what a pabkit loop tracked.

- `save_frequency`: `checkpoints/epoch_NNNN.pt` every k epochs (epoch % k == 0), as pabkit saves,
  in our checkpoint format (model, optimizer when given, RNG states; `torch.load(weights_only=True)`).
- `metrics`: pabkit's dict of lists, read back from the run's trajectory (one entry per tracked
  epoch): `train_loss, val_loss, train_acc, val_acc`, `stability` (pabkit's learning stability,
  over the epochs after training began, t ≥ 1, as `evaluate_trajectory` reads it),
  `gen_efficiency` (val − train loss), `rule_evolution` (1 − linear CKA of the penultimate
  features with the previous measurement: our representation shift, not pabkit's formula),
  `class_accuracy` ({class: list}) and `adversarial_robustness` (PGD accuracy at the first ε).
  Ours: `epochs`, the epoch of every entry of each list (for `class_accuracy`, {class: epochs}),
  since class and adversarial accuracies may be measured at some epochs only; `plot_pab_summary`
  draws them there. A new dict each time it is read: change it by tracking epochs. Set it (pabkit's
  lists, e.g. logged elsewhere) before any epoch is tracked to evaluate those lists instead: their
  epochs are 1, 2, ...
- A loss that is not finite ends the run `diverged` (its trajectory is kept) and stops the tracking
  with a warning; pabkit's loop goes on, so later `track_epoch` calls are accepted and not recorded.
- `evaluate_trajectory()` / `summarize()`: our process summary (`analysis.summary.trajectory`)
  under pabkit's keys and in its text layout.
- The run ends `completed` at `close()` (or the end of a `with` block, or of the program); `failed`
  when the program ends with an uncaught exception. A program that ends with `sys.exit(1)` outside a
  `with` block is recorded `completed`: an exit code is not visible to the handlers that run at exit.
"""
from __future__ import annotations

import atexit
import datetime
import logging
import math
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from pab_campaign.analysis.summary.trajectory import learning_stability, summarize_run
from pab_campaign.store import RunStatus, atomic_write, read_trajectory
from pab_campaign.training import checkpoint
from pab_campaign.training import tracker as tracking

log = logging.getLogger(__name__)
THRESHOLD = 0.8  # class learned, as pabkit's evaluate_trajectory


class ProcessAwareBenchmark:
    """pabkit's benchmark of one training run (see the module docstring).

    Beyond pabkit's arguments (keyword-only): `hparams` name the run (default: the model's class and
    the start time, so each object is a new run; give them to resume a run after a restart),
    `probe_data=(x, y)` the examples our probes measure (class-wise accuracy, churn, CKA,
    robustness), `tracking` a preset (default `full` with `track_representations`, else
    `default`), and `features(model, x)` the penultimate features (N × D) of a model without
    `features` and `head` modules (pabkit's `feature_extractor` in our form).

    Examples
    --------
    >>> import tempfile, torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> folder = tempfile.mkdtemp()
    >>> with ProcessAwareBenchmark(checkpoint_dir=folder, save_frequency=2, track_representations=False) as pab:
    ...     for epoch in range(1, 5):
    ...         pab.track_epoch(model, epoch, train_loss=1 / epoch, val_loss=1.2 / epoch + 0.05 * epoch,
    ...                         train_acc=0.5 + 0.1 * epoch, val_acc=0.45 + 0.1 * epoch)
    >>> [round(v, 2) for v in pab.metrics["val_loss"]]
    [1.25, 0.7, 0.55, 0.5]
    >>> sorted(p.name for p in (pab.run_dir / "checkpoints").glob("epoch_*.pt"))
    ['epoch_0002.pt', 'epoch_0004.pt']
    >>> pab.evaluate_trajectory()["generalization"]["early_stopping_epoch"]
    4
    >>> print(pab.summarize().splitlines()[0])
    Process-Aware Benchmarking (PAB) Summary
    """

    tracker: tracking.Tracker | None  # opened by the first track_epoch

    def __init__(self, checkpoint_dir: str | Path = "./pab_checkpoints", save_frequency: int = 5,
                 track_representations: bool = True, *, hparams: Mapping[str, Any] | None = None,
                 probe_data: Any = None, tracking: str | Mapping | None = None,
                 features: tracking.Features | None = None) -> None:
        if not isinstance(save_frequency, int) or isinstance(save_frequency, bool) or save_frequency < 1:
            raise ValueError(f"save_frequency={save_frequency!r} must be a whole number >= 1 (epochs between "
                             "checkpoints)")
        self.checkpoint_dir, self.save_frequency = Path(checkpoint_dir), save_frequency
        self.track_representations = track_representations
        self.hparams, self.probe_data = dict(hparams) if hparams is not None else None, probe_data
        self.features = features
        self.tracking = tracking or ("full" if track_representations else "default")
        self.tracker = None
        self._given: dict[str, Any] = {"class_accuracy": {}, "adversarial_robustness": []}
        self._assigned: pd.DataFrame | None = None  # the trajectory of metrics set by the user
        self._closed = False

    # ---- the run ------------------------------------------------------------------------------
    def _open(self, model: nn.Module) -> tracking.Tracker:
        if self.tracker is None:
            started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
            hparams = self.hparams or {"model": type(model).__name__, "pabkit_run": started}
            self.tracker = tracking.Tracker(self.checkpoint_dir, hparams, self.tracking, self.probe_data,
                                            self.save_frequency, features=self.features)
            self.tracker.__enter__()
            atexit.register(self._close_at_exit)
        return self.tracker

    @property
    def run_dir(self) -> Path:
        """The run directory (`<checkpoint_dir>/runs/<run_id>`); ValueError before the first epoch."""
        if self.tracker is None:
            raise ValueError("no epoch tracked yet: call track_epoch(model, epoch, ...) first")
        return self.tracker.run_dir

    def resume(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None) -> int:
        """Before the first epoch (ours; pabkit has none): load the run's last checkpoint into `model`
        (and `optimizer`, `scheduler`) and return the next epoch to track, 0 for a new run. Give
        `hparams` so that a restarted program finds the same run."""
        return self._open(model).resume(model, optimizer, scheduler)

    def close(self, error: BaseException | None = None) -> None:
        """End the run: `completed`, or `failed` with `error`'s line. Idempotent."""
        if self.tracker is not None and not self._closed:
            self._closed = True
            self.tracker.__exit__(type(error) if error else None, error, None)

    def _close_at_exit(self) -> None:
        self.close(getattr(sys, "last_value", None))

    def __enter__(self) -> ProcessAwareBenchmark:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        self.close(exc)

    # ---- one epoch ----------------------------------------------------------------------------
    def track_epoch(self, model: nn.Module, epoch: int, train_loss: float, val_loss: float, train_acc: float,
                    val_acc: float, class_accuracies: Mapping[int, float] | None = None,
                    adversarial_acc: float | None = None, feature_extractor: Any = None, *,
                    optimizer: torch.optim.Optimizer | None = None) -> None:
        """Track epoch `epoch` (pabkit's arguments; losses in nats, accuracies as fractions in [0, 1]).
        Class accuracies and an adversarial accuracy given are kept in `metrics` beside what our
        probes measure; `feature_extractor` is not used (our representation probe reads the
        penultimate features of `probe_data`)."""
        if self._assigned is not None:
            raise ValueError("metrics were set on this benchmark, so it evaluates those lists; track epochs with a "
                             "new ProcessAwareBenchmark")
        if self.tracker is not None and self.tracker.status == RunStatus.DIVERGED:
            return
        if not isinstance(model, nn.Module):
            raise ValueError(f"track_epoch: model must be a torch.nn.Module, not {type(model).__name__} (the "
                             "checkpoints and probes read its weights)")
        if feature_extractor is not None and "feature_extractor" not in self._given:
            self._given["feature_extractor"] = True
            log.warning("pabkit: feature_extractor is not used; pass probe_data=(x, y) and features=lambda model, "
                        "x: ... to ProcessAwareBenchmark for the representation probe (linear CKA)")
        tracker = self._open(model)
        diverged = None
        try:
            tracker.epoch(model, epoch, train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                          val_acc=val_acc, optimizer=optimizer)
        except tracking.RunDiverged as exc:
            diverged = exc
        for class_id, accuracy in (class_accuracies or {}).items():
            self._given["class_accuracy"].setdefault(class_id, []).append((epoch, float(accuracy)))
        if adversarial_acc is not None:
            self._given["adversarial_robustness"].append((epoch, float(adversarial_acc)))
        if diverged is not None:
            log.warning("pabkit: %s; tracking stopped, later epochs are not recorded", diverged)
            return
        if epoch % self.save_frequency == 0:
            folder = checkpoint.checkpoint_dir(tracker.run_dir)
            atomic_write(folder / checkpoint.numbered_name(epoch),
                         lambda tmp: shutil.copyfile(folder / checkpoint.LAST, tmp))

    # ---- reading back -------------------------------------------------------------------------
    def trajectory(self) -> pd.DataFrame:
        """The run's tidy trajectory (`epoch, context, metric, key, value`); empty before any epoch
        (the set metrics' rows when `metrics` was set)."""
        if self._assigned is not None:
            return self._assigned
        if self.tracker is None:
            return pd.DataFrame(columns=["epoch", "context", "metric", "key", "value"])
        return read_trajectory(self.tracker.run_dir).to_pandas()

    @property
    def metrics(self) -> dict[str, Any]:
        """pabkit's dict of lists, one entry per tracked epoch (see the module docstring)."""
        return _metrics(self.trajectory(), self._given)

    @metrics.setter
    def metrics(self, metrics: Mapping[str, Any]) -> None:
        if self.tracker is not None:
            raise ValueError("metrics are read from the epochs tracked; set them only on a new ProcessAwareBenchmark "
                             "(to evaluate pabkit's lists logged elsewhere)")
        self._assigned, self._given = _from_lists(metrics)

    def evaluate_trajectory(self) -> dict[str, dict]:
        """Our process summary under pabkit's keys; {} with fewer than 2 epochs tracked."""
        return _evaluation(self.trajectory(), self._given)

    def summarize(self) -> str:
        """pabkit's text summary of `evaluate_trajectory()`, with our recommendations."""
        return _summary_text(self.trajectory(), self._given)


# ---- pabkit's views of a trajectory ------------------------------------------------------------
def _series(frame: pd.DataFrame, context: str, metric: str, key: str | None = None) -> pd.Series:
    rows = frame[(frame["context"] == context) & (frame["metric"] == metric)]
    rows = rows[rows["key"].isna()] if key is None else rows[rows["key"] == key]
    return rows.groupby("epoch")["value"].last().sort_index().astype(float)


def _robustness_key(frame: pd.DataFrame) -> tuple[str, str] | None:
    """(metric, ε key) of the adversarial accuracy pabkit reports: PGD at the first ε, else FGSM."""
    for metric in ("pgd_acc", "fgsm_acc"):
        keys = sorted(frame.loc[(frame["context"] == "probe") & (frame["metric"] == metric), "key"].dropna().unique())
        if keys:
            return metric, str(keys[0])
    return None


def _metrics(frame: pd.DataFrame, given: Mapping[str, Any]) -> dict[str, Any]:
    """pabkit's lists, and under `epochs` the epoch of each entry of each list (a list of epochs per
    list, a dict of them for `class_accuracy`), which the summary plot draws them at."""
    val_loss, train_loss = _series(frame, "val", "loss"), _series(frame, "train", "loss")
    classes = sorted(frame.loc[(frame["context"] == "val") & (frame["metric"] == "class_acc"), "key"].dropna().unique(),
                     key=lambda k: (len(str(k)), str(k)))
    class_accuracy = {_class_id(k): _series(frame, "val", "class_acc", k) for k in classes}
    class_accuracy |= {class_id: _pairs(pairs) for class_id, pairs in given["class_accuracy"].items()}
    robustness = _robustness_key(frame)
    adversarial = _pairs(given["adversarial_robustness"]) if given["adversarial_robustness"] else (
        _series(frame, "probe", *robustness) if robustness else pd.Series(dtype=float))
    lists = {
        "train_loss": train_loss, "val_loss": val_loss,
        "train_acc": _series(frame, "train", "acc"), "val_acc": _series(frame, "val", "acc"),
        "stability": learning_stability(_trained(val_loss)),
        "gen_efficiency": (val_loss - train_loss).dropna().iloc[1:],
        "rule_evolution": 1.0 - _series(frame, "probe", "cka_prev"),
        "adversarial_robustness": adversarial,
    }
    return {**{name: series.tolist() for name, series in lists.items()},
            "class_accuracy": {class_id: series.tolist() for class_id, series in class_accuracy.items()},
            "epochs": {**{name: [int(e) for e in series.index] for name, series in lists.items()},
                       "class_accuracy": {class_id: [int(e) for e in series.index]
                                          for class_id, series in class_accuracy.items()}}}


def _pairs(pairs: list[tuple[int, float]]) -> pd.Series:
    """(epoch, value) pairs given to `track_epoch` as a series over their epochs."""
    return pd.Series([value for _, value in pairs], index=[epoch for epoch, _ in pairs], dtype=float)


def _trained(series: pd.Series) -> pd.Series:
    """The epochs after training began (≥ 1), which the process summary reads."""
    return series[series.index >= 1]


def _class_id(key: Any) -> Any:
    text = str(key)
    return int(text) if text.lstrip("-").isdigit() else text


def _from_lists(metrics: Mapping[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """pabkit's dict of lists as a trajectory at epochs 1, 2, ... (losses and accuracies; the lists
    it derives from them are derived again) and the class and adversarial accuracies as given."""
    rows = [(epoch, context, metric, None, float(value))
            for name, (context, metric) in {"train_loss": ("train", "loss"), "val_loss": ("val", "loss"),
                                            "train_acc": ("train", "acc"), "val_acc": ("val", "acc")}.items()
            for epoch, value in enumerate(metrics.get(name, []), start=1)]
    given = {"class_accuracy": {class_id: list(enumerate(map(float, values), start=1))
                                for class_id, values in (metrics.get("class_accuracy") or {}).items()},
             "adversarial_robustness": list(enumerate(map(float, metrics.get("adversarial_robustness") or []),
                                                      start=1))}
    return pd.DataFrame(rows, columns=["epoch", "context", "metric", "key", "value"]), given


def _given_rows(frame: pd.DataFrame, given: Mapping[str, Any]) -> pd.DataFrame:
    """`frame` plus the class and adversarial accuracies given to `track_epoch`, as the class-wise and
    robustness probes would record them, at the epochs they were given."""
    rows = []
    for class_id, pairs in given["class_accuracy"].items():
        learned, forgets, was = math.nan, 0, False
        for epoch, accuracy in pairs:
            now = accuracy >= THRESHOLD
            learned = epoch if now and math.isnan(learned) else learned
            forgets += int(was and not now)
            was = now
            rows += [(epoch, "val", "class_acc", str(class_id), accuracy),
                     (epoch, "val", "class_learned_epoch", str(class_id), learned),
                     (epoch, "val", "class_forgets", str(class_id), float(forgets))]
    rows += [(epoch, "probe", "pgd_acc", "given", accuracy) for epoch, accuracy in given["adversarial_robustness"]]
    extra = pd.DataFrame(rows, columns=["epoch", "context", "metric", "key", "value"])
    return pd.concat([frame, extra], ignore_index=True) if rows else frame


def _evaluation(frame: pd.DataFrame, given: Mapping[str, Any]) -> dict[str, dict]:
    """pabkit's `evaluate_trajectory` keys from our summary of the epochs tracked."""
    if frame.empty or frame["epoch"].nunique() < 2:
        log.warning("pabkit: not enough epochs tracked to evaluate the trajectory")
        return {}
    summary = summarize_run(_given_rows(frame, given))
    values = summary.values
    result: dict[str, dict] = {
        "overall_stability": {"mean": values["stability_mean"], "std": values["stability_std"],
                              "max": values["stability_max"], "min": _min(learning_stability(
                                  _trained(_series(frame, "val", "loss"))))},
        "generalization": {"final_gap": values["loss_gap_final"], "max_gap": values["loss_gap_max"],
                           "gap_trend": "increasing" if values["loss_gap_trend"] > 0 else "decreasing",
                           "early_stopping_epoch": _int(values["early_stop_epoch"])},
    }
    if not math.isnan(values.get("class_early", math.nan)):
        early, late = ([_class_id(c) for c in summary.classes[g]] for g in ("early", "late"))
        result["class_patterns"] = {"early_classes": early, "late_classes": late, "num_early": len(early),
                                    "num_late": len(late)}
    peaks = [name[:-len("_peak")] for name in values if name.endswith("_peak") and "consistency" not in name]
    if peaks:
        attack = "pgd_acc[given]" if "pgd_acc[given]" in peaks else sorted(peaks)[-1]
        result["robustness"] = {"peak_epoch": _int(values[f"{attack}_peak_epoch"]),
                                "peak_value": values[f"{attack}_peak"], "final_value": values[f"{attack}_final"],
                                "degradation": values[f"{attack}_degradation_pct"] / 100}
    result["recommendations"] = {r.topic: r.message for r in summary.recommendations}
    return result


def _min(series: pd.Series) -> float | None:
    return float(series.min()) if len(series) else None


def _int(value: float) -> int | None:
    return None if math.isnan(value) else int(value)


def _summary_text(frame: pd.DataFrame, given: Mapping[str, Any]) -> str:
    results = _evaluation(frame, given)
    if not results:
        return "Not enough data to generate PAB summary."
    metrics = _metrics(frame, given)
    stability, gen = results["overall_stability"], results["generalization"]
    lines = ["Process-Aware Benchmarking (PAB) Summary", "=" * 50, "",
             f"Training duration: {sum(e >= 1 for e in metrics['epochs']['train_loss'])} epochs",
             f"Final validation accuracy: {metrics['val_acc'][-1]:.4f}" if metrics["val_acc"] else "", "",
             "Learning Stability:", f"  Mean: {stability['mean']:.4f} ± {stability['std']:.4f}",
             f"  Max instability: {stability['max']:.4f}", "",
             "Generalization:", f"  Final train-validation gap: {gen['final_gap']:.4f}",
             f"  Gap trend: {gen['gap_trend']}", f"  Optimal early stopping: epoch {gen['early_stopping_epoch']}", ""]
    if "class_patterns" in results:
        classes = results["class_patterns"]
        lines += ["Class-wise Learning Patterns:", f"  Early-learning classes: {classes['num_early']} classes",
                  f"  Late-learning classes: {classes['num_late']} classes", ""]
    if "robustness" in results:
        rob = results["robustness"]
        lines += ["Adversarial Robustness:", f"  Peak robustness: {rob['peak_value']:.4f} at epoch {rob['peak_epoch']}",
                  f"  Final robustness: {rob['final_value']:.4f}",
                  f"  Robustness degradation: {100 * rob['degradation']:.2f}%", ""]
    lines.append("PAB Recommendations:")
    lines += [f"  • {message}" for message in results["recommendations"].values()]
    return "\n".join(lines)


# ---- the module functions ----------------------------------------------------------------------
def track_learning_curve(model: nn.Module, dataset: tuple[Any, Any], epochs: int = 100, batch_size: int = 256,
                         optimizer: torch.optim.Optimizer | None = None, criterion: Any = None,
                         device: str | None = None, checkpoint_dir: str | Path = "./pab_checkpoints",
                         save_frequency: int = 5, adversarial_test: bool = False, *,
                         hparams: Mapping[str, Any] | None = None, seed: int = 0) -> ProcessAwareBenchmark:
    """pabkit's one call: train `model` on `dataset = (train, val)` ((x, y) tensors or Datasets) for
    `epochs` epochs (Adam lr 1e-3 and cross-entropy unless given; batches shuffled by a generator
    seeded from (`seed`, epoch)), track epoch 0 (before training) and every epoch after it, and
    return the closed benchmark. The train loss and accuracy are measured in eval mode over the
    whole training set. `adversarial_test` adds our robustness probe at every epoch
    (`tracking=adversarial`); `device`
    defaults to 'cuda' when available. With `hparams` given, an interrupted run resumes.

    >>> import tempfile, torch
    >>> from torch import nn
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> pab = track_learning_curve(nn.Linear(4, 3), dataset=((x, y), (x, y)), epochs=3, batch_size=16,
    ...                            checkpoint_dir=tempfile.mkdtemp(), save_frequency=2)
    >>> len(pab.metrics["train_loss"]), pab.tracker.status.value
    (4, 'completed')
    >>> sorted(p.name for p in (pab.run_dir / "checkpoints").glob("epoch_*.pt"))
    ['epoch_0000.pt', 'epoch_0002.pt']
    """
    train, val = _train_and_val(dataset)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = criterion or nn.functional.cross_entropy
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
    params = dict(hparams) if hparams is not None else {
        "model": type(model).__name__, "optimizer": type(optimizer).__name__, "epochs": epochs,
        "batch_size": batch_size, "seed": seed, "pabkit_run": started}
    pab = ProcessAwareBenchmark(checkpoint_dir, save_frequency, False, hparams=params, probe_data=val,
                                tracking="adversarial" if adversarial_test else "default")
    with pab:
        for epoch in range(pab.resume(model, optimizer), epochs + 1):
            if epoch > 0:
                _train_epoch(model, _loader(train, batch_size, seed * 1_000_003 + epoch), optimizer, criterion)
            train_loss, train_acc = _evaluate(model, _loader(train, batch_size), criterion)
            val_loss, val_acc = _evaluate(model, _loader(val, batch_size), criterion)
            pab.track_epoch(model, epoch, train_loss, val_loss, train_acc, val_acc, optimizer=optimizer)
    return pab


def _train_and_val(dataset: Any) -> tuple[Any, Any]:
    """`dataset` as (train, val), each an (x, y) pair of tensors or a torch Dataset; ValueError
    saying the form otherwise (one (x, y) pair alone is one split, not two)."""
    def split(part: Any) -> bool:
        return isinstance(part, torch.utils.data.Dataset) or (
            isinstance(part, tuple | list) and len(part) == 2 and all(isinstance(t, torch.Tensor) for t in part))

    if not (isinstance(dataset, tuple | list) and len(dataset) == 2 and all(map(split, dataset))):
        raise ValueError("track_learning_curve: dataset must be (train, val), each an (x, y) pair of tensors or a "
                         "torch Dataset, e.g. dataset=((x_train, y_train), (x_val, y_val))")
    return dataset[0], dataset[1]


def _loader(data: Any, batch_size: int, shuffle_seed: int | None = None) -> torch.utils.data.DataLoader:
    dataset = torch.utils.data.TensorDataset(*data) if isinstance(data, tuple | list) else data
    generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=generator is not None,
                                       generator=generator)


def _train_epoch(model: nn.Module, loader: torch.utils.data.DataLoader, optimizer: torch.optim.Optimizer,
                 criterion: Any) -> None:
    device = next(model.parameters()).device
    model.train()
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x.to(device)), y.to(device)).backward()
        optimizer.step()


@torch.no_grad()
def _evaluate(model: nn.Module, loader: torch.utils.data.DataLoader, criterion: Any) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` in eval mode over every example of `loader`."""
    device = next(model.parameters()).device
    model.eval()
    total, correct, seen = 0.0, 0, 0
    for x, y in loader:
        logits = model(x.to(device))
        total += float(criterion(logits, y.to(device))) * len(y)
        correct += int((logits.argmax(dim=1).cpu() == y).sum())
        seen += len(y)
    return total / max(seen, 1), correct / max(seen, 1)


def evaluate_trajectory(checkpoint_dir: str | Path) -> dict[str, dict]:
    """pabkit's `evaluate_trajectory(checkpoint_dir)`: the evaluation of the newest run tracked into
    `checkpoint_dir` ({} when it holds none)."""
    runs = sorted((Path(checkpoint_dir) / "runs").glob("*/trajectory.parquet"), key=lambda p: p.stat().st_mtime)
    if not runs:
        log.warning("pabkit: no tracked run in %s", checkpoint_dir)
        return {}
    return _evaluation(read_trajectory(runs[-1].parent).to_pandas(), {"class_accuracy": {},
                                                                     "adversarial_robustness": []})


def compare_models(model_dirs: list[str | Path], names: list[str] | None = None) -> dict[str, dict]:
    """pabkit's `compare_models`: `evaluate_trajectory` of each directory, by name (`Model_i` by
    default); directories without a run are left out. Across campaigns, `pab-campaign report DIR1
    DIR2` compares them with confidence intervals."""
    names = names or [f"Model_{i}" for i in range(len(model_dirs))]
    if len(names) != len(model_dirs):
        raise ValueError("Number of names must match number of model directories")
    results = {name: evaluate_trajectory(directory) for name, directory in zip(names, model_dirs)}
    return {name: result for name, result in results.items() if result}
