"""What every figure shares: the Okabe–Ito palette (distinguishable with the common
colour-vision deficiencies; the colour cycle of our figures), the units and value ranges of our
metrics for axis labels and CI bands (from the metric registry, `pab_campaign.metrics`), and
writing a figure as PNG.

The style is applied through `matplotlib.rc_context` around each figure (`styled`), never by
changing the user's global `rcParams`; nor is the backend chosen here (a notebook keeps its own):
the command line draws with Agg (`pab_campaign.cli.main`)."""
from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, TypeVar

import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.figure import Figure

from pab_campaign.metrics import EPOCH, FRACTION, NATS, lookup
from pab_campaign.store import atomic_write

if TYPE_CHECKING:  # matplotlib.typing is new in matplotlib 3.8
    from matplotlib.typing import RcKeyType

# Okabe & Ito's colour-blind-safe palette, by name.
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GREY = "#999999"
OKABE_ITO = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, YELLOW, BLACK)
# The rcParams of our figures, applied with `matplotlib.rc_context` (see `styled`). Titles and legends
# hold campaign names and hyper-parameter values: a `$` in them is text, not TeX.
STYLE: dict[RcKeyType, Any] = {"axes.prop_cycle": cycler(color=OKABE_ITO), "text.parse_math": False}
# The MBE audit: significance in blue / vermillion, groups in the other colours.
SIGNIFICANT, NOT_SIGNIFICANT = BLUE, VERMILLION
GROUP_COLOURS = (GREEN, ORANGE, PURPLE, SKY, YELLOW, BLUE, VERMILLION)
# Latent phases: black replaced by grey, which reads as a background band.
STATE_COLOURS = (ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE, GREY)

# The process-summary values of `analysis.summary.trajectory` that figures show beside the recorded
# metrics (analysis only: no run records them): unit and range.
_SUMMARY_VALUES: dict[str, tuple[str, float, float]] = {
    "acc_gap_final": (FRACTION, -1.0, 1.0), "acc_gap_max": (FRACTION, -1.0, 1.0),
    "loss_gap_final": (NATS, -math.inf, math.inf), "loss_gap_max": (NATS, -math.inf, math.inf),
    "early_stop_val_loss": (NATS, 0.0, math.inf), "early_stop_epoch": (EPOCH, 0.0, math.inf),
    "overfit_onset": (EPOCH, 0.0, math.inf),
}

# The values an axis shows at most: its span, margins and ticks stay finite floats.
AXIS_LIMIT = 8e307

P = ParamSpec("P")
R = TypeVar("R")


def styled(make: Callable[P, R]) -> Callable[P, R]:
    """`make` (a function that draws a figure) run inside `matplotlib.rc_context(STYLE)`."""
    @functools.wraps(make)
    def draw(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(STYLE):
            return make(*args, **kwargs)
    return draw


def _metric_name(label: str) -> str:
    """`metric` of `context/metric[key]@epoch`."""
    return re.split(r"[\[@]", label.split("/", 1)[-1])[0]


def _unit_and_range(label: str) -> tuple[str, float, float] | None:
    name = _metric_name(label)
    metric = lookup(name)
    if metric is not None:
        return metric.unit, metric.low, metric.high
    return _SUMMARY_VALUES.get(name)


def metric_unit(label: str) -> str:
    """The unit of a metric named `context/metric[key]@epoch` (e.g. `val/loss@20` -> 'cross-entropy,
    nats'); 'as recorded' for a metric the registry does not know."""
    known = _unit_and_range(label)
    return known[0] if known is not None else "as recorded"


def metric_range(label: str) -> tuple[float, float]:
    """The values a metric can take (the registry's range: (0, 1) for accuracies and ratios, (0, inf)
    for losses, ranks and counts, ...); (-inf, inf) for a metric the registry does not know."""
    known = _unit_and_range(label)
    return (known[1], known[2]) if known is not None else (-math.inf, math.inf)


def axis_label(label: str) -> str:
    """`label (unit)`, the axis label of a metric."""
    return f"{label} ({metric_unit(label)})"


def write_png(figure: Figure, target: Path | BinaryIO, dpi: int = 110) -> None:
    """Draw `figure` into the file `target` (a path or a binary stream) as PNG; the figure stays
    open. Layout warnings of figures with very long labels are not printed: the figure is drawn as
    well as it fits, and a command's output stays its own lines. An axis whose values reach past
    ±AXIS_LIMIT is shown within it first (`_limit_spans`)."""
    _limit_spans(figure)
    with warnings.catch_warnings(), plt.rc_context(STYLE):
        warnings.filterwarnings("ignore", message=".*layout not applied", category=UserWarning)
        figure.savefig(target, format="png", dpi=dpi, bbox_inches="tight")


def _limit_spans(figure: Figure) -> None:
    """Show every autoscaled linear axis of `figure` whose finite data reach past ±AXIS_LIMIT (a
    campaign's values may reach ±1.8e308, where matplotlib's margins and ticks overflow and it fails)
    within ±AXIS_LIMIT: lines beyond leave the panel; data all beyond one end show that end."""
    for ax in figure.axes:
        for axis, (low, high), autoscaled, limit in (
                (ax.xaxis, ax.dataLim.intervalx, ax.get_autoscalex_on(), ax.set_xlim),
                (ax.yaxis, ax.dataLim.intervaly, ax.get_autoscaley_on(), ax.set_ylim)):
            if (not autoscaled or axis.get_scale() != "linear" or not (math.isfinite(low) and math.isfinite(high))
                    or -AXIS_LIMIT <= low <= high <= AXIS_LIMIT):
                continue  # not ours to set, no data yet, or within reach
            shown = (max(low, -AXIS_LIMIT), min(high, AXIS_LIMIT))
            if shown[0] >= shown[1]:  # every value past the same end
                shown = (AXIS_LIMIT / 2, AXIS_LIMIT) if low > 0 else (-AXIS_LIMIT, -AXIS_LIMIT / 2)
            limit(*shown)


def save_png(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` as PNG atomically, then release it."""
    try:
        atomic_write(path, lambda tmp: write_png(figure, tmp, dpi))
    finally:
        plt.close(figure)
    return path
