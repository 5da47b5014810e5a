"""Figures of learning curves and keyed metrics over epochs: the curves per group with CI95 bands
(`pab-campaign curves` and the campaign page draw the same one), the class × epoch heatmap, and
accuracy against the attack size ε."""
from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from pab_campaign.analysis.plots.groups import MAX_GROUPS, GroupChoice, choose_groups, group_style
from pab_campaign.analysis.plots.style import axis_label, metric_range, styled
from pab_campaign.formatting import group_label, value_text
from pab_campaign.metrics import CLEAN_ACC, FGSM_ACC, PGD_ACC


@styled
def plot_curves(curves: pd.DataFrame, groupby: list[str], campaign: str = "", log_y: bool | None = None,
                max_groups: int = MAX_GROUPS, x: str = "epoch") -> Figure:
    """Learning curves: one panel per `label` (context/metric[key]), one line per group (mean over
    runs against epoch) with a band of ± the CI95 half-width, cut to the values the metric can take
    (an accuracy's band stays within [0, 1]); titled by `campaign`, captioned below with what is
    drawn, over how many runs, and what the band is. Every group has its own (colour, line style,
    marker) in every panel; past `max_groups` only the best by the first panel's final mean are
    drawn and the caption says how many were left out. `log_y`: every panel on a log scale (True),
    none (False), or a loss panel spanning more than two decades (None). `curves` has the columns
    of `report.build_curves`: *groupby, label, epoch, runs, mean, std, ci95 (`x` = "step": per step,
    with a `step` column instead of `epoch`)."""
    labels = list(dict.fromkeys(curves["label"]))
    choice = choose_groups(final_means(curves, groupby, labels[0], x) if labels else pd.Series(dtype=float),
                           labels[0] if labels else "", max_groups)
    styles = {name: group_style(i) for i, name in enumerate(choice.shown)}
    columns = min(2, max(1, len(labels)))
    rows = max(1, math.ceil(len(labels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, 3.4 * rows + 1.2), squeeze=False,
                                layout="constrained")
    handles = {}
    for ax, label in zip(axes.flat, labels):
        panel = curves[curves["label"] == label]
        log = default_log(label, panel["mean"].to_numpy(float)) if log_y is None else log_y
        for name, group in _groups_of(panel, groupby):
            if name not in styles:
                continue
            style, group = styles[name], group.sort_values(x)
            marker = style.marker if len(group) <= 15 else None
            handles[name], = ax.plot(group[x], group["mean"], label=name, color=style.colour, ls=style.line,
                                     lw=1.5, marker=marker, ms=4, markevery=max(1, len(group) // 15))
            band = group["ci95"].fillna(0.0)
            low, high = metric_range(label)
            lower = (group["mean"] - band).clip(lower=low)
            if log:  # a band reaching 0 or below cannot be drawn on a log axis: it stops at the line's floor
                lower = lower.where(lower > 0, group["mean"][group["mean"] > 0].min())
            ax.fill_between(group[x], lower, (group["mean"] + band).clip(upper=high), color=style.colour,
                            alpha=0.15, lw=0)
        ax.set_title(label + (" (log scale)" if log else ""), fontsize=10)
        ax.set_xlabel(x)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(axis_label(label))
        if log and (panel["mean"] > 0).any():
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # no TeX here
        ax.grid(alpha=0.3, which="both" if log else "major")
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    if handles:
        shown = [name for name in choice.shown if name in handles]
        values = _value_texts(curves, groupby)
        figure.legend([handles[name] for name in shown], [values.get(name, name) for name in shown],
                      loc="outside right upper", fontsize="small", title=", ".join(groupby) or None,
                      title_fontsize="small", alignment="left")
    shown_label = labels[0] if len(labels) == 1 else f"{len(labels)} metrics"
    figure.suptitle(f"{campaign + ': ' if campaign else ''}{shown_label}, mean ± CI95 over runs per group",
                    x=0.01, ha="left")
    figure.supxlabel(textwrap.fill(curves_caption(curves, groupby, choice, x), int(15 * 6.0 * columns)), fontsize=8,
                     color="#333333")
    return figure


def final_means(curves: pd.DataFrame, groupby: list[str], label: str, x: str = "epoch") -> pd.Series:
    """Group name → mean of `label` at the group's last `x` (epoch or step; NaN without one), in sorted
    group order."""
    finals = {}
    for name, group in _groups_of(curves, groupby):
        rows = group[group["label"] == label].sort_values(x)
        finals[name] = float(rows["mean"].iloc[-1]) if len(rows) else math.nan
    return pd.Series(finals, dtype=float)


def runs_counted(curves: pd.DataFrame, groupby: list[str]) -> int:
    """The runs behind `curves`: per group, the most runs any of its points has, summed over groups."""
    return int(sum(int(group["runs"].max()) for _, group in _groups_of(curves, groupby) if len(group)))


def curves_caption(curves: pd.DataFrame, groupby: list[str], choice: GroupChoice | None = None,
                   x: str = "epoch") -> str:
    """What a curves figure shows, over how many runs, and what its band is."""
    groups = len(_groups_of(curves, groupby))
    by = f"grouped by {', '.join(groupby)}" if groupby else "all runs as one group"
    text = (f"Lines: the mean over a group's runs at each {x} ({runs_counted(curves, groupby)} completed runs, "
            f"{groups} group{'s' if groups != 1 else ''}, {by}). Band: the CI95 of that mean (Student t over the "
            "group's runs; none where a group has one run), cut to the metric's range.")
    note = choice.note() if choice is not None else ""
    return text + (f" {note} (every group is in the Parquet file)." if note else "")


def default_log(label: str, values: np.ndarray) -> bool:
    """Whether a panel of `label` starts on a log scale: a loss (non-negative) whose positive values
    span more than two decades."""
    positive = values[np.isfinite(values) & (values > 0)]
    low, _ = metric_range(label)
    return bool("loss" in label and low == 0.0 and len(positive) and positive.max() / positive.min() > 100)


def _label_key(label: str) -> str:
    """The key of `context/metric[key]` ('' for a scalar label)."""
    return label[label.index("[") + 1:-1] if label.endswith("]") else ""


def _value_texts(frame: pd.DataFrame, groupby: list[str]) -> dict[str, str]:
    """Group name (`name=value, ...`) → its values alone (`value, ...`), as a legend titled by the
    names shows them."""
    if not groupby:
        return {}
    keys = frame[groupby].drop_duplicates().itertuples(index=False, name=None)
    return {group_label(groupby, key): ", ".join(map(value_text, key)) for key in keys}


def _groups_of(frame: pd.DataFrame, groupby: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(legend label, rows) per group of `frame`, in sorted order."""
    if not groupby:
        return [("all runs", frame)]
    grouped = frame.groupby(groupby, dropna=False, sort=True)
    return [(group_label(groupby, key if isinstance(key, tuple) else (key,)), rows) for key, rows in grouped]


@styled
def class_heatmap(accuracy: pd.DataFrame, learned: pd.DataFrame, groupby: list[str], campaign: str) -> Figure:
    """Class × epoch heatmap of accuracy per group (one panel each), with the mean first-learned
    epoch of every class marked (where `learned` has rows). Both frames are `build_curves` output for
    `<ctx>/class_acc[*]` and `<ctx>/class_learned_epoch[*]`."""
    groups = _groups_of(accuracy, groupby)
    learned_by_group = dict(_groups_of(learned, groupby))
    columns = min(2, len(groups))
    rows = math.ceil(len(groups) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.6 * rows + 0.6), squeeze=False,
                                layout="constrained")
    image = None
    for ax, (name, frame) in zip(axes.flat, groups):
        frame = frame.assign(cls=frame["label"].map(_label_key))
        grid = frame.pivot_table(index="cls", columns="epoch", values="mean", aggfunc="first")
        grid = grid.loc[sorted(grid.index, key=lambda k: (len(k), k))]
        image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="viridis", vmin=0, vmax=1, origin="lower",
                          extent=(grid.columns.min() - 0.5, grid.columns.max() + 0.5, -0.5, len(grid) - 0.5))
        marks = learned_by_group.get(name)
        if marks is not None and len(marks):
            last = marks.sort_values("epoch").groupby("label").tail(1)
            first = last.assign(cls=last["label"].map(_label_key)).set_index("cls")["mean"].reindex(grid.index)
            ax.scatter(first.to_numpy(float), np.arange(len(grid)), marker="|", s=140, color="white", linewidths=2.5)
        ax.set_yticks(np.arange(len(grid)), grid.index)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("class")
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label="class accuracy (fraction)")
    marked = "; | = first learned" if len(learned) else ""
    figure.suptitle(f"{campaign}: val/class_acc per class and epoch (mean over runs{marked})")
    return figure


@styled
def robustness_figure(curves: pd.DataFrame, groupby: list[str], campaign: str) -> Figure:
    """Accuracy against the attack size ε at each group's last measured epoch: FGSM solid, PGD
    dashed, ε = 0 the clean accuracy. `curves` is `build_curves` output for `probe/clean_acc`,
    `probe/fgsm_acc[*]` and `probe/pgd_acc[*]`."""
    figure, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    for index, (name, frame) in enumerate(_groups_of(curves, groupby)):
        colour, marker = group_style(index).colour, group_style(index).marker
        last = frame.sort_values("epoch").groupby("label").tail(1)
        clean = last.loc[last["label"] == CLEAN_ACC.label(), "mean"]
        for attack, style in ((FGSM_ACC, "-"), (PGD_ACC, "--")):
            rows = last[last["label"].str.startswith(attack.label() + "[")]
            eps = rows["label"].map(lambda label: float(_label_key(label))).to_numpy()
            order = np.argsort(eps)
            x, y = eps[order], rows["mean"].to_numpy(float)[order]
            if len(clean):
                x, y = np.r_[0.0, x], np.r_[float(clean.iloc[0]), y]
            ax.plot(x, y, style, marker=marker, color=colour, label=f"{name} · {attack.name.split('_')[0].upper()}")
    ax.set_xlabel("attack size ε (model input units)")
    ax.set_ylabel("accuracy on the probe set (fraction)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    figure.legend(fontsize="small", loc="outside lower center", ncol=2)
    ax.set_title(f"{campaign}: accuracy vs ε at the last epoch (solid FGSM, dashed PGD)", fontsize=10)
    return figure
