"""Process summary of one run's trajectory (pure: a tidy DataFrame in, numbers, class lists and
recommendations out).

The frame has the trajectory columns `epoch, context, metric, key, value` (see `pab_campaign.store`).
Every summary value is a float; NaN when the trajectory lacks what it needs. Epoch 0 is measured
before training, so the summaries that follow pabkit's definitions read the epochs after training
began (t ≥ 1), the epochs a pabkit user records with `track_epoch`. With L = val loss per epoch:

- `stability_mean|std|max`, `stability_max_epoch`: learning stability `|L(t−1) − L(t)| /
  (|L(t−1)| + 1e-12)` over consecutive measured epochs t − 1 ≥ 1 (std with ddof = 0, as pabkit
  computes it), and the epoch t where it peaked.
- two generalization gaps, positive = overfitting, each over epochs t ≥ 1: the accuracy gap
  `acc_gap = train acc − val acc` (row `val/gen_gap`) and the loss gap `loss_gap = val loss −
  train loss` (row `val/loss_gap`; pabkit's `gen_gap`). For each: `_final` (last), `_max`
  (largest), `_trend` (last − first: pabkit's gap trend is "increasing" when it is > 0) and
  `_slope` (least-squares slope per epoch).
- `early_stop_epoch`, `early_stop_val_loss`: the first epoch of minimal L, and that minimum.
- `overfit_onset`: the first epoch t at which L exceeds its minimum by more than 5 % (of |min|) and
  stays above that line at every later epoch, while the accuracy gap's least-squares slope from the
  epoch before t to the end is positive. NaN when the run never overfits so.
- class patterns, from the class-wise probe's first-learned epoch of each class at its own last
  measurement. With n measurements at t ≥ 1 and p the position (0-based) among them of a class's
  first-learned epoch (n when never learned), pabkit's cut-offs are `early: p < ⌊n/3⌋` and `late: p > ⌊2n/3⌋`, so a
  class never learned counts as late (other cut-offs: `class_cutoffs`). `class_early`,
  `class_late`, `class_never`, `class_unstable` (forgotten at least once) count classes;
  `class_learned_mean` = mean first-learned epoch, `class_acc_min`, `class_acc_spread` = lowest
  class accuracy and max − min at each class's last measurement. `RunSummary.classes` lists the
  class ids.
- robustness, per attack metric and ε (`fgsm_acc[0.1]`, `pgd_acc[0.1]`) and `consistency`, over
  t ≥ 1: `_peak` (max), `_peak_epoch` (the first epoch of the max; pabkit counts the 1-based
  position in its list, the same number when every epoch is measured), `_final` (last) and
  `_degradation_pct` = 100 · (peak − final) / peak (0 when peak ≤ 0), pabkit's relative degradation.

`summarize_run` adds the class ids of each group and the recommendations of
`recommendations`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pab_campaign.analysis.summary.recommendations import PABKIT_RULES, Recommendation, Rules, recommend
from pab_campaign.metrics import ADVERSARIAL_METRICS, CONSISTENCY, PROBE, names

ONSET_MARGIN = 0.05
# The robustness metrics summarized by peak and degradation (clean accuracy is not).
ROBUSTNESS_METRICS = names((*ADVERSARIAL_METRICS, CONSISTENCY))


class Trajectory:
    """One run's tidy frame with its rows grouped once by (context, metric, key), so that each
    `series` is a lookup instead of a scan of the whole frame."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.assign(**{c: frame[c].astype(object) for c in ("context", "metric", "key")})
        keys = self.frame["key"].where(self.frame["key"].notna(), "")
        self.rows = self.frame.groupby([self.frame["context"], self.frame["metric"], keys], sort=False).indices

    def series(self, context: str, metric: str, key: str | None = None) -> pd.Series:
        """Values of one (context, metric, key) by epoch, sorted, NaN-free; empty when absent."""
        positions = self.rows.get((context, metric, "" if key is None else key), [])
        values = self.frame.iloc[positions][["epoch", "value"]].dropna()
        return values.groupby("epoch")["value"].last().sort_index().astype(float)


def _slope(values: pd.Series) -> float:
    """Least-squares slope of values against their epoch index; NaN with fewer than 2 points."""
    if len(values) < 2:
        return math.nan
    return float(np.polyfit(values.index.to_numpy(float), values.to_numpy(float), 1)[0])


def learning_stability(val_loss: pd.Series) -> pd.Series:
    """|L(t−1) − L(t)| / (|L(t−1)| + 1e-12) at each measured epoch after the first."""
    previous = val_loss.shift(1)
    return ((previous - val_loss).abs() / (previous.abs() + 1e-12)).iloc[1:]


def overfitting_onset(val_loss: pd.Series, gap: pd.Series) -> float:
    """First epoch from which L stays > (1 + ONSET_MARGIN)·min above its minimum with a rising gap;
    NaN if none."""
    if val_loss.empty:
        return math.nan
    line = val_loss.min() + ONSET_MARGIN * abs(val_loss.min())
    above = (val_loss > line).to_numpy()
    # stays_above[i]: every epoch from position i to the end is above the line
    stays_above = np.flip(np.logical_and.accumulate(np.flip(above)))
    epochs = val_loss.index.to_numpy()
    for position in np.flatnonzero(stays_above):
        if position == 0:
            continue
        window = gap[gap.index >= epochs[position - 1]]
        if _slope(window) > 0:
            return float(epochs[position])
    return math.nan


def _trained(series: pd.Series) -> pd.Series:
    """The part of an epoch-indexed series measured after training began (epochs ≥ 1)."""
    return series[series.index >= 1]


def _stability(run: Trajectory) -> dict[str, float]:
    values = learning_stability(_trained(run.series("val", "loss")))
    return {
        "stability_mean": float(values.mean()) if len(values) else math.nan,
        "stability_std": float(values.std(ddof=0)) if len(values) else math.nan,
        "stability_max": float(values.max()) if len(values) else math.nan,
        "stability_max_epoch": float(values.idxmax()) if len(values) else math.nan,
    }


def _acc_gap(run: Trajectory) -> pd.Series:
    gap = run.series("val", "gen_gap")
    if gap.empty:
        gap = (run.series("train", "acc") - run.series("val", "acc")).dropna()
    return gap


def _loss_gap(run: Trajectory) -> pd.Series:
    gap = run.series("val", "loss_gap")
    if gap.empty:
        gap = (run.series("val", "loss") - run.series("train", "loss")).dropna()
    return gap


def _gap_summary(prefix: str, gap: pd.Series) -> dict[str, float]:
    """`<prefix>_final|max|trend|slope` of a gap series over its epochs ≥ 1 (see the module docstring)."""
    gap = _trained(gap)
    if gap.empty:
        return {f"{prefix}_{name}": math.nan for name in ("final", "max", "trend", "slope")}
    return {
        f"{prefix}_final": float(gap.iloc[-1]),
        f"{prefix}_max": float(gap.max()),
        f"{prefix}_trend": float(gap.iloc[-1] - gap.iloc[0]),
        f"{prefix}_slope": _slope(gap),
    }


def _generalization(run: Trajectory) -> dict[str, float]:
    acc_gap, val_loss = _acc_gap(run), run.series("val", "loss")
    return {
        **_gap_summary("acc_gap", acc_gap),
        **_gap_summary("loss_gap", _loss_gap(run)),
        "early_stop_epoch": float(val_loss.idxmin()) if len(val_loss) else math.nan,
        "early_stop_val_loss": float(val_loss.min()) if len(val_loss) else math.nan,
        "overfit_onset": overfitting_onset(val_loss, acc_gap),
    }


Cutoffs = tuple[Fraction, Fraction]
# pabkit's class cut-offs: early before the first third of the measurements, late after two thirds.
PABKIT_CUTOFFS: Cutoffs = (Fraction(1, 3), Fraction(2, 3))
CLASS_GROUPS = ("early", "late", "never", "unstable")


def class_cutoffs(early: float | str | Fraction, late: float | str | Fraction) -> Cutoffs:
    """Cut-offs as exact fractions (`"1/3"`, `0.25`, `Fraction(2, 3)`); ValueError unless 0 ≤ early ≤ late ≤ 1."""
    try:
        pair = (Fraction(early).limit_denominator(1000), Fraction(late).limit_denominator(1000))
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"class cut-offs {early}, {late} must be fractions of the run, e.g. 1/3 2/3") from None
    if not 0 <= pair[0] <= pair[1] <= 1:
        raise ValueError(f"class cut-offs {early}, {late} must satisfy 0 <= early <= late <= 1, e.g. 1/3 2/3")
    return pair


def _class_ids(keys: pd.Series) -> list[str]:
    return sorted(keys.astype(str), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))


def _classes(run: Trajectory, cutoffs: Cutoffs) -> tuple[dict[str, float], dict[str, list[str]]]:
    names = ("class_early", "class_late", "class_never", "class_unstable", "class_learned_mean",
             "class_acc_min", "class_acc_spread")
    frame = run.frame
    rows = frame[frame["metric"] == "class_learned_epoch"]
    if not rows.empty:
        context = "val" if (rows["context"] == "val").any() else rows["context"].iloc[0]
        rows = rows[rows["context"] == context]
    # the measurements after training began, in epoch order
    measured = np.sort(rows.loc[rows["epoch"] >= 1, "epoch"].unique())
    if len(measured) == 0:
        return dict.fromkeys(names, math.nan), {group: [] for group in CLASS_GROUPS}
    # each class at its own last measurement (a class measured no more is still classified)
    at_last = _last_per_class(rows)
    of_context = frame[frame["context"] == context]
    accuracy = _last_per_class(of_context[of_context["metric"] == "class_acc"]).dropna()
    forgets = _last_per_class(of_context[of_context["metric"] == "class_forgets"])
    n = len(measured)
    # the position of each first-learned epoch among them (n when never learned)
    position = pd.Series(np.searchsorted(measured, at_last.fillna(np.inf).to_numpy()), index=at_last.index)
    groups = {
        "early": position[position < math.floor(n * cutoffs[0])].index,
        "late": position[position > math.floor(n * cutoffs[1])].index,
        "never": at_last[at_last.isna()].index,
        "unstable": forgets[forgets > 0].index,
    }
    unstable = run.series(context, "classes_unstable")
    values = {
        "class_early": float(len(groups["early"])),
        "class_late": float(len(groups["late"])),
        "class_never": float(len(groups["never"])),
        "class_unstable": float(unstable.iloc[-1]) if len(unstable) else float(len(groups["unstable"])),
        "class_learned_mean": float(at_last.mean()) if at_last.notna().any() else math.nan,
        "class_acc_min": float(accuracy.min()) if len(accuracy) else math.nan,
        "class_acc_spread": float(accuracy.max() - accuracy.min()) if len(accuracy) else math.nan,
    }
    return values, {group: _class_ids(pd.Series(ids)) for group, ids in groups.items()}


def _last_per_class(rows: pd.DataFrame) -> pd.Series:
    """Each key's value (float) at the last epoch `rows` measure it, NaN kept, indexed by key."""
    return rows.sort_values("epoch", kind="stable").drop_duplicates("key", keep="last").set_index("key")[
        "value"].astype(float)


def _robustness(run: Trajectory) -> dict[str, float]:
    summary: dict[str, float] = {}
    frame = run.frame
    probe = frame[(frame["context"] == PROBE) & frame["metric"].isin(ROBUSTNESS_METRICS)]
    pairs = probe[["metric", "key"]].drop_duplicates().itertuples(index=False)
    for metric, key in sorted(pairs, key=lambda pair: (pair[0], str(pair[1]))):
        key = None if pd.isna(key) else key
        values = _trained(run.series(PROBE, metric, key))
        if values.empty:
            continue
        name = f"{metric}[{key}]" if key is not None else str(metric)
        peak, final = float(values.max()), float(values.iloc[-1])
        summary.update({
            f"{name}_peak": peak, f"{name}_peak_epoch": float(values.idxmax()), f"{name}_final": final,
            f"{name}_degradation_pct": 100 * (peak - final) / peak if peak > 0 else 0.0,
        })
    return summary


@dataclass(frozen=True)
class RunSummary:
    """One run's process summary: `values` (name → float, see the module docstring), the class ids of
    each class group (`early`, `late`, `never`, `unstable`) and the recommendations."""

    values: dict[str, float]
    classes: dict[str, list[str]]
    recommendations: list[Recommendation]


def summarize_run(frame: pd.DataFrame, cutoffs: Cutoffs = PABKIT_CUTOFFS, rules: Rules = PABKIT_RULES) -> RunSummary:
    """The summary values, class lists and recommendations of one run's trajectory (see
    `summarize_trajectory` for the values); ValueError when a trajectory column is missing."""
    missing = {"epoch", "context", "metric", "key", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"a trajectory needs columns epoch, context, metric, key, value; missing {sorted(missing)}")
    run = Trajectory(frame)
    class_values, classes = _classes(run, cutoffs)
    values = {**_stability(run), **_generalization(run), **class_values, **_robustness(run)}
    return RunSummary(values, classes, recommend(values, rules))


def summarize_trajectory(frame: pd.DataFrame, cutoffs: Cutoffs = PABKIT_CUTOFFS) -> dict[str, float]:
    """Every process metric of this module for one run's trajectory.

    Parameters
    ----------
    frame : pandas.DataFrame
        One run's tidy trajectory: columns ``epoch, context, metric, key, value``, one row per
        measured value (as `pab_campaign.store.read_trajectory` gives it).
    cutoffs : (Fraction, Fraction)
        The class cut-offs as fractions of the measurements after training began (pabkit's 1/3,
        2/3 by default; `class_cutoffs` builds them).

    Returns
    -------
    dict of str to float
        Stability, the accuracy and loss gaps (final, max, trend, slope), early stopping and
        overfitting onset (in epochs), class patterns (class counts and accuracies), and robustness
        peak, peak epoch, final value and relative degradation (%) per attack and ε; NaN where the
        trajectory lacks what a value needs. The module docstring defines each.

    Raises
    ------
    ValueError
        When a trajectory column is missing.

    Notes
    -----
    With L the val loss per measured epoch: stability ``|L(t-1) - L(t)| / (|L(t-1)| + 1e-12)``
    for t - 1 ≥ 1 (mean, std with ddof=0, max); over epochs ≥ 1, ``acc_gap_*`` of ``val/gen_gap`` (train − val
    acc) and ``loss_gap_*`` of ``val/loss_gap`` (val − train loss), ``_trend`` = last − first and
    ``_slope`` the least-squares slope; ``early_stop_epoch`` the first epoch of minimal L;
    ``overfit_onset`` the first epoch from which L stays more than 5 % of ``|min L|`` above its
    minimum while the accuracy gap rises; class cut-offs ``p < ⌊n/3⌋`` (early) and ``p > ⌊2n/3⌋``
    (late, never learned included) on the position p of the first-learned epoch among the n
    measurements; robustness degradation ``100 · (peak − final) / peak``. Tested against the same
    quantities computed independently with numpy and ``scipy.stats.linregress``, and against
    pabkit's own formulas re-implemented, on constructed trajectories.

    Examples
    --------
    >>> import pandas as pd
    >>> loss, gap = [1.0, 0.6, 0.5, 0.55, 0.6], [0.0, 0.02, 0.05, 0.09, 0.14]
    >>> frame = pd.DataFrame(
    ...     [(e, "val", "loss", None, v) for e, v in enumerate(loss)]
    ...     + [(e, "val", "gen_gap", None, v) for e, v in enumerate(gap)],
    ...     columns=["epoch", "context", "metric", "key", "value"])
    >>> summary = summarize_trajectory(frame)
    >>> summary["early_stop_epoch"], summary["early_stop_val_loss"], summary["overfit_onset"]
    (2.0, 0.5, 3.0)
    >>> round(summary["stability_max"], 4), round(summary["acc_gap_slope"], 4), round(summary["acc_gap_trend"], 4)
    (0.1667, 0.04, 0.12)
    >>> summary["class_never"]  # no class-wise probe in this trajectory
    nan
    """
    return summarize_run(frame, cutoffs).values


def summary_document(directory: Path, epochs: int, cutoffs: Cutoffs, summary: RunSummary) -> dict[str, Any]:
    """One run's summary as `summarize --json` writes it: the run, its epochs, the class cut-offs, the
    summary values (NaN kept: write it through `store.json_safe`), the class lists and the
    recommendations with their evidence."""
    return {
        "run_dir": str(directory), "run_id": directory.name, "epochs": epochs,
        "class_cutoffs": [str(c) for c in cutoffs], "summary": summary.values, "classes": summary.classes,
        "recommendations": [{"topic": r.topic, "message": r.message, "evidence": r.evidence}
                            for r in summary.recommendations],
    }
