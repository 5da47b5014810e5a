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


# Okabe & Ito's colour-blind-safe palette: blue, vermillion, bluish green, orange, reddish purple,
# sky blue, yellow, black.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SIGNIFICANT, NOT_SIGNIFICANT = PALETTE[0], PALETTE[1]
GROUP_COLOURS = PALETTE[2:7] + PALETTE[:2]  # groups in the scatter: not the two significance colours first
MAX_BARS = 8  # groups in the bar panel: the pooled one, then the first groups that have a ρ
_UNITS = {"fraction": ("acc", "class_acc", "clean_acc", "fgsm_acc", "pgd_acc", "consistency", "churn", "gen_gap"),
          "cross-entropy, nats": ("loss", "batch_loss", "loss_gap"),
          "ratio 0–1": ("fim_norm", "sci", "cka_init", "cka_prev", "code_sparsity", "comp_sparsity"),
          "dimensions": ("erank", "stable_rank"),
          "classes": ("classes_learned", "classes_unstable"), "epoch": ("class_learned_epoch",)}


def metric_unit(label: str) -> str:
    """The unit of a metric named `context/metric[key]@epoch` (e.g. `val/loss@20` -> 'cross-entropy,
    nats'); 'as recorded' for a metric this table does not know."""
    name = re.split(r"[\[@]", label.split("/", 1)[-1])[0]
    return next((unit for unit, names in _UNITS.items() if name in names), "as recorded")


def _rank_regression(x: np.ndarray, y: np.ndarray, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares line of rank(y) on rank(x) (average ranks), drawn back in the values' own
    units through each variable's ranks: a monotone curve whose rank slope is Spearman's ρ."""
    from pab_campaign.analysis.stats import average_ranks

    rx, ry = average_ranks(x), average_ranks(y)
    slope = float(np.cov(rx, ry)[0, 1] / np.var(rx, ddof=1))
    ux, first = np.unique(x, return_index=True)
    uy, first_y = np.unique(y, return_index=True)
    grid = np.linspace(ux[0], ux[-1], points)
    fitted = ry.mean() + slope * (np.interp(grid, ux, rx[first]) - rx.mean())
    return grid, np.interp(fitted, ry[first_y], uy)


def _abs_interval(rho: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Error bars (2 × k) of |ρ| from the interval (low, high) of ρ: one straddling 0 reaches 0."""
    abs_low = np.where((low < 0) & (high > 0), 0.0, np.minimum(np.abs(low), np.abs(high)))
    abs_high = np.maximum(np.abs(low), np.abs(high))
    height = np.abs(rho)
    return np.nan_to_num(np.vstack([np.clip(height - abs_low, 0, None), np.clip(abs_high - height, 0, None)]))


def _scatter_panel(ax, values: pd.DataFrame, groups: pd.Series | None, pooled: pd.Series, metric: str,
                   target: str) -> None:
    """`metric` against `target`, one point per run (coloured by group), the rank-regression curve,
    and stage 1's ρ and p in the title."""
    usable = values[[metric, target]].dropna()
    if groups is None or groups.nunique() > len(GROUP_COLOURS):  # too many groups to tell apart by colour
        ax.scatter(usable[metric], usable[target], s=26, alpha=0.85, color=GROUP_COLOURS[0], edgecolor="white",
                   lw=0.5)
    else:
        labels = groups.reindex(usable.index).astype(str)
        markers = "osD^v<>P"
        for i, label in enumerate(sorted(labels.unique())):
            chosen = usable[labels == label]
            ax.scatter(chosen[metric], chosen[target], s=30, alpha=0.85, color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
                       marker=markers[i % len(markers)], edgecolor="white", lw=0.5, label=label)
        ax.legend(fontsize=8, title=groups.name, title_fontsize=8, loc="best")
    if len(usable) >= 2 and usable[metric].nunique() > 1:
        grid, curve = _rank_regression(usable[metric].to_numpy(float), usable[target].to_numpy(float))
        ax.plot(grid, curve, color="black", lw=1.6, label="rank regression")
    adjusted = pooled["raw_p_adj"]
    p_text = f"p = {pooled['raw_p']:.2g}" + ("" if math.isnan(adjusted) or adjusted == pooled["raw_p"]
                                                 else f" (adjusted {adjusted:.2g})")
    stage = f"stage 1 {pooled['stage1']}\n" if pooled["stage1"] else ""
    if math.isnan(pooled["raw_rho"]):
        ax.set_title(f"{pooled['verdict']}: no Spearman ρ, n = {int(pooled['n'])}", fontsize=10)
    else:
        ax.set_title(f"{stage}Spearman ρ = {pooled['raw_rho']:+.3f}, {p_text}, n = {int(pooled['n'])}", fontsize=10)
    ax.set_xlabel(f"{metric} ({metric_unit(metric)})")
    ax.set_ylabel(f"{target}, last epoch ({metric_unit(target)})")
    ax.grid(alpha=0.3)


def _bars_panel(ax, rows: pd.DataFrame, controls: str, alpha: float) -> None:
    """|raw ρ| and |partial ρ| per group, coloured by significance of their adjusted p, with their
    values and bootstrap 95 % intervals; the partial bars hatched."""
    from matplotlib.patches import Patch

    position = np.arange(len(rows))
    width = 0.38
    for offset, kind, hatch in ((-width / 2, "raw", ""), (width / 2, "partial", "///")):
        rho = rows[f"{kind}_rho"].to_numpy(float)
        adjusted = rows[f"{kind}_p_adj"].to_numpy(float)
        significant = adjusted < alpha if kind == "raw" else adjusted <= alpha
        colours = [SIGNIFICANT if s else NOT_SIGNIFICANT for s in significant]
        errors = _abs_interval(rho, rows[f"{kind}_ci_low"].to_numpy(float), rows[f"{kind}_ci_high"].to_numpy(float))
        height = np.nan_to_num(np.abs(rho))
        ax.bar(position + offset, height, width, color=colours, hatch=hatch, edgecolor="black", lw=0.6,
               yerr=errors, capsize=3, ecolor="#333333")
        for x, top, r in zip(position + offset, height + errors[1], rho):
            ax.text(x, min(top + 0.02, 1.08), "n/a" if math.isnan(r) else f"{abs(r):.2f}", ha="center",
                    va="bottom", fontsize=8)
    ax.axhline(0.2, color="grey", lw=0.8, ls="--")
    ax.axhline(0.1, color="grey", lw=0.8, ls=":")
    groups = [g.split("=", 1)[1] if "=" in g else f"{g} runs" for g in rows["group"]]
    ax.set_xticks(position, [f"{g}\n{v}\n{c}" for g, v, c in zip(groups, rows["verdict"], rows["effect_class"])],
                  fontsize=8, rotation=30 if len(rows) > 4 else 0)
    if len(rows) > 1:
        ax.set_xlabel(f"all runs, then per {rows['group'].iloc[1].split('=', 1)[0]}", fontsize=9)
    ax.set_xlim(-0.5 - max(0.2, 0.7 / len(rows)), len(rows) - 0.5 + max(0.2, 0.7 / len(rows)))
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("|Spearman ρ| with the target (unitless, 0–1)")
    handles = [Patch(facecolor="white", edgecolor="black", label="raw |ρ|"),
               Patch(facecolor="white", edgecolor="black", hatch="///", label=f"partial |ρ| given {controls}"),
               Patch(color=SIGNIFICANT, label=f"significant at α = {alpha:g} (adjusted p)"),
               Patch(color=NOT_SIGNIFICANT, label="not significant"),
               plt.Line2D([], [], color="grey", ls="--", lw=0.8, label="effect 0.20"),
               plt.Line2D([], [], color="grey", ls=":", lw=0.8, label="washout 0.10")]
    below = -0.2 - (0.08 if len(rows) > 1 else 0.0) - (0.08 if len(rows) > 4 else 0.0)
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, below), ncol=3, frameon=False)
    pooled = rows.iloc[0]
    decided = pooled["verdict"] in ("PASS", "loss proxy")
    adjusted = "" if pooled["partial_p_adj"] == pooled["partial_p"] else "adjusted "
    sign = "≤" if pooled["verdict"] == "PASS" else ">"
    verdict = (f"{pooled['verdict']} ({adjusted}partial p = {pooled['partial_p_adj']:.2g} {sign} {alpha:g})"
               if decided else f"no verdict ({pooled['verdict']})")
    ax.set_title(f"stage 4: {verdict}\nraw vs partial |ρ|, bootstrap 95 % intervals", fontsize=10)


def audit_figure(values: pd.DataFrame, groups: pd.Series | None, rows: pd.DataFrame, metric: str,
                 target: str, controls: str, campaign: str, alpha: float) -> Figure:
    """The MBE figure of one candidate. Left: `metric` against `target`, one point per run (coloured
    by group), with the rank-regression curve and the pooled stage-1 ρ and p. Right: |raw ρ| and
    |partial ρ| (given `controls`) per group, coloured by the significance of their adjusted p
    (against `alpha`), with values and bootstrap 95 % intervals.

    `values` has one row per run; `rows` are the audit table's rows of this metric (the first is
    the pooled group; of the others, at most MAX_BARS − 1 with a ρ are drawn); `campaign` names the
    campaign in the title.
    """
    fig, (scatter, bars) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.15, 1]})
    _scatter_panel(scatter, values, groups, rows.iloc[0], metric, target)
    measured = rows.iloc[:1].index.union(rows.index[rows["raw_rho"].notna()], sort=False)
    shown = rows.loc[measured[:MAX_BARS]]
    _bars_panel(bars, shown, controls, alpha)
    if len(shown) < len(rows):
        bars.text(0.01, 0.99, f"{len(shown)} of {len(rows)} groups shown (every group is in the CSV)",
                  transform=bars.transAxes, fontsize=7, va="top")
    fig.suptitle(f"{campaign} — MBE audit of {metric} against {target} (α = {alpha:g})", fontsize=12)
    fig.tight_layout()
    return fig


# ---- latent phases (`pab-campaign states`) ------------------------------------------------------
# Okabe & Ito's colour-blind-safe palette (black replaced by grey, which reads as a background band);
# states past the eighth reuse the colours with a hatch.
STATE_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999")
STATE_HATCHES = ("", "//", "..", "xx")


def state_style(state: int) -> tuple[str, str]:
    """(colour, hatch) of a phase in every figure."""
    return STATE_COLOURS[state % len(STATE_COLOURS)], STATE_HATCHES[(state // len(STATE_COLOURS)) % len(STATE_HATCHES)]


def _unit(metric: str) -> str:
    """The unit of a metric named like ours: accuracies are fractions, losses nats (cross-entropy)."""
    name = metric.split("/")[-1].split("[")[0]
    return " (fraction)" if name.endswith("acc") else " (nats)" if name.endswith("loss") else ""


def states_selection_figure(selection: pd.DataFrame, chosen_k: int, title: str) -> Figure:
    """Left: held-out log-likelihood against K — each K's representative (± one standard error over
    held-out runs), the mean over restarts (± their sd) and the best restart. Right: AIC and BIC on
    the fit runs. The chosen K is marked in both. `selection` has `states.SELECTION_COLUMNS`."""
    fitted = selection[selection["restarts_ok"] > 0]
    k = fitted["k"].to_numpy()
    figure, (held, criteria) = plt.subplots(1, 2, figsize=(11, 4.2))
    held.errorbar(k, fitted["heldout_ll"], yerr=fitted["heldout_ll_se"].fillna(0), color=STATE_COLOURS[4],
                  marker="o", capsize=3, lw=1.6, label="representative (best fit) ± 1 SE over held-out runs")
    held.errorbar(k + 0.08, fitted["heldout_ll_mean"], yerr=fitted["heldout_ll_std"].fillna(0),
                  color=STATE_COLOURS[0], marker="s", ms=4, capsize=2, lw=1, ls="--", label="mean over restarts ± sd")
    held.plot(k, fitted["heldout_ll_best"], ls="none", marker="x", color=STATE_COLOURS[5], label="best restart")
    held.set_ylabel("held-out log-likelihood (nats)")
    criteria.plot(k, fitted["aic"], marker="o", color=STATE_COLOURS[2], label="AIC")
    criteria.plot(k, fitted["bic"], marker="s", color=STATE_COLOURS[6], label="BIC")
    criteria.set_ylabel("criterion on the fit runs (nats; lower is better)")
    for ax in (held, criteria):
        ax.axvline(chosen_k, color="black", ls=":", lw=1.2, label=f"chosen K = {chosen_k}")
        ax.set_xlabel("K (number of states)")
        ax.set_xticks(selection["k"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def states_transition_figure(transmat: np.ndarray, occupancy: np.ndarray, title: str,
                             min_probability: float = 0.05) -> Figure:
    """The phases as an arc diagram: nodes left to right in the order the phases occur (their
    numbers), area ∝ share of all epochs, the probability of staying and the share written below;
    an arc i → j for every transition probability ≥ `min_probability` (width ∝ p), forward
    transitions above the line, backward ones below."""
    import networkx as nx

    k = len(transmat)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(k))
    edges = [(i, j, float(transmat[i, j])) for i in range(k) for j in range(k)
             if i != j and transmat[i, j] >= min_probability]
    graph.add_weighted_edges_from(edges)
    layout = {s: np.array([float(s), 0.0]) for s in range(k)}
    # Equal scales on both axes, so that an arc's apex rises a known 0.225 of its span (arc3, rad 0.45),
    # with room under the line for the text below the nodes (about 0.6 units).
    forward = max([j - i for i, j, _ in edges if j > i], default=0)
    backward = max([i - j for i, j, _ in edges if j < i], default=0)
    top, bottom = 0.225 * forward + 0.45, -max(0.7, 0.225 * backward + 0.3)
    width = max(6.0, 1.4 * k + 1.5)
    figure, ax = plt.subplots(figsize=(width, width * (top - bottom) / (k + 0.4) + 1.0))
    sizes = [500 + 3500 * float(share) for share in occupancy]
    nx.draw_networkx_nodes(graph, layout, ax=ax, node_size=sizes, node_color=[state_style(s)[0] for s in range(k)],
                           edgecolors="black", linewidths=1.0)
    nx.draw_networkx_labels(graph, layout, ax=ax, font_size=11, font_weight="bold")
    for s in range(k):
        ax.annotate(f"stay {transmat[s, s]:.2f}\n{occupancy[s]:.0%} of epochs", layout[s], xytext=(0, -34),
                    textcoords="offset points", ha="center", va="top", fontsize=8)
    if edges:
        style = "arc3,rad=-0.45"
        nx.draw_networkx_edges(graph, layout, ax=ax, node_size=sizes, width=[1 + 5 * p for _, _, p in edges],
                               arrowsize=14, edge_color="#444444", connectionstyle=style)
        nx.draw_networkx_edge_labels(graph, layout, ax=ax, connectionstyle=style, font_size=8,
                                     edge_labels={(i, j): f"{p:.2f}" for i, j, p in edges})
    ax.set_xlim(-0.7, k - 0.3)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    ax.set_title(f"{title}\nphases in order of occurrence; arcs: P(i → j) ≥ {min_probability:g} (forward above, "
                 "backward below)", fontsize=10)
    ax.axis("off")
    figure.tight_layout()
    return figure


def _state_spans(epochs: np.ndarray, states: np.ndarray) -> list[tuple[float, float, int]]:
    """(start, end, state) bands covering each run of equal states, half an epoch either side."""
    spans = []
    start = 0
    for i in range(1, len(states) + 1):
        if i == len(states) or states[i] != states[start]:
            spans.append((epochs[start] - 0.5, epochs[i - 1] + 0.5, int(states[start])))
            start = i
    return spans


def states_curves_figure(curve: pd.DataFrame, bands: pd.DataFrame, k: int, metric: str, title: str,
                         groupby: list[str], max_panels: int = 24) -> Figure:
    """One panel per run group: `metric`'s mean over the group's runs against epoch with a band of
    ± the CI95 half-width, over a background coloured by the phase most runs are in at each epoch.
    `curve` and `bands` come from `phases.group_curves`."""
    from matplotlib.patches import Patch

    groups = list(dict.fromkeys(curve["group"]))
    shown = groups[:max_panels]
    columns = min(3, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.4 * rows), squeeze=False)
    for ax, group in zip(axes.flat, shown):
        band = bands[bands["group"] == group].sort_values("epoch")
        for start, end, state in _state_spans(band["epoch"].to_numpy(), band["state"].to_numpy()):
            colour, hatch = state_style(state)
            ax.axvspan(start, end, facecolor=colour, alpha=0.35, hatch=hatch, lw=0)
        line = curve[curve["group"] == group].sort_values("epoch")
        ci = line["ci95"].fillna(0.0)
        ax.fill_between(line["epoch"], line["mean"] - ci, line["mean"] + ci, color="black", alpha=0.2, lw=0)
        ax.plot(line["epoch"], line["mean"], color="black", lw=1.5)
        ax.set_title(f"{group} ({int(line['runs'].max())} runs)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric}{_unit(metric)}\nmean ± CI95 over runs", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    handles = [Patch(facecolor=state_style(s)[0], hatch=state_style(s)[1], alpha=0.5, label=f"phase {s}")
               for s in range(k)]
    figure.legend(handles=handles, loc="lower center", ncol=min(k, 8), fontsize=9, bbox_to_anchor=(0.5, 0.0))
    suffix = f" (first {len(shown)} of {len(groups)} groups)" if len(shown) < len(groups) else ""
    grouped = f"; groups by {', '.join(groupby)}" if groupby else ""
    figure.suptitle(f"{title}{grouped}{suffix}", fontsize=11)
    figure.tight_layout(rect=(0, 0.06 if rows == 1 else 0.04, 1, 1))
    return figure
