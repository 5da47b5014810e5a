"""Groups of runs in a figure stay distinguishable: each gets a (colour, line style, marker) triple
that no other group of the figure shares, and past MAX_GROUPS a figure shows the best groups and
says how many it left out. The campaign page's charts take the same triples."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pab_campaign.analysis.plots.style import OKABE_ITO

MAX_GROUPS = 12  # lines one figure draws; more are left out (and counted) rather than repeated
# (matplotlib line style, the page's canvas dash pattern in px) — solid, dashed, dotted, dash-dot.
LINE_STYLES = (("-", ()), ("--", (6, 3)), (":", (1.5, 2.5)), ("-.", (6, 2, 1.5, 2)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


@dataclass(frozen=True)
class GroupStyle:
    """How one group is drawn: colour (hex), matplotlib line style, the page's dash pattern, marker."""

    colour: str
    line: str
    dash: tuple[float, ...]
    marker: str


def group_style(index: int) -> GroupStyle:
    """The style of the `index`-th group: colours turn fastest, then line styles; markers cycle with
    a period (7) prime to the palette's (8), so even with colour and line repeated (past 32 groups)
    neighbours differ. The first len(OKABE_ITO) × len(LINE_STYLES) triples are all distinct."""
    colour = OKABE_ITO[index % len(OKABE_ITO)]
    line, dash = LINE_STYLES[(index // len(OKABE_ITO)) % len(LINE_STYLES)]
    return GroupStyle(colour, line, dash, MARKERS[index % len(MARKERS)])


def lower_is_better(label: str) -> bool:
    """Whether a smaller value of the metric `context/metric[key]` is better (losses, gaps, epochs
    to learn, churn), as the ranking of groups needs; accuracies and the rest rank higher first."""
    name = label.split("/", 1)[-1].split("[")[0].split("@")[0]
    return "loss" in name or "gap" in name or name.endswith("_epoch") or name in ("churn", "overfit_onset")


@dataclass(frozen=True)
class GroupChoice:
    """The groups a figure draws (in drawing order), and how they were chosen."""

    shown: list[str]
    total: int
    ranked_by: str  # the metric the best groups were chosen by ('' when every group is shown)

    @property
    def left_out(self) -> int:
        return self.total - len(self.shown)

    def note(self) -> str:
        """'' when every group is drawn; else which ones and how many were left out."""
        if not self.left_out:
            return ""
        best = "lowest" if lower_is_better(self.ranked_by) else "highest"
        return (f"{len(self.shown)} of {self.total} groups shown ({best} final {self.ranked_by}); "
                f"{self.left_out} left out")


def choose_groups(finals: pd.Series, label: str, limit: int = MAX_GROUPS) -> GroupChoice:
    """The groups to draw from `finals` (group name → its final mean of `label`, in the groups' own
    order): all of them when at most `limit`, else the `limit` best by `label` (groups without a
    value last), still in their own order so that styles follow the sorted groups."""
    names = list(finals.index)
    if len(names) <= limit:
        return GroupChoice(names, len(names), "")
    values = finals.to_numpy(float)
    score = np.where(np.isnan(values), math.inf, values if lower_is_better(label) else -values)
    best = set(np.asarray(names, dtype=object)[np.argsort(score, kind="stable")[:limit]])
    return GroupChoice([name for name in names if name in best], len(names), label)
