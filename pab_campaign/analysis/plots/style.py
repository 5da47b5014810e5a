"""What every figure shares: the Agg backend, the Okabe–Ito palette (distinguishable with the common
colour-vision deficiencies; also matplotlib's default colour cycle here), the units of our metrics
for axis labels, and writing a figure as PNG."""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.figure import Figure

from pab_campaign.store import atomic_write

# Okabe & Ito's colour-blind-safe palette, by name.
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GREY = "#999999"
OKABE_ITO = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK)
matplotlib.rcParams["axes.prop_cycle"] = cycler(color=OKABE_ITO)
# Titles and legends hold campaign names and hyper-parameter values: a `$` in them is text, not TeX.
matplotlib.rcParams["text.parse_math"] = False
# The MBE audit: significance in blue / vermillion, groups in the other colours.
SIGNIFICANT, NOT_SIGNIFICANT = BLUE, VERMILLION
GROUP_COLOURS = (GREEN, ORANGE, PURPLE, SKY, YELLOW, BLUE, VERMILLION)
# Latent phases: black replaced by grey, which reads as a background band.
STATE_COLOURS = (ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE, GREY)

# Units of the recorded metrics (the metric name without context, key or epoch).
_UNITS = {
    "fraction": ("acc", "precision", "recall", "f1", "class_acc", "clean_acc", "fgsm_acc", "pgd_acc", "consistency",
                 "churn", "gen_gap", "acc_gap_final", "acc_gap_max"),
    "cross-entropy, nats": ("loss", "batch_loss", "loss_gap", "early_stop_val_loss", "loss_gap_final",
                            "loss_gap_max"),
    "ratio 0–1": ("fim_norm", "sci", "cka_init", "cka_prev", "code_sparsity", "comp_sparsity"),
    "dimensions": ("erank", "stable_rank", "rank_max"),
    "entropy, nats": ("spectral_entropy",),
    "classes": ("classes_learned", "classes_unstable"),
    "epoch": ("class_learned_epoch", "early_stop_epoch", "overfit_onset"),
}


# Metrics that cannot leave [0, 1] or go below 0 (gaps and differences can, so they are not here).
_IN_UNIT_INTERVAL = ("acc", "precision", "recall", "f1", "class_acc", "clean_acc", "fgsm_acc", "pgd_acc",
                     "consistency", "churn", *_UNITS["ratio 0–1"])
_NON_NEGATIVE = ("loss", "batch_loss", "early_stop_val_loss", "erank", "stable_rank", "rank_max", "spectral_entropy",
                 "sv_min", "classes_learned", "classes_unstable", "class_learned_epoch", "early_stop_epoch",
                 "overfit_onset")


def _metric_name(label: str) -> str:
    """`metric` of `context/metric[key]@epoch`."""
    return re.split(r"[\[@]", label.split("/", 1)[-1])[0]


def metric_unit(label: str) -> str:
    """The unit of a metric named `context/metric[key]@epoch` (e.g. `val/loss@20` -> 'cross-entropy,
    nats'); 'as recorded' for a metric this table does not know."""
    name = _metric_name(label)
    return next((unit for unit, names in _UNITS.items() if name in names), "as recorded")


def metric_range(label: str) -> tuple[float, float]:
    """The values a metric can take: (0, 1) for accuracies and ratios, (0, inf) for losses, ranks and
    counts, (-inf, inf) for the rest (gaps, unknown metrics)."""
    name = _metric_name(label)
    if name in _IN_UNIT_INTERVAL:
        return 0.0, 1.0
    return (0.0, math.inf) if name in _NON_NEGATIVE else (-math.inf, math.inf)


def axis_label(label: str) -> str:
    """`label (unit)`, the axis label of a metric."""
    return f"{label} ({metric_unit(label)})"


def group_label(groupby: list[str], key: tuple) -> str:
    """`name=value, ...` of one group of runs ('all runs' without grouping)."""
    return ", ".join(f"{name}={value}" for name, value in zip(groupby, key)) or "all runs"


def save_png(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` as PNG atomically, then release it."""
    try:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(figure)
    return path
