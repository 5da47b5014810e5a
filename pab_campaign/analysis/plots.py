"""Figures of a campaign (matplotlib, Agg backend), one function per figure; each returns the Figure."""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pab_campaign.store import atomic_write


def save_png(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write `figure` to `path` as PNG atomically, then release it."""
    try:
        atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(figure)
    return path


def _group_label(groupby: list[str], key: tuple) -> str:
    return ", ".join(f"{name}={value}" for name, value in zip(groupby, key)) or "all runs"


def plot_curves(curves: pd.DataFrame, groupby: list[str], title: str = "") -> Figure:
    """Learning curves: one panel per `label` (context/metric), one line per group (mean over runs
    against epoch) with a band of ± the CI95 half-width. `curves` has the columns of
    `report.build_curves`: *groupby, label, epoch, runs, mean, std, ci95."""
    labels = list(dict.fromkeys(curves["label"]))
    columns = min(2, max(1, len(labels)))
    rows = max(1, math.ceil(len(labels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6.0 * columns, 3.8 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        panel = curves[curves["label"] == label]
        groups = panel.groupby(groupby, dropna=False, sort=True) if groupby else [((), panel)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            group = group.sort_values("epoch")
            line, = ax.plot(group["epoch"], group["mean"], label=_group_label(groupby, key), lw=1.5)
            band = group["ci95"].fillna(0.0)
            ax.fill_between(group["epoch"], group["mean"] - band, group["mean"] + band,
                            color=line.get_color(), alpha=0.2, lw=0)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{label} (mean ± CI95 over runs)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, names, loc="lower center", ncol=min(3, len(names)), fontsize="small",
                      bbox_to_anchor=(0.5, -0.02 * math.ceil(len(names) / 3)))
    if title:
        figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.04 * math.ceil(len(names) / 3) if handles else 0, 1, 1))
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
