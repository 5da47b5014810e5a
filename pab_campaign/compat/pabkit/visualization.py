"""pabkit's `pab.visualization` plots (all six), drawn in our figure style (Okabe–Ito colours, units on the
axes) from the same lists (`ProcessAwareBenchmark.metrics` gives them), written at dpi 300 as pabkit
writes them when `save_path` is given."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pab_campaign.analysis.plots.style import BLUE, GREEN, GREY, OKABE_ITO, ORANGE, VERMILLION
from pab_campaign.store import atomic_write

__all__ = ["compare_learning_trajectories", "plot_class_progression", "plot_generalization_gap",
           "plot_learning_trajectory", "plot_pab_summary", "plot_robustness_curve"]
# pabkit's names of the lists in `metrics`, as axis labels with their units.
_LABELS = {"train_loss": "train loss (cross-entropy, nats)", "val_loss": "val loss (cross-entropy, nats)",
           "train_acc": "train accuracy (fraction)", "val_acc": "val accuracy (fraction)",
           "stability": "learning stability (relative change)", "gen_efficiency": "val − train loss (nats)",
           "rule_evolution": "representation change", "adversarial_robustness": "adversarial accuracy (fraction)"}
DPI = 300
CLASS_THRESHOLD = 0.7  # pabkit's "learned" line in this plot (its evaluate_trajectory uses 0.8)


def _save(figure: Figure, save_path: str | Path | None) -> Figure:
    """Write `figure` to `save_path` (PNG, dpi 300) atomically when given; it stays open, as pabkit
    returns it."""
    if save_path:
        atomic_write(Path(save_path), lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    return figure


def _epochs(values: Sequence[float], first: int = 1) -> range:
    return range(first, first + len(values))


def _at(metrics: Mapping[str, Any], name: str, first: int = 1) -> Sequence[int]:
    """The epochs of the list `metrics[name]`: those `metrics["epochs"]` gives (ours), else
    `first`, `first` + 1, ... as pabkit numbers its lists."""
    values = metrics.get(name) or []
    epochs = (metrics.get("epochs") or {}).get(name)
    return epochs if isinstance(epochs, list) and len(epochs) == len(values) else _epochs(values, first)


def _finish(ax: plt.Axes, title: str, ylabel: str) -> None:
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _draw_classes(ax: plt.Axes, class_accuracies: Mapping[object, Sequence[float]], per_group: int,
                  class_names: Mapping[object, str] | None = None,
                  class_epochs: Mapping[object, Sequence[int]] | None = None) -> int:
    """Draw the `per_group` earliest- and latest-learned classes (first epoch at or above 0.7,
    pabkit's choice): early solid, late dashed. Each class at its epochs in `class_epochs` where
    given (ours), else over epochs 1..n with a shorter list padded with its last value, as pabkit
    draws them. Returns how many of each were drawn."""
    epochs = max((len(v) for v in class_accuracies.values()), default=0)
    curves: dict[object, tuple[Sequence[int], list[float]]] = {}
    for c, values in class_accuracies.items():
        at = (class_epochs or {}).get(c)
        if isinstance(at, list) and len(at) == len(values) and len(values):
            curves[c] = (at, list(values))
        elif len(values):
            curves[c] = (range(1, epochs + 1), list(values) + [values[-1]] * (epochs - len(values)))
    never = max((max(at) for at, _ in curves.values()), default=0) + 1
    learned = {c: next((e for e, a in zip(at, v) if a >= CLASS_THRESHOLD), never) for c, (at, v) in curves.items()}
    order = sorted(curves, key=lambda c: learned[c])
    shown = min(per_group, len(order) // 2)
    for i, (group, classes, style) in enumerate((("early", order[:shown], "-"), ("late", order[len(order) - shown:],
                                                                                   "--"))):
        for j, c in enumerate(classes):
            name = (class_names or {}).get(c, f"class {c}")
            ax.plot(*curves[c], style, lw=2, color=OKABE_ITO[(j + i * shown) % len(OKABE_ITO)],
                    label=f"{name} ({group})")
    return shown


def plot_learning_trajectory(train_losses: Sequence[float], val_losses: Sequence[float],
                             train_accs: Sequence[float] | None = None, val_accs: Sequence[float] | None = None,
                             title: str = "Learning Trajectory", figsize: tuple[float, float] = (12, 5),
                             save_path: str | Path | None = None) -> Figure:
    """Loss curves (and accuracy curves when both accuracy lists are given) over epochs 1..n.

    >>> figure = plot_learning_trajectory([1.0, 0.6, 0.5], [1.1, 0.8, 0.75], [0.5, 0.7, 0.8], [0.45, 0.6, 0.65])
    >>> [ax.get_title() for ax in figure.axes]
    ['Loss', 'Accuracy']
    """
    both = train_accs is not None and val_accs is not None
    figure, axes = plt.subplots(1, 2 if both else 1, figsize=figsize, squeeze=False)
    panels = [("Loss", "cross-entropy, nats", train_losses, val_losses)]
    if train_accs is not None and val_accs is not None:
        panels.append(("Accuracy", "fraction", train_accs, val_accs))
    for ax, (name, unit, train, val) in zip(axes[0], panels):
        ax.plot(_epochs(train), train, color=BLUE, marker="o", ms=3, label=f"train {name.lower()}")
        ax.plot(_epochs(val), val, color=VERMILLION, marker="s", ms=3, label=f"val {name.lower()}")
        _finish(ax, name, f"{name.lower()} ({unit})")
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, save_path)


def plot_class_progression(class_accuracies: Mapping[object, Sequence[float]],
                           class_names: Mapping[object, str] | None = None, num_classes_to_show: int = 5,
                           figsize: tuple[float, float] = (10, 6), save_path: str | Path | None = None) -> Figure:
    """Accuracy per class over epochs for the `num_classes_to_show` earliest- and latest-learned
    classes (first epoch at or above 0.7, pabkit's choice): early solid, late dashed.

    >>> figure = plot_class_progression({0: [0.2, 0.8, 0.9], 1: [0.1, 0.3, 0.75], 2: [0.1, 0.2, 0.3]})
    >>> sorted(line.get_label() for line in figure.axes[0].get_lines())[:3]
    ['class 0 (early)', 'class 2 (late)', 'learned (0.7)']
    """
    figure, ax = plt.subplots(figsize=figsize)
    _draw_classes(ax, class_accuracies, num_classes_to_show, class_names)
    ax.axhline(CLASS_THRESHOLD, color=GREY, ls=":", label=f"learned ({CLASS_THRESHOLD})")
    _finish(ax, "Class-wise learning progression", "class accuracy (fraction)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return _save(figure, save_path)


def plot_robustness_curve(clean_accuracies: Sequence[float], adversarial_accuracies: Sequence[float],
                          figsize: tuple[float, float] = (10, 6), save_path: str | Path | None = None) -> Figure:
    """Clean and adversarial accuracy over epochs 1..n, their ratio on a second axis, and the epoch of
    peak adversarial accuracy marked.

    >>> figure = plot_robustness_curve([0.6, 0.8, 0.9], [0.3, 0.5, 0.4])
    >>> [line.get_label() for line in figure.axes[0].get_lines()]
    ['clean accuracy', 'adversarial accuracy', 'peak robustness (epoch 2)']
    """
    figure, ax = plt.subplots(figsize=figsize)
    ax.plot(_epochs(clean_accuracies), clean_accuracies, color=BLUE, marker="o", ms=3, label="clean accuracy")
    ax.plot(_epochs(adversarial_accuracies), adversarial_accuracies, color=ORANGE, marker="s", ms=3,
            label="adversarial accuracy")
    peak = int(np.argmax(adversarial_accuracies)) + 1 if len(adversarial_accuracies) else None
    if peak is not None:
        ax.axvline(peak, color=VERMILLION, ls=":", label=f"peak robustness (epoch {peak})")
    ratio_ax = ax.twinx()
    ratios = [a / c if c > 0 else np.nan for a, c in zip(adversarial_accuracies, clean_accuracies)]
    ratio_ax.plot(_epochs(ratios), ratios, color=GREEN, ls="--", label="adversarial / clean")
    ratio_ax.set_ylabel("adversarial / clean accuracy (ratio)", color=GREEN)
    _finish(ax, "Adversarial robustness over training", "accuracy (fraction)")
    handles = [*ax.get_lines(), *ratio_ax.get_lines()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(handles), frameon=False)
    figure.tight_layout()
    return _save(figure, save_path)


def plot_generalization_gap(train_losses: Sequence[float], val_losses: Sequence[float],
                            train_accs: Sequence[float] | None = None, val_accs: Sequence[float] | None = None,
                            figsize: tuple[float, float] = (10, 6), save_path: str | Path | None = None) -> Figure:
    """val − train loss over epochs 1..n with the epoch of minimal val loss marked, and (when both
    accuracy lists are given) train − val accuracy with the epoch of maximal val accuracy.

    >>> figure = plot_generalization_gap([1.0, 0.5, 0.3], [1.1, 0.7, 0.8], [0.5, 0.8, 0.9], [0.45, 0.7, 0.68])
    >>> [ax.get_title() for ax in figure.axes]
    ['Loss gap', 'Accuracy gap']
    """
    panels = [("Loss gap", "val − train loss", "nats", [v - t for t, v in zip(train_losses, val_losses)],
               "minimal val loss", int(np.nanargmin(val_losses)) + 1 if len(val_losses) else None, BLUE)]
    if train_accs is not None and val_accs is not None:
        panels.append(("Accuracy gap", "train − val accuracy", "fraction",
                       [t - v for t, v in zip(train_accs, val_accs)], "maximal val accuracy",
                       int(np.nanargmax(val_accs)) + 1 if len(val_accs) else None, GREEN))
    figure, axes = plt.subplots(1, len(panels), figsize=figsize, squeeze=False)
    for ax, (title, gap_name, unit, gap, best_name, best, colour) in zip(axes[0], panels):
        ax.plot(_epochs(gap), gap, color=colour, marker="o", ms=3, label=gap_name)
        if best is not None:
            ax.axvline(best, color=VERMILLION, ls=":", label=f"{best_name} (epoch {best})")
        _finish(ax, title, f"{gap_name} ({unit})")
        ax.legend()
    figure.suptitle("Generalization gap")
    figure.tight_layout()
    return _save(figure, save_path)


def plot_pab_summary(metrics: Mapping[str, Any], figsize: tuple[float, float] = (15, 10),
                     save_path: str | Path | None = None) -> Figure:
    """pabkit's four panels from `ProcessAwareBenchmark.metrics`: loss curves, learning stability,
    the earliest and latest learned classes, and adversarial robustness (the loss gap when there is
    none). A panel without its lists says so. Each list is drawn at its epochs (`metrics["epochs"]`,
    ours), else at 1, 2, ... as pabkit draws them.

    >>> figure = plot_pab_summary({"train_loss": [1.0, 0.6, 0.5], "val_loss": [1.1, 0.8, 0.85],
    ...                            "stability": [0.27, 0.06]})
    >>> [ax.get_title() for ax in figure.axes]
    ['Loss', 'Learning stability', 'Class-wise learning progression', 'Generalization gap']
    """
    figure, axes = plt.subplots(2, 2, figsize=figsize)
    (loss_ax, stability_ax), (class_ax, last_ax) = axes
    train, val = metrics.get("train_loss") or [], metrics.get("val_loss") or []
    loss_ax.plot(_at(metrics, "train_loss"), train, color=BLUE, label="train loss")
    loss_ax.plot(_at(metrics, "val_loss"), val, color=VERMILLION, label="val loss")
    _finish(loss_ax, "Loss", "loss (cross-entropy, nats)")
    loss_ax.legend()
    stability = metrics.get("stability") or []
    stability_ax.plot(_at(metrics, "stability", 2), stability, color=GREEN, marker="o", ms=3)
    _finish(stability_ax, "Learning stability", _LABELS["stability"])
    shown = _draw_classes(class_ax, metrics.get("class_accuracy") or {}, 3,
                          class_epochs=(metrics.get("epochs") or {}).get("class_accuracy"))
    _finish(class_ax, "Class-wise learning progression", "class accuracy (fraction)")
    if shown:
        class_ax.legend(loc="lower right", fontsize=8)
    adversarial = metrics.get("adversarial_robustness") or []
    if adversarial:
        clean = metrics.get("val_acc") or []
        last_ax.plot(_at(metrics, "val_acc"), clean, color=BLUE, label="clean (val) accuracy")
        last_ax.plot(_at(metrics, "adversarial_robustness"), adversarial, color=ORANGE, marker="s", ms=3,
                     label="adversarial accuracy")
        _finish(last_ax, "Adversarial robustness", "accuracy (fraction)")
        last_ax.legend(loc="best")
    else:
        gap = [v - t for t, v in zip(train, val)]
        last_ax.plot(_at(metrics, "train_loss")[:len(gap)], gap, color=GREEN)
        _finish(last_ax, "Generalization gap", "val − train loss (nats)")
    for ax in axes.flat:
        if not ax.get_lines():
            ax.text(0.5, 0.5, "not tracked", ha="center", va="center", color=GREY, transform=ax.transAxes)
    figure.suptitle("Process-Aware Benchmarking (PAB) summary")
    figure.tight_layout()
    return _save(figure, save_path)


def compare_learning_trajectories(model_metrics: Mapping[str, Mapping[str, Any]], metric_name: str = "val_acc",
                                  figsize: tuple[float, float] = (10, 6),
                                  save_path: str | Path | None = None) -> Figure:
    """One line per model of its `metric_name` list (a `metrics` key, e.g. val_acc, train_loss) over
    epochs 1..n; models without that list are left out (named in the title).

    >>> figure = compare_learning_trajectories({"a": {"val_acc": [0.5, 0.7]}, "b": {"val_acc": [0.4, 0.8]}})
    >>> [line.get_label() for line in figure.axes[0].get_lines()], figure.axes[0].get_ylabel()
    (['a', 'b'], 'val accuracy (fraction)')
    """
    figure, ax = plt.subplots(figsize=figsize)
    missing = []
    for i, (name, metrics) in enumerate(model_metrics.items()):
        values = metrics.get(metric_name) or []
        if not values:
            missing.append(name)
            continue
        ax.plot(_epochs(values), values, color=OKABE_ITO[i % len(OKABE_ITO)], ls=("-", "--", "-.", ":")[i // 8 % 4],
                lw=2, label=name)
    title = f"{metric_name} across models" + (f" ({', '.join(missing)}: not tracked)" if missing else "")
    _finish(ax, title, _LABELS.get(metric_name, metric_name))
    if ax.get_lines():
        ax.legend()
    figure.tight_layout()
    return _save(figure, save_path)
