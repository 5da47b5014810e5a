"""Figures of latent training phases (`pab-campaign states`): model selection over K, the transition
graph, and learning curves on bands coloured by phase."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pab_campaign.analysis.plots.style import STATE_COLOURS, axis_label, metric_range, styled

# Phases past the eighth reuse the colours with a hatch.
STATE_HATCHES = ("", "//", "..", "xx")


def state_style(state: int) -> tuple[str, str]:
    """(colour, hatch) of a phase in every figure."""
    return STATE_COLOURS[state % len(STATE_COLOURS)], STATE_HATCHES[(state // len(STATE_COLOURS)) % len(STATE_HATCHES)]


@styled
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


@styled
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
        ax.annotate(f"stay {transmat[s, s]:.2f}\n{occupancy[s]:.0%} of epochs", tuple(layout[s]), xytext=(0, -34),
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


@styled
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
        low, high = metric_range(metric)
        ax.fill_between(line["epoch"], (line["mean"] - ci).clip(lower=low), (line["mean"] + ci).clip(upper=high),
                        color="black", alpha=0.2, lw=0)
        ax.plot(line["epoch"], line["mean"], color="black", lw=1.5)
        ax.set_title(f"{group} ({int(line['runs'].max())} runs)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{axis_label(metric)}\nmean ± CI95 over runs", fontsize=9)
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
