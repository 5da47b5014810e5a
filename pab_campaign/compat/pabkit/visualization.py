"""pabkit's `pab.visualization` plots, drawn in our figure style (Okabe–Ito colours, units on the
axes) from the same lists (`ProcessAwareBenchmark.metrics` gives them), written at dpi 300 as pabkit
writes them when `save_path` is given."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pab_campaign.analysis.plots.style import BLUE, GREY, OKABE_ITO, VERMILLION
from pab_campaign.store import atomic_write

__all__ = ["plot_class_progression", "plot_learning_trajectory"]
DPI = 300
CLASS_THRESHOLD = 0.7  # pabkit's "learned" line in this plot (its evaluate_trajectory uses 0.8)


def _save(figure: Figure, save_path: str | Path | None) -> Figure:
    """Write `figure` to `save_path` (PNG, dpi 300) atomically when given; it stays open, as pabkit
    returns it."""
    if save_path:
        atomic_write(Path(save_path), lambda tmp: figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight"))
    return figure


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
        ax.plot(range(1, len(train) + 1), train, color=BLUE, marker="o", ms=3, label=f"train {name.lower()}")
        ax.plot(range(1, len(val) + 1), val, color=VERMILLION, marker="s", ms=3, label=f"val {name.lower()}")
        ax.set(title=name, xlabel="epoch", ylabel=f"{name.lower()} ({unit})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
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
    epochs = max((len(v) for v in class_accuracies.values()), default=0)
    padded = {c: list(v) + [v[-1]] * (epochs - len(v)) for c, v in class_accuracies.items() if len(v)}
    learned = {c: next((i for i, a in enumerate(v) if a >= CLASS_THRESHOLD), epochs) for c, v in padded.items()}
    order = sorted(padded, key=lambda c: learned[c])
    shown = min(num_classes_to_show, len(order) // 2)
    figure, ax = plt.subplots(figsize=figsize)
    for i, (group, classes, style) in enumerate((("early", order[:shown], "-"), ("late", order[len(order) - shown:],
                                                                                   "--"))):
        for j, c in enumerate(classes):
            name = (class_names or {}).get(c, f"class {c}")
            ax.plot(range(1, epochs + 1), padded[c], style, lw=2, color=OKABE_ITO[(j + i * shown) % len(OKABE_ITO)],
                    label=f"{name} ({group})")
    ax.axhline(CLASS_THRESHOLD, color=GREY, ls=":", label=f"learned ({CLASS_THRESHOLD})")
    ax.set(title="Class-wise learning progression", xlabel="epoch", ylabel="class accuracy (fraction)",
           ylim=(-0.02, 1.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return _save(figure, save_path)
