"""Process summary of one run's trajectory (pure: a tidy DataFrame in, a flat dict of floats out).

The frame has the trajectory columns `epoch, context, metric, key, value` (see `pab_campaign.store`). Every value
is a float; NaN when the trajectory lacks what it needs. Definitions (L = val loss per epoch,
gap = val/gen_gap = train acc − val acc, positive = overfitting):

- `stability_mean|std|max`: learning stability `|L(t−1) − L(t)| / (|L(t−1)| + 1e-12)` over
  consecutive measured epochs (std with ddof = 1).
- `gap_final`, `gap_max`, `gap_slope`: last and largest gap, and the least-squares slope of the gap
  per epoch over epochs ≥ 1.
- `early_stop_epoch`, `early_stop_val_loss`: the first epoch of minimal L, and that minimum.
- `overfit_onset`: the first epoch t at which L exceeds its minimum by more than 5 % (of |min|) and
  stays above that line at every later epoch, while the gap's least-squares slope from the epoch
  before t to the end is positive. NaN when the run never overfits so.
- class patterns (from the class-wise probe, at the last epoch E): `class_early` = classes first
  learned at epoch ≤ E/4, `class_late` = learned after E/2, `class_never` = never learned,
  `class_unstable` = forgotten at least once, `class_learned_mean` = mean first-learned epoch,
  `class_acc_min`, `class_acc_spread` = lowest class accuracy and max − min at the last epoch.
- robustness, per attack metric and ε (`fgsm_acc[0.1]`, `pgd_acc[0.1]`) and `consistency`:
  `_peak` (max over epochs), `_final` (last), `_degradation` (= peak − final).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

ONSET_MARGIN = 0.05
ROBUSTNESS_METRICS = ("fgsm_acc", "pgd_acc", "consistency")


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


def _stability(run: Trajectory) -> dict[str, float]:
    values = learning_stability(run.series("val", "loss"))
    return {
        "stability_mean": float(values.mean()) if len(values) else math.nan,
        "stability_std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
        "stability_max": float(values.max()) if len(values) else math.nan,
    }


def _gap(run: Trajectory) -> pd.Series:
    gap = run.series("val", "gen_gap")
    if gap.empty:
        gap = (run.series("train", "acc") - run.series("val", "acc")).dropna()
    return gap


def _generalization(run: Trajectory) -> dict[str, float]:
    gap, val_loss = _gap(run), run.series("val", "loss")
    return {
        "gap_final": float(gap.iloc[-1]) if len(gap) else math.nan,
        "gap_max": float(gap.max()) if len(gap) else math.nan,
        "gap_slope": _slope(gap[gap.index >= 1]),
        "early_stop_epoch": float(val_loss.idxmin()) if len(val_loss) else math.nan,
        "early_stop_val_loss": float(val_loss.min()) if len(val_loss) else math.nan,
        "overfit_onset": overfitting_onset(val_loss, gap),
    }


def _classes(run: Trajectory) -> dict[str, float]:
    names = ("class_early", "class_late", "class_never", "class_unstable", "class_learned_mean",
             "class_acc_min", "class_acc_spread")
    frame = run.frame
    rows = frame[frame["metric"] == "class_learned_epoch"]
    if rows.empty:
        return dict.fromkeys(names, math.nan)
    context = "val" if (rows["context"] == "val").any() else rows["context"].iloc[0]
    rows = rows[rows["context"] == context]
    last = int(rows["epoch"].max())
    learned = rows.loc[rows["epoch"] == last, "value"].astype(float)
    accuracy = frame[(frame["context"] == context) & (frame["metric"] == "class_acc")
                     & (frame["epoch"] == last)]["value"].dropna().astype(float)
    unstable = run.series(context, "classes_unstable")
    final_epoch = float(frame["epoch"].max())
    return {
        "class_early": float((learned <= final_epoch / 4).sum()),
        "class_late": float((learned > final_epoch / 2).sum()),
        "class_never": float(learned.isna().sum()),
        "class_unstable": float(unstable.iloc[-1]) if len(unstable) else math.nan,
        "class_learned_mean": float(learned.mean()) if learned.notna().any() else math.nan,
        "class_acc_min": float(accuracy.min()) if len(accuracy) else math.nan,
        "class_acc_spread": float(accuracy.max() - accuracy.min()) if len(accuracy) else math.nan,
    }


def _robustness(run: Trajectory) -> dict[str, float]:
    summary: dict[str, float] = {}
    frame = run.frame
    probe = frame[(frame["context"] == "probe") & frame["metric"].isin(ROBUSTNESS_METRICS)]
    pairs = probe[["metric", "key"]].drop_duplicates().itertuples(index=False)
    for metric, key in sorted(pairs, key=lambda pair: (pair[0], str(pair[1]))):
        key = None if pd.isna(key) else key
        values = run.series("probe", metric, key)
        if values.empty:
            continue
        name = f"{metric}[{key}]" if key is not None else str(metric)
        peak, final = float(values.max()), float(values.iloc[-1])
        summary.update({f"{name}_peak": peak, f"{name}_final": final, f"{name}_degradation": peak - final})
    return summary


def summarize_trajectory(frame: pd.DataFrame) -> dict[str, float]:
    """Every process metric of this module for one run's trajectory.

    Parameters
    ----------
    frame : pandas.DataFrame
        One run's tidy trajectory: columns ``epoch, context, metric, key, value``, one row per
        measured value (as `pab_campaign.store.read_trajectory` gives it).

    Returns
    -------
    dict of str to float
        Stability, generalisation gap, early stopping and overfitting onset (in epochs), class
        patterns (class counts and accuracies), and robustness peak/final/degradation per attack and
        ε; NaN where the trajectory lacks what a value needs. The module docstring defines each.

    Raises
    ------
    ValueError
        When a trajectory column is missing.

    Notes
    -----
    With L the val loss per measured epoch: stability ``|L(t-1) - L(t)| / (|L(t-1)| + 1e-12)``
    (mean, std with ddof=1, max); ``gap_slope`` the least-squares slope of ``val/gen_gap`` over
    epochs ≥ 1; ``early_stop_epoch`` the first epoch of minimal L; ``overfit_onset`` the first
    epoch from which L stays more than 5 % of ``|min L|`` above its minimum while the gap rises.
    Tested against the same quantities computed independently with numpy and
    ``scipy.stats.linregress`` on constructed trajectories.

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
    >>> round(summary["stability_max"], 4), round(summary["gap_slope"], 4)
    (0.4, 0.04)
    >>> summary["class_never"]  # no class-wise probe in this trajectory
    nan
    """
    missing = {"epoch", "context", "metric", "key", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"a trajectory needs columns epoch, context, metric, key, value; missing {sorted(missing)}")
    run = Trajectory(frame)
    return {**_stability(run), **_generalization(run), **_classes(run), **_robustness(run)}
