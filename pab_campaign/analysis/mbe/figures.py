"""The MBE audit's figure: the candidate against the target (rank-regression line, ρ and p), and raw
and partial |ρ| per group coloured by significance with their bootstrap intervals."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pab_campaign.analysis.plots.style import GROUP_COLOURS, NOT_SIGNIFICANT, SIGNIFICANT, metric_unit, styled

MAX_BARS = 8  # groups in the bar panel: the pooled one, then the first groups that have a ρ


def _rank_regression(x: np.ndarray, y: np.ndarray, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares line of rank(y) on rank(x) (average ranks), drawn back in the values' own
    units through each variable's ranks: a monotone curve whose rank slope is Spearman's ρ."""
    from pab_campaign.analysis.stats.correlation import average_ranks

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


@styled
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
