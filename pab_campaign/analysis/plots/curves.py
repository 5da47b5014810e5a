"""Figures of learning curves and keyed metrics over epochs: the curves per group with CI95 bands
(`pab-campaign curves` and the campaign page draw the same one), the class × epoch heatmap, and
accuracy against the attack size ε."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from pab_campaign.analysis.plots.style import OKABE_ITO, axis_label, group_label, metric_range, styled
from pab_campaign.metrics import CLEAN_ACC, FGSM_ACC, PGD_ACC


@styled
def plot_curves(curves: pd.DataFrame, groupby: list[str], campaign: str = "") -> Figure:
    """Learning curves: one panel per `label` (context/metric[key]), one line per group (mean over
    runs against epoch) with a band of ± the CI95 half-width, cut to the values the metric can take
    (an accuracy's band stays within [0, 1]); titled by `campaign`. A group keeps one colour in
    every panel, also in panels where other groups have no values. `curves` has the columns of
    `report.build_curves`: *groupby, label, epoch, runs, mean, std, ci95."""
    labels = list(dict.fromkeys(curves["label"]))
    colours = _group_colours(curves, groupby)
    columns = min(2, max(1, len(labels)))
    rows = max(1, math.ceil(len(labels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, 3.4 * rows + 0.8), squeeze=False,
                                layout="constrained")
    handles = {}
    for ax, label in zip(axes.flat, labels):
        panel = curves[curves["label"] == label]
        for name, group in _groups_of(panel, groupby):
            group = group.sort_values("epoch")
            marker = "o" if len(group) <= 15 else None
            handles[name], = ax.plot(group["epoch"], group["mean"], label=name, color=colours[name], lw=1.5,
                                     marker=marker, ms=3)
            band = group["ci95"].fillna(0.0)
            low, high = metric_range(label)
            ax.fill_between(group["epoch"], (group["mean"] - band).clip(lower=low),
                            (group["mean"] + band).clip(upper=high), color=colours[name], alpha=0.2, lw=0)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(axis_label(label))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    if handles:
        shown = [name for name in colours if name in handles]
        figure.legend([handles[name] for name in shown], shown, loc="outside lower center",
                      ncol=min(3, len(shown)), fontsize="small")
    shown = labels[0] if len(labels) == 1 else f"{len(labels)} metrics"
    figure.suptitle(f"{campaign + ': ' if campaign else ''}{shown}, mean ± CI95 over runs per group")
    return figure


def _group_colours(frame: pd.DataFrame, groupby: list[str]) -> dict[str, str]:
    """The colour of each group's legend label, in sorted group order: the palette in turn, again
    from its start when there are more groups than colours."""
    names = [name for name, _ in _groups_of(frame, groupby)]
    return {name: OKABE_ITO[i % len(OKABE_ITO)] for i, name in enumerate(names)}


def _label_key(label: str) -> str:
    """The key of `context/metric[key]` ('' for a scalar label)."""
    return label[label.index("[") + 1:-1] if label.endswith("]") else ""


def _groups_of(frame: pd.DataFrame, groupby: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(legend label, rows) per group of `frame`, in sorted order."""
    if not groupby:
        return [("all runs", frame)]
    grouped = frame.groupby(groupby, dropna=False, sort=True)
    return [(group_label(groupby, key if isinstance(key, tuple) else (key,)), rows) for key, rows in grouped]


@styled
def class_heatmap(accuracy: pd.DataFrame, learned: pd.DataFrame, groupby: list[str], campaign: str) -> Figure:
    """Class × epoch heatmap of accuracy per group (one panel each), with the mean first-learned
    epoch of every class marked. Both frames are `build_curves` output for `<ctx>/class_acc[*]` and
    `<ctx>/class_learned_epoch[*]`."""
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
    figure.suptitle(f"{campaign}: val/class_acc per class and epoch (mean over runs; | = first learned)")
    return figure


@styled
def robustness_figure(curves: pd.DataFrame, groupby: list[str], campaign: str) -> Figure:
    """Accuracy against the attack size ε at each group's last measured epoch: FGSM solid, PGD
    dashed, ε = 0 the clean accuracy. `curves` is `build_curves` output for `probe/clean_acc`,
    `probe/fgsm_acc[*]` and `probe/pgd_acc[*]`."""
    figure, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    colours = _group_colours(curves, groupby)
    for name, frame in _groups_of(curves, groupby):
        colour = colours[name]
        last = frame.sort_values("epoch").groupby("label").tail(1)
        clean = last.loc[last["label"] == CLEAN_ACC.label(), "mean"]
        for attack, style in ((FGSM_ACC, "-"), (PGD_ACC, "--")):
            rows = last[last["label"].str.startswith(attack.label() + "[")]
            eps = rows["label"].map(lambda label: float(_label_key(label))).to_numpy()
            order = np.argsort(eps)
            x, y = eps[order], rows["mean"].to_numpy(float)[order]
            if len(clean):
                x, y = np.r_[0.0, x], np.r_[float(clean.iloc[0]), y]
            ax.plot(x, y, style, marker="o", color=colour, label=f"{name} · {attack.name.split('_')[0].upper()}")
    ax.set_xlabel("attack size ε (model input units)")
    ax.set_ylabel("accuracy on the probe set (fraction)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    figure.legend(fontsize="small", loc="outside lower center", ncol=2)
    ax.set_title(f"{campaign}: accuracy vs ε at the last epoch (solid FGSM, dashed PGD)", fontsize=10)
    return figure
