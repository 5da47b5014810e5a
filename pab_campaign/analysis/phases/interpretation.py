"""What the phases of a fitted state model mean, as pure functions of the decoded runs.

- Phase profiles: per state, its share of all epochs, the runs that visit it, the epochs it
  typically spans, the mean of each feature in its original unit and in within-run z-scores, and a
  one-line description from the features with the largest |z| means.
- Transitions i → j (a run's Viterbi state changes from i to j): for each feature, the
  standardised mean difference between the z-scored epochs of the segment in i just before and of
  the segment in j just after, pooled over every occurrence: `(mean_after − mean_before) /
  s_pooled`, `s_pooled² = ((n_b − 1) s_b² + (n_a − 1) s_a²) / (n_b + n_a − 2)` (Cohen's d).
- Detours: for each state, the runs that visit it against the runs that do not, compared on the
  convergence epoch (the first epoch whose val/acc reaches 95 % of the run's final val/acc) with
  Welch's two-sided t-test, Cohen's d and Holm-adjusted p over states; and which hyper-parameters
  predict visiting it (Spearman's ρ with a numeric one, Cramér's V with a categorical one).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign.campaign import is_numeric
from pab_campaign.analysis.stats.descriptive import ci95_halfwidths
from pab_campaign.analysis.stats.multicomp import adjust_pvalues
from pab_campaign.analysis.stats.tests import welch_test

CONVERGENCE_FRACTION = 0.95
TOP_FEATURES = 3
TRANSITION_COLUMNS = ["from_state", "to_state", "occurrences", "runs", "probability", "rank", "feature", "smd",
                      "before_mean", "after_mean"]
DETOUR_COLUMNS = ["state", "runs_visiting", "runs_not", "conv_visiting", "conv_not", "difference", "t", "dof", "p",
                  "p_holm", "cohen_d"]
PREDICTOR_COLUMNS = ["state", "hparam", "test", "effect", "p", "p_holm", "visit_rate_by_value"]


def _describe(z_means: pd.Series, top: int) -> str:
    strongest = z_means.reindex(z_means.abs().sort_values(ascending=False).index).head(top)
    return ", ".join(f"{name} {'high' if value > 0 else 'low'} ({value:+.1f} sd)" for name, value in strongest.items())


def phase_profiles(values: Sequence[np.ndarray], z: Sequence[np.ndarray], epochs: Sequence[np.ndarray],
                   states: Sequence[np.ndarray], features: list[str], k: int,
                   top: int = TOP_FEATURES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per state: (summary, feature means).

    `summary` has one row per state: epochs (count), occupancy (share of all epochs), runs (that
    visit it), epoch_from / epoch_to (medians over the visiting runs of its first and last epoch)
    and a description; `means` one row per state and feature: mean (original unit) and z_mean
    (mean within-run z-score). Arguments are per run: original values and z-scores (T_r × F),
    epochs and states (T_r,).
    """
    all_values, all_z, all_states = np.concatenate(values), np.concatenate(z), np.concatenate(states)
    all_epochs = np.concatenate(epochs).astype(float)
    run_of = np.repeat(np.arange(len(states)), [len(s) for s in states])
    # each run's first and last epoch in each state (inf / -inf where it never visits the state)
    first = np.full((len(states), k), np.inf)
    last = np.full((len(states), k), -np.inf)
    np.minimum.at(first, (run_of, all_states), all_epochs)
    np.maximum.at(last, (run_of, all_states), all_epochs)
    rows, means = [], []
    for state in range(k):
        mask = all_states == state
        visiting = np.isfinite(first[:, state])
        z_mean = pd.Series(all_z[mask].mean(axis=0) if mask.any() else np.full(len(features), np.nan), features)
        rows.append({"state": state, "epochs": int(mask.sum()), "occupancy": float(mask.mean()),
                     "runs": int(visiting.sum()),
                     "epoch_from": float(np.median(first[visiting, state])) if visiting.any() else math.nan,
                     "epoch_to": float(np.median(last[visiting, state])) if visiting.any() else math.nan,
                     "description": _describe(z_mean, top) if mask.any() else "never decoded"})
        raw = all_values[mask].mean(axis=0) if mask.any() else np.full(len(features), np.nan)
        means += [{"state": state, "feature": f, "mean": raw[i], "z_mean": z_mean.iloc[i]}
                  for i, f in enumerate(features)]
    return pd.DataFrame(rows), pd.DataFrame(means)


def standardised_difference(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Cohen's d of `after` against `before` per column (pooled sd, ddof 1); NaN where the pooled
    sd is 0 or a side has too few rows."""
    n_b, n_a = len(before), len(after)
    if n_b + n_a < 3 or n_b == 0 or n_a == 0:
        return np.full(before.shape[1], np.nan)
    var_b = before.var(axis=0, ddof=1) if n_b > 1 else np.zeros(before.shape[1])
    var_a = after.var(axis=0, ddof=1) if n_a > 1 else np.zeros(after.shape[1])
    pooled = np.sqrt(((n_b - 1) * var_b + (n_a - 1) * var_a) / (n_b + n_a - 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pooled > 0, (after.mean(axis=0) - before.mean(axis=0)) / pooled, np.nan)


def transition_features(values: Sequence[np.ndarray], z: Sequence[np.ndarray], states: Sequence[np.ndarray],
                        features: list[str], transmat: np.ndarray, top: int = 5) -> pd.DataFrame:
    """For every transition i → j seen in the decoded runs, the `top` features ranked by
    |standardised mean difference| (z-scored segment before vs after, pooled over occurrences),
    with the sign, and their means before and after in original units (TRANSITION_COLUMNS)."""
    all_values, all_z, all_states = np.concatenate(values), np.concatenate(z), np.concatenate(states)
    lengths = [len(s) for s in states]
    run_of = np.repeat(np.arange(len(states)), lengths)
    # segments: maximal stretches of one state within a run; each row's segment number
    new_segment = np.r_[True, (np.diff(all_states) != 0) | (np.diff(run_of) != 0)][:len(run_of)]
    starts = np.flatnonzero(new_segment)
    segment_of = np.cumsum(new_segment) - 1
    state_of, run_of_segment = all_states[starts], run_of[starts]
    # a transition is a segment followed by one of the same run: (state before, state after)
    follows = np.r_[run_of_segment[1:] == run_of_segment[:-1], False]
    next_state = np.r_[state_of[1:], -1]
    previous_state = np.r_[-1, state_of[:-1]]
    preceded = np.r_[False, follows[:-1]]
    rows = []
    for a, b in sorted({(int(x), int(y)) for x, y in zip(state_of[follows], next_state[follows])}):
        occurrences = follows & (state_of == a) & (next_state == b)
        before_rows = occurrences[segment_of]
        after_rows = (preceded & (previous_state == a) & (state_of == b))[segment_of]
        smd = standardised_difference(all_z[before_rows], all_z[after_rows])
        before, after = all_values[before_rows].mean(axis=0), all_values[after_rows].mean(axis=0)
        order = sorted(range(len(features)), key=lambda i: -abs(smd[i]) if np.isfinite(smd[i]) else math.inf)
        for rank, i in enumerate(order[:top], start=1):
            rows.append([a, b, int(occurrences.sum()), len(np.unique(run_of_segment[occurrences])),
                         float(transmat[a, b]), rank, features[i], float(smd[i]), float(before[i]), float(after[i])])
    return pd.DataFrame(rows, columns=TRANSITION_COLUMNS)


def convergence_epochs(curves: pd.DataFrame, fraction: float = CONVERGENCE_FRACTION) -> pd.Series:
    """Per run (index run_id) the first epoch at which `value` reaches `fraction` of the run's
    final value (its value at its last epoch); NaN when that final value is not finite and > 0.
    `curves` has the columns run_id, epoch, value.

    >>> curves = pd.DataFrame({"run_id": ["a"] * 4, "epoch": [0, 1, 2, 3], "value": [0.1, 0.5, 0.96, 1.0]})
    >>> convergence_epochs(curves).to_dict()
    {'a': 2.0}
    """
    ordered = curves.sort_values(["run_id", "epoch"], kind="stable")
    codes, run_ids = pd.factorize(ordered["run_id"], sort=True)
    values, epochs = ordered["value"].to_numpy(float), ordered["epoch"].to_numpy(float)
    last = np.r_[np.flatnonzero(np.diff(codes)), len(codes) - 1] if len(codes) else np.array([], dtype=int)
    final = values[last]
    reached = values >= fraction * final[codes]
    first = np.full(len(run_ids), len(codes))
    np.minimum.at(first, codes[reached], np.flatnonzero(reached))
    usable = np.isfinite(final) & (final > 0)
    result = np.where(usable, epochs[np.minimum(first, len(codes) - 1)] if len(codes) else 0.0, math.nan)
    return pd.Series(result, index=pd.Index(run_ids), name="convergence_epoch", dtype=float)


def visits(states: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per run (index run_id) and state (columns 0..k-1): does the run visit the state?"""
    codes, run_ids = pd.factorize(states["run_id"], sort=True)
    table = np.zeros((len(run_ids), k), dtype=bool)
    table[codes, states["state"].to_numpy(int)] = True
    return pd.DataFrame(table, index=pd.Index(run_ids, name="run_id"), columns=range(k))


def detour_table(visited: pd.DataFrame, convergence: pd.Series) -> pd.DataFrame:
    """Per state (DETOUR_COLUMNS): convergence epoch of the runs visiting it against the runs that do
    not (means, difference visiting − not), Welch's t, dof, p, Holm-adjusted p and Cohen's d."""
    rows = []
    conv = convergence.reindex(visited.index)
    for state in visited.columns:
        mask = visited[state].to_numpy()
        test = welch_test(conv[mask], conv[~mask])
        rows.append([state, int(mask.sum()), int((~mask).sum()), test["mean_a"], test["mean_b"],
                     test["mean_a"] - test["mean_b"], test["t"], test["dof"], test["p"], math.nan, test["cohen_d"]])
    table = pd.DataFrame(rows, columns=DETOUR_COLUMNS)
    table["p_holm"] = adjust_pvalues(table["p"].to_numpy(), "holm")
    return table


def _rates(visit: pd.Series, column: pd.Series) -> str:
    groups = visit.groupby(column.astype(str) if not is_numeric(column) else column)
    if groups.ngroups > 8:
        return ""
    return "; ".join(f"{value}: {rate:.0%}" for value, rate in groups.mean().items())


def hparam_predictors(visited: pd.DataFrame, hparams: pd.DataFrame) -> pd.DataFrame:
    """Per state visited by some runs but not all (among the runs that have the hyper-parameter),
    and per hyper-parameter that varies among the runs (PREDICTOR_COLUMNS, ordered by state then p):
    for a numeric hyper-parameter, Spearman's ρ with visiting (effect) and the two-sided
    Mann–Whitney U test of its values in visiting against other runs (p; a rank test that stays
    valid for a grid's few tied values, where the t approximation of ρ's p gives 1e-79 for 6
    against 6 runs); for a categorical one, Cramér's V with Fisher's exact p for two values, the
    chi-square p (no continuity correction) for more. p_holm: Holm-adjusted over every test of the
    table. visit_rate_by_value: the share of runs visiting per value."""
    from scipy.stats import chi2_contingency, fisher_exact, mannwhitneyu, spearmanr

    rows = []
    for state in visited.columns:
        for name in hparams.columns:
            column = hparams[name].reindex(visited.index)
            known = column.notna()
            values, visits = column[known], visited.loc[known, state].to_numpy(bool)
            if values.astype(str).nunique() < 2 or visits.all() or not visits.any():
                continue
            rates = _rates(visited.loc[known, state], values)
            if is_numeric(column):
                numbers = values.astype(float)
                rho = spearmanr(numbers, visits.astype(float)).statistic
                p = mannwhitneyu(numbers[visits], numbers[~visits], alternative="two-sided").pvalue
                rows.append([state, name, "spearman", float(rho), float(p), rates])
            else:
                table = pd.crosstab(values.astype(str), visits)
                chi2, p, _, _ = chi2_contingency(table, correction=False)
                if table.shape == (2, 2):
                    p = fisher_exact(table.to_numpy()).pvalue
                cramer = math.sqrt(chi2 / (known.sum() * (min(table.shape) - 1)))
                rows.append([state, name, "cramers_v", cramer, float(p), rates])
    frame = pd.DataFrame(rows, columns=[c for c in PREDICTOR_COLUMNS if c != "p_holm"])
    frame.insert(PREDICTOR_COLUMNS.index("p_holm"), "p_holm", adjust_pvalues(frame["p"].to_numpy(float), "holm"))
    return frame.sort_values(["state", "p"], kind="stable", ignore_index=True)


def group_curves(curves: pd.DataFrame, states: pd.DataFrame, groups: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per run group and epoch: (curve, bands). `curve` (group, epoch, runs, mean, ci95) of the
    metric in `curves` (run_id, epoch, value); `bands` (group, epoch, state): the Viterbi state most
    runs of the group are in at that epoch (ties to the lower state). `groups` maps run_id → label."""
    labelled = curves.assign(group=_group_of(curves["run_id"], groups)).dropna(subset=["group", "value"])
    stats = labelled.groupby(["group", "epoch"], sort=True, observed=True)["value"].agg(["count", "mean", "std"])
    stats = stats.reset_index()
    stats["group"] = stats["group"].astype(str)
    stats["ci95"] = ci95_halfwidths(stats["count"].to_numpy(), stats["std"].to_numpy())
    curve = stats.rename(columns={"count": "runs"})[["group", "epoch", "runs", "mean", "ci95"]]
    modal = states.assign(group=_group_of(states["run_id"], groups)).dropna(subset=["group"])
    counts = modal.groupby(["group", "epoch", "state"], sort=True, observed=True).size().rename("n").reset_index()
    counts["group"] = counts["group"].astype(str)
    bands = counts.sort_values(["group", "epoch", "n", "state"], ascending=[True, True, False, True])
    bands = bands.drop_duplicates(["group", "epoch"])[["group", "epoch", "state"]].reset_index(drop=True)
    return curve, bands


def _group_of(run_ids: pd.Series, groups: pd.Series) -> pd.Categorical:
    """The label `groups` gives each of `run_ids` (one per epoch row), missing where it has none, as
    a categorical of the labels in sorted order. Each distinct run id is looked up once (`Series.map`
    over 5 million Arrow strings took minutes), and no column of 5 million strings is built (pandas
    turning one into Arrow strings took seconds)."""
    codes, distinct = pd.factorize(run_ids)
    labels = pd.Series(np.asarray(distinct, dtype=object)).map(groups).tolist()
    names = sorted({label for label in labels if not pd.isna(label)})
    position = {name: i for i, name in enumerate(names)}
    table = np.array([*(-1 if pd.isna(label) else position[label] for label in labels), -1])
    return pd.Categorical.from_codes(table[codes], categories=names)  # code -1 (a missing run id): missing
