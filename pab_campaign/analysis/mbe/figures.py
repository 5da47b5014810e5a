"""The MBE audit's figure: the candidate against the target (rank-regression line, ρ and p; points
coloured by a hyper-parameter), and signed raw and partial ρ per group with their bootstrap
intervals, a zero line and significance on the adjusted p."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pab_campaign.analysis.plots.groups import MAX_GROUPS, group_style
from pab_campaign.analysis.plots.style import GROUP_COLOURS, NOT_SIGNIFICANT, SIGNIFICANT, metric_unit, styled
from pab_campaign.formatting import value_text

MAX_BARS = 8  # groups in the bar panel: the pooled one, then the first groups that have a ρ


def rank_regression(x: np.ndarray, y: np.ndarray, points: int = 200) -> tuple[np.ndarray, np.ndarray] | None:
    """The least-squares line of rank(y) on rank(x) (average ranks), drawn back in the values' own
    units through each variable's ranks: a monotone curve whose rank slope is Spearman's ρ, as
    `points` (x, y) pairs; None for fewer than two runs or a candidate with one value."""
    from pab_campaign.analysis.stats.correlation import average_ranks

    if len(x) < 2 or len(np.unique(x)) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    slope = float(np.cov(rx, ry)[0, 1] / np.var(rx, ddof=1))
    ux, first = np.unique(x, return_index=True)
    uy, first_y = np.unique(y, return_index=True)
    grid = np.linspace(ux[0], ux[-1], points)
    fitted = ry.mean() + slope * (np.interp(grid, ux, rx[first]) - rx.mean())
    return grid, np.interp(fitted, ry[first_y], uy)


def colour_groups(values: pd.Series, hparams: pd.DataFrame, limit: int = MAX_GROUPS) -> pd.Series | None:
    """The hyper-parameter that explains most of the variance of `values` (η² = between-value sum of
    squares / total, over runs with a value), as each run's value in text, named
    `<name> (explains x % of the variance)`; None when no hyper-parameter has 2..`limit` values.
    The seed is never chosen: it names a replicate, not a setting. Of hyper-parameters that split
    the runs alike (equal η² to 9 decimals: `model.name`, the `model.hidden` each model sets and a
    `model.channels` only CNNs have), the one with fewer runs missing it wins, then a config group's
    choice (a name ending `.name`: the setting the others follow from), then the one with fewer
    values."""
    usable = values.dropna()
    best, best_name, best_key = None, "", (-1.0, 0, False, 0)
    total = float(((usable - usable.mean()) ** 2).sum())
    for name in hparams.columns:
        if name == "seed" or name.endswith(".seed"):
            continue
        column = hparams[name].reindex(usable.index)
        labels = column.map(value_text)
        if not 2 <= labels.nunique() <= limit or total == 0:
            continue
        means = usable.groupby(labels).transform("mean")
        share = float(((means - usable.mean()) ** 2).sum()) / total
        key = (round(share, 9), -int(column.isna().sum()), name.endswith(".name"), -labels.nunique())
        if key > best_key:
            best, best_name, best_key = labels, name, key
    return None if best is None else best.rename(f"{best_name} (explains {best_key[0]:.0%} of the variance)")


def _scatter_panel(ax, values: pd.DataFrame, groups: pd.Series | None, pooled: pd.Series, metric: str,
                   target: str) -> None:
    """`metric` against `target`, one point per run coloured and marked by `groups` (at most
    MAX_GROUPS values, the rest grey and counted), the rank-regression curve, and stage 1's ρ and p
    in the title."""
    usable = values[[metric, target]].dropna()
    if groups is None:
        ax.scatter(usable[metric], usable[target], s=26, alpha=0.85, color=GROUP_COLOURS[0], edgecolor="white",
                   lw=0.5, label=f"{len(usable)} runs")
    else:
        labels = groups.reindex(usable.index).astype(str)
        names = sorted(labels.unique())
        for i, label in enumerate(names[:MAX_GROUPS]):
            chosen, style = usable[labels == label], group_style(i)
            ax.scatter(chosen[metric], chosen[target], s=30, alpha=0.85, color=style.colour, marker=style.marker,
                       edgecolor="white", lw=0.5, label=f"{label} ({len(chosen)})")
        rest = usable[labels.isin(names[MAX_GROUPS:])]
        if len(rest):
            ax.scatter(rest[metric], rest[target], s=16, color="#bbbbbb", label=f"{len(names) - MAX_GROUPS} more "
                       f"values ({len(rest)} runs)")
    line = rank_regression(usable[metric].to_numpy(float), usable[target].to_numpy(float))
    if line is not None:
        ax.plot(*line, color="black", lw=1.6, label="rank regression")
    ax.legend(fontsize=7, title=None if groups is None else f"colour: {groups.name}", title_fontsize=7,
              loc="best", framealpha=0.8)
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


def _forest_panel(ax, rows: pd.DataFrame, controls: str, alpha: float) -> None:
    """Signed raw and partial ρ per group side by side (circle above, square below), each with its
    bootstrap 95 % interval as measured (never folded at 0), filled and blue when its adjusted p is
    significant; a zero line, the effect (±0.2) and washout (±0.1) lines."""
    position = np.arange(len(rows), dtype=float)
    for offset, kind, marker in ((-0.17, "raw", "o"), (0.17, "partial", "s")):
        rho = rows[f"{kind}_rho"].to_numpy(float)
        low, high = rows[f"{kind}_ci_low"].to_numpy(float), rows[f"{kind}_ci_high"].to_numpy(float)
        adjusted = rows[f"{kind}_p_adj"].to_numpy(float)
        significant = adjusted < alpha if kind == "raw" else adjusted <= alpha
        for y, r, lo, hi, s in zip(position + offset, rho, low, high, significant):
            if math.isnan(r):
                ax.text(0, y, "n/a", ha="center", va="center", fontsize=7)
                continue
            colour = SIGNIFICANT if s else NOT_SIGNIFICANT
            measured = not (math.isnan(lo) or math.isnan(hi))
            if measured:  # from lo to hi as measured: a percentile interval may leave ρ outside it
                ax.hlines(y, lo, hi, color=colour, lw=1.4, gid=f"{kind}-interval")
                ax.plot([lo, hi], [y, y], ls="none", marker="|", ms=7, mew=1.4, color=colour)
            ax.plot([r], [y], ls="none", marker=marker, color=colour, mfc=colour if s else "white", mec=colour, ms=6)
            text = f"{r:+.2f}" + (f" [{lo:+.2f}, {hi:+.2f}]" if measured else "")
            ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7, annotation_clip=False)
    ax.axvline(0, color="black", lw=1.0)
    for x in (-0.2, 0.2):
        ax.axvline(x, color="grey", lw=0.8, ls="--")
    for x in (-0.1, 0.1):
        ax.axvline(x, color="grey", lw=0.8, ls=":")
    names = [g.split("=", 1)[1] if "=" in g else f"{g} runs" for g in rows["group"]]
    ax.set_yticks(position, [f"{g} (n={int(n)})\n{v} · {c}" for g, n, v, c in
                             zip(names, rows["n"], rows["verdict"], rows["effect_class"])], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel("Spearman ρ with the target (signed, −1 to 1)")
    ax.grid(alpha=0.3, axis="x")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="none", marker="o", color="black", mfc="white", label="raw ρ"),
               Line2D([], [], ls="none", marker="s", color="black", mfc="white", label=f"partial ρ given {controls}"),
               Line2D([], [], ls="none", marker="o", color=SIGNIFICANT,
                      label=f"significant: adjusted p vs α = {alpha:g}"),
               Line2D([], [], ls="none", marker="o", color=NOT_SIGNIFICANT, mfc="white", label="not significant"),
               Line2D([], [], color="grey", ls="--", lw=0.8, label="effect ±0.20"),
               Line2D([], [], color="grey", ls=":", lw=0.8, label="washout ±0.10")]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    pooled = rows.iloc[0]
    decided = pooled["verdict"] in ("PASS", "loss proxy")
    adjusted = "" if pooled["partial_p_adj"] == pooled["partial_p"] else "adjusted "
    sign = "≤" if pooled["verdict"] == "PASS" else ">"
    verdict = (f"{pooled['verdict']} ({adjusted}partial p = {pooled['partial_p_adj']:.2g} {sign} {alpha:g})"
               if decided else f"no verdict ({pooled['verdict']})")
    ax.set_title(f"stage 4: {verdict}\nraw and partial ρ, bootstrap 95 % intervals", fontsize=10)


@styled
def audit_figure(values: pd.DataFrame, groups: pd.Series | None, rows: pd.DataFrame, metric: str,
                 target: str, controls: str, campaign: str, alpha: float,
                 hparams: pd.DataFrame | None = None) -> Figure:
    """The MBE figure of one candidate. Left: `metric` against `target`, one point per run coloured
    by `groups` (the audit's --groupby) or, without it, by the hyper-parameter of `hparams` that
    explains most of the candidate's variance (named in the legend); the rank-regression curve and
    the pooled stage-1 ρ and p. Right: signed raw and partial ρ (given `controls`) per group with
    their bootstrap 95 % intervals, a zero line, significance on the adjusted p (against `alpha`).

    `values` has one row per run; `rows` are the audit table's rows of this metric (the first is
    the pooled group; of the others, at most MAX_BARS − 1 with a ρ are drawn); `campaign` names the
    campaign in the title. A caption under the figure says over how many runs and what the intervals are.
    """
    if groups is None and hparams is not None:
        groups = colour_groups(values[metric], hparams)
    measured = rows.iloc[:1].index.union(rows.index[rows["raw_rho"].notna()], sort=False)
    shown = rows.loc[measured[:MAX_BARS]]
    fig, (scatter, forest) = plt.subplots(1, 2, figsize=(13, 5.2 + 0.25 * max(0, len(shown) - 4)),
                                          gridspec_kw={"width_ratios": [1.15, 1]})
    _scatter_panel(scatter, values, groups, rows.iloc[0], metric, target)
    _forest_panel(forest, shown, controls, alpha)
    left_out = f" {len(rows) - len(shown)} of {len(rows)} groups left out of the right panel (all are in the CSV)." \
        if len(shown) < len(rows) else ""
    fig.suptitle(f"{campaign} — MBE audit of {metric} against {target} (α = {alpha:g})", fontsize=12)
    caption = (f"{int(rows.iloc[0]['n'])} completed runs with both values, one point each. Intervals: percentile "
               f"bootstrap 95 % over runs; significance on the p-value adjusted over the audit's family.{left_out}")
    fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=8, color="#333333")
    fig.tight_layout(rect=(0, 0.04, 0.93, 1))
    return fig
