"""Figures of a campaign (matplotlib, Agg backend), one function per figure; each returns the Figure.

Every figure uses the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies), labels its axes with units (`metric_unit`) and names the campaign and the metric in
its title.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.figure import Figure

from pab_campaign.store import atomic_write

# Okabe & Ito's colour-blind-safe palette (black last: it is kept for reference lines).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
matplotlib.rcParams["axes.prop_cycle"] = cycler(color=OKABE_ITO)

# Units of the recorded metrics (context/metric without key), for axis labels.
_UNITS = {
    "fraction": ("acc", "class_acc", "clean_acc", "fgsm_acc", "pgd_acc", "consistency", "churn", "gen_gap"),
    "nats": ("loss", "batch_loss", "loss_gap", "early_stop_val_loss"),
    "epochs": ("class_learned_epoch", "early_stop_epoch", "overfit_onset"),
}


def metric_unit(label: str) -> str:
    """The unit of a metric label (`val/acc@3` → 'fraction', `val/loss` → 'nats'); 'value' when the
    metric is a dimensionless statistic (ranks, norms, CKA)."""
    metric = label.split("/", 1)[-1].split("[", 1)[0].split("@", 1)[0]
    return next((unit for unit, names in _UNITS.items() if metric in names), "value")


def axis_label(label: str) -> str:
    """`label (unit)`, the axis label of a metric."""
    return f"{label} ({metric_unit(label)})"


def save_png(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` as PNG atomically, then release it."""
    try:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(figure)
    return path


def _group_label(groupby: list[str], key: tuple) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(groupby, key)) or "all runs"


def plot_curves(curves: pd.DataFrame, groupby: list[str], campaign: str = "") -> Figure:
    """Learning curves: one panel per `label` (context/metric[key]), one line per group (mean over
    runs against epoch) with a band of ± the CI95 half-width; titled by `campaign`. `curves` has
    the columns of `report.build_curves`: *groupby, label, epoch, runs, mean, std, ci95."""
    labels = list(dict.fromkeys(curves["label"]))
    columns = min(2, max(1, len(labels)))
    rows = max(1, math.ceil(len(labels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, 3.4 * rows + 0.8), squeeze=False,
                                layout="constrained")
    for ax, label in zip(axes.flat, labels):
        panel = curves[curves["label"] == label]
        groups = panel.groupby(groupby, dropna=False, sort=True) if groupby else [((), panel)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            group = group.sort_values("epoch")
            marker = "o" if len(group) <= 15 else None
            line, = ax.plot(group["epoch"], group["mean"], label=_group_label(groupby, key), lw=1.5, marker=marker,
                            ms=3)
            band = group["ci95"].fillna(0.0)
            ax.fill_between(group["epoch"], group["mean"] - band, group["mean"] + band,
                            color=line.get_color(), alpha=0.2, lw=0)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(axis_label(label))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    legend = {}
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(name, handle)
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=min(3, len(legend)),
                      fontsize="small")
    shown = labels[0] if len(labels) == 1 else f"{len(labels)} metrics"
    figure.suptitle(f"{campaign + ': ' if campaign else ''}{shown}, mean ± CI95 over runs per group")
    return figure


def figure_name(metric: str) -> str:
    """A file name for `metric` (e.g. `probe/fim_norm@20` -> `probe_fim_norm_at20.png`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", metric.replace("@", "_at")).strip("_") + ".png"


def audit_figure(values: pd.DataFrame, groups: pd.Series | None, rows: pd.DataFrame, metric: str,
                 target: str, baseline: str) -> Figure:
    """Left: `metric` against `target`, one point per run (coloured by group). Right: |raw ρ| and
    |partial ρ| (given the baseline and controls) per group, with their bootstrap 95 % intervals.

    `values` has one row per run; `rows` are the audit table's rows of this metric.
    """
    fig, (scatter, bars) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1.3, 1]})
    usable = values[[metric, target]].dropna()
    if groups is None:
        scatter.scatter(usable[metric], usable[target], s=22, alpha=0.8)
    else:
        labels = groups.reindex(usable.index).astype(str)
        for label in sorted(labels.unique()):
            chosen = usable[labels == label]
            scatter.scatter(chosen[metric], chosen[target], s=22, alpha=0.8, label=label)
        scatter.legend(fontsize=8, title=groups.name, title_fontsize=8)
    scatter.set_xlabel(metric)
    scatter.set_ylabel(f"{target} (last epoch)")
    scatter.set_title(f"{len(usable)} runs", fontsize=10)
    scatter.grid(alpha=0.3)

    position = np.arange(len(rows))
    width = 0.38
    for offset, kind, colour in ((-width / 2, "raw", "tab:blue"), (width / 2, "partial", "tab:orange")):
        rho = rows[f"{kind}_rho"].to_numpy(float)
        low, high = rows[f"{kind}_ci_low"].to_numpy(float), rows[f"{kind}_ci_high"].to_numpy(float)
        # |ρ| with the interval of |ρ|: an interval straddling 0 reaches down to 0.
        abs_low = np.where((low < 0) & (high > 0), 0.0, np.minimum(np.abs(low), np.abs(high)))
        abs_high = np.maximum(np.abs(low), np.abs(high))
        height = np.abs(rho)
        errors = np.vstack([np.clip(height - abs_low, 0, None), np.clip(abs_high - height, 0, None)])
        label = "raw |ρ|" if kind == "raw" else f"partial |ρ| given {baseline}"
        bars.bar(position + offset, np.nan_to_num(height), width, color=colour, label=label,
                 yerr=np.nan_to_num(errors), capsize=3)
    bars.axhline(0.2, color="grey", lw=0.8, ls="--")
    bars.axhline(0.1, color="grey", lw=0.8, ls=":")
    bars.set_xticks(position, [f"{g}\n{v}" for g, v in zip(rows["group"], rows["verdict"])], fontsize=8)
    bars.set_ylim(0, 1.05)
    bars.set_ylabel("|Spearman ρ| with the target")
    bars.legend(fontsize=8, loc="upper right")
    bars.set_title("effect 0.20 (dashed), washout 0.10 (dotted)", fontsize=9)
    fig.suptitle(f"MBE audit of {metric}", fontsize=11)
    fig.tight_layout()
    return fig


def _label_key(label: str) -> str:
    """The key of `context/metric[key]` ('' for a scalar label)."""
    return label[label.index("[") + 1:-1] if label.endswith("]") else ""


def _groups_of(frame: pd.DataFrame, groupby: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(legend label, rows) per group of `frame`, in sorted order."""
    if not groupby:
        return [("all runs", frame)]
    grouped = frame.groupby(groupby, dropna=False, sort=True)
    return [(_group_label(groupby, key if isinstance(key, tuple) else (key,)), rows) for key, rows in grouped]


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
        ax.set_ylabel("class")
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.8, label="class accuracy (fraction)")
    figure.suptitle(f"{campaign}: val/class_acc per class and epoch (mean over runs; | = first learned)")
    return figure


def robustness_figure(curves: pd.DataFrame, groupby: list[str], campaign: str) -> Figure:
    """Accuracy against the attack size ε at each group's last measured epoch: FGSM solid, PGD
    dashed, ε = 0 the clean accuracy. `curves` is `build_curves` output for `probe/clean_acc`,
    `probe/fgsm_acc[*]` and `probe/pgd_acc[*]`."""
    figure, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    for colour, (name, frame) in zip(OKABE_ITO, _groups_of(curves, groupby)):
        last = frame.sort_values("epoch").groupby("label").tail(1)
        clean = last.loc[last["label"] == "probe/clean_acc", "mean"]
        for attack, style in (("fgsm_acc", "-"), ("pgd_acc", "--")):
            rows = last[last["label"].str.startswith(f"probe/{attack}[")]
            eps = rows["label"].map(lambda label: float(_label_key(label))).to_numpy()
            order = np.argsort(eps)
            x, y = eps[order], rows["mean"].to_numpy(float)[order]
            if len(clean):
                x, y = np.r_[0.0, x], np.r_[float(clean.iloc[0]), y]
            ax.plot(x, y, style, marker="o", color=colour, label=f"{name} · {attack.split('_')[0].upper()}")
    ax.set_xlabel("attack size ε (model input units)")
    ax.set_ylabel("accuracy on the probe set (fraction)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    figure.legend(fontsize="small", loc="outside lower center", ncol=2)
    ax.set_title(f"{campaign}: accuracy vs ε at the last epoch (solid FGSM, dashed PGD)", fontsize=10)
    return figure
