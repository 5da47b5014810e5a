"""Learning curves from per-group aggregates: the group of each run (a number, groups in sorted
order of their hyper-parameter values), the aggregates of the campaign's finest grouping kept
beside the index (`curve_store`) or computed for the labels it lacks, and the curves frame built
from aggregates and the groups' values."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign import curve_store
from pab_campaign.analysis.campaign.campaign import Campaign
from pab_campaign.analysis.campaign.curve_store import CurveAggregates
from pab_campaign.analysis.stats.descriptive import ci95_halfwidths

# Aggregates of some labels of the runs `run_ids`, each in group `groups[i]`: (run_ids, groups, labels).
Compute = Callable[[list[str], np.ndarray, list[str]], CurveAggregates]


def group_codes(values: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's group (int64, shape (rows,)): its number among the distinct rows of `values` (one
    column per hyper-parameter), sorted by value with missing values last; and one row of values
    per group, in that order (one row without columns when `values` has none)."""
    if values.shape[1] == 0:
        codes = np.zeros(len(values), dtype=np.int64)
    else:
        positional = values.set_axis(range(values.shape[1]), axis=1)
        codes = positional.groupby(list(positional.columns), dropna=False, sort=True).ngroup().to_numpy(np.int64)
    first = np.unique(codes, return_index=True)[1]
    return codes, values.iloc[first].reset_index(drop=True)


def aggregates_of(campaign: Campaign, done: pd.DataFrame, codes: np.ndarray, labels: list[str],
                  compute: Compute, keep: bool) -> CurveAggregates:
    """The aggregates of `labels` over the runs `done` (rows of the index) in groups `codes`; with
    `keep`, read from (and added to) those kept beside the campaign's index for exactly these runs
    and groups, so that only labels they lack are computed."""
    run_ids = done["run_id"].tolist()
    directory = campaign.index_dir if keep and campaign.whole else None
    if directory is None:
        return compute(run_ids, codes, labels)
    stamp = curve_store.token(run_ids, codes, done[["trajectory_size", "trajectory_mtime_ns"]].to_numpy())
    stored = curve_store.load(directory, stamp, int(codes.max()) + 1)
    missing = [label for label in labels if stored is None or label not in stored.labels]
    if not missing and stored is not None:
        return stored.having(labels)
    computed = compute(run_ids, codes, missing)
    stored = computed if stored is None else stored.plus(computed)
    curve_store.save(directory, stamp, stored)
    return stored.having(labels)


def curves_frame(aggregates: CurveAggregates, keys: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """`build_curves`' frame: the columns of `keys` (one row per group number; text as `str`), label,
    epoch, runs, mean, std and the CI95 half-width, ordered by label (as in `labels`), group and epoch."""
    rows = aggregates.rows
    position = rows["label"].map({label: i for i, label in enumerate(labels)}).to_numpy()
    rows = rows.iloc[np.lexsort((rows["epoch"].to_numpy(), rows["group"].to_numpy(), position))]
    text = [c for c in keys.columns if keys[c].dtype == object and all(isinstance(v, str) for v in keys[c].dropna())]
    groups = keys.astype({c: "str" for c in text}).iloc[rows["group"].to_numpy()].reset_index(drop=True)
    curves = pd.concat([groups, rows.drop(columns="group").reset_index(drop=True)], axis=1)
    curves["ci95"] = ci95_halfwidths(curves["runs"].to_numpy(), curves["std"].to_numpy())
    return curves
