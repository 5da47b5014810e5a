"""Grouped summaries of a campaign: per group of hyper-parameters, the number of runs and the
mean, standard deviation (ddof=1) and Student-t CI95 half-width of each metric; and
learning curves aggregated over seeds per group (mean and CI95 per epoch).

Runs of several campaign ids (run.json's `campaign`: a merged campaign, or several campaigns read
together) are summarised per campaign id first, as tcbench's `report` does: `campaign` is then the
first grouping key, and `write_report(..., per_campaign=True)` writes one CSV per campaign id."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign.campaign import (
    Campaign,
    completed_runs,
    drop_infinite,
    hparam_values,
    indexed_metrics,
    varying_hparams,
)
from pab_campaign.analysis.campaign.curve_store import MAX_NAMED, CurveAggregates
from pab_campaign.analysis.campaign.index_layout import as_hparam_name
from pab_campaign.analysis.campaign.naming import ids_suffix, slug
from pab_campaign.analysis.stats.descriptive import ci95_halfwidths, describe
from pab_campaign.analysis.summary.curve_groups import aggregates_of, curves_frame, group_codes
from pab_campaign.analysis.summary.report_plan import (
    CAMPAIGN_KEY,
    STATS,
    SUMMARY_CONTEXT,
    drop_untracked,
    hparam_columns,
    output_names,
    report_name,
    requested_labels,
)
from pab_campaign.errors import CampaignError, did_you_mean

# The label of a trajectory row in SQL: `context/metric`, or `context/metric[key]` for a keyed value.
LABEL_SQL = "context || '/' || metric || coalesce('[' || key || ']', '')"
# Whether a row's (or a group's) label is one of the parameter `labels`.
LABEL_TEST = f"{LABEL_SQL} IN (SELECT unnest($labels::VARCHAR[]))"
ALL_KEYS = "*"


def label_filter(labels: list[str], exact: bool = True) -> tuple[str, dict[str, Any]]:
    """A WHERE condition (and its parameters) keeping the rows whose label is one of `labels`: the
    exact `LABEL_TEST` (parameter `labels`), after tests on `context`, `metric` and `key` alone that
    the Parquet reader applies while it scans (each a superset: every way to split a label into its
    parts is allowed, a context or a metric holding '/' or '[' included). With `exact` False, those
    tests alone (the caller applies `LABEL_TEST` where it costs less, e.g. once per group)."""
    contexts, metrics = set(), set()
    for label in labels:
        for cut in (i for i, char in enumerate(label) if char == "/"):
            contexts.add(label[:cut])
            rest = label[cut + 1:]
            metrics.add(rest)
            metrics.update(rest[:i] for i, char in enumerate(rest) if char == "[")
    if not contexts:
        return "false", {}
    params: dict[str, Any] = {"labels": list(labels)} if exact else {}
    params.update({f"label_context{i}": value for i, value in enumerate(sorted(contexts))})
    params.update({f"label_metric{i}": value for i, value in enumerate(sorted(metrics))})
    parts = [f"context IN ({', '.join(f'$label_context{i}' for i in range(len(contexts)))})",
             f"metric IN ({', '.join(f'$label_metric{i}' for i in range(len(metrics)))})"]
    if not any(label.endswith("]") for label in labels):
        parts.append("key IS NULL")
    if exact:
        parts.append(LABEL_TEST)
    return " AND ".join(parts), params


def summarize(per_run: pd.DataFrame, groupby: list[str], columns: list[str]) -> pd.DataFrame:
    """One row per group: `runs`, then `<column>.mean`, `.std`, `.ci95` for every column
    (`descriptive.describe`, as the warm report computes them).

    NaN values are left out of each statistic (so `runs` can exceed a metric's own count).
    """
    frame = per_run[[*groupby, *columns]].copy()
    frame[columns] = frame[columns].astype(float)
    if not groupby:
        frame["_all"] = 0
    keys = groupby or ["_all"]
    grouped = frame.groupby(keys, dropna=False, sort=True)
    out = grouped.size().rename("runs").to_frame()
    for column in columns:
        described = [describe(values) for values in grouped[column].agg(list)]
        for stat in STATS:
            out[f"{column}.{stat}"] = [getattr(one, stat) for one in described]
    out = out.reset_index()
    return out.drop(columns="_all") if not groupby else out


@dataclass
class Report:
    groupby: list[str]
    metrics: list[str]
    per_run: pd.DataFrame
    summary: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # The campaign ids of the runs summarised (run.json's `campaign`).
    per_run_campaigns: list[str] = field(default_factory=list)


def choose_groupby(campaign: Campaign, done: pd.DataFrame, groupby: list[str] | None) -> list[str]:
    """`groupby` checked against the hyper-parameters; every one that varies (but the seed) when None."""
    if groupby is None:
        return varying_hparams(done, campaign.hparam_names)
    groupby = [as_hparam_name(g, campaign.hparam_names) for g in groupby]
    unknown = [g for g in groupby if g not in campaign.hparam_names]
    if unknown:
        raise CampaignError(f"--groupby {', '.join(unknown)}: no such hyper-parameter"
                            f"{did_you_mean(unknown[0], campaign.hparam_names)}; choose from "
                            f"{', '.join(campaign.hparam_names)}")
    return groupby


def keyed_labels(campaign: Campaign, done: pd.DataFrame) -> dict[str, list[str]]:
    """The keys of every keyed metric of the runs `done`: {`context/metric`: [key, ...]}, keys in
    natural order (class 2 before class 10). Asked once per command for the same runs (the page
    asks for every keyed section)."""
    ids = done["run_id"].tolist()
    memo = ("keyed_labels", tuple(ids))
    if memo not in campaign.memo:
        found = campaign.query_trajectories(
            "SELECT DISTINCT context, metric, key FROM traj "
            "WHERE key IS NOT NULL AND run_id IN (SELECT unnest($ids::VARCHAR[]))", {"ids": ids})
        keys: dict[str, list[str]] = {}
        for context, metric, key in zip(found["context"], found["metric"], found["key"]):
            keys.setdefault(f"{context}/{metric}", []).append(key)
        campaign.memo[memo] = {name: sorted(values, key=_natural) for name, values in sorted(keys.items())}
    return {name: list(values) for name, values in campaign.memo[memo].items()}


def _natural(text: str) -> tuple:
    """Sort key that orders numbers inside text by value (`2` < `10`, `0.05` < `0.1`)."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _expand_keys(campaign: Campaign, done: pd.DataFrame, labels: list[str]) -> list[str]:
    """Replace `context/metric[*]` by one label per key; a key the runs never recorded is an error."""
    keyed = [label for label in labels if label.endswith("]") and "[" in label]
    if not keyed:
        return labels
    known = keyed_labels(campaign, done)
    expanded = []
    for label in labels:
        if label not in keyed:
            expanded.append(label)
            continue
        name, key = label[:-1].split("[", 1)
        if name not in known:
            raise CampaignError(f"{name} has no keyed values in these runs; keyed metrics: "
                                f"{', '.join(known) or 'none'}")
        if key == ALL_KEYS:
            expanded += [f"{name}[{k}]" for k in known[name]]
        elif key in known[name]:
            expanded.append(label)
        else:
            raise CampaignError(f"{label}: no key '{key}' in these runs; {name} has keys "
                                f"{', '.join(known[name])} (or [*] for all)")
    return expanded


def _choose_metrics(campaign: Campaign, done: pd.DataFrame, contexts: list[str] | None, metrics: list[str] | None,
                    notes: list[str]) -> list[str]:
    """Labels to report: `context/metric`, `context/metric[key]` (`[*]` = every key) or
    `summary/<name>`; untracked ones are dropped with a note, or refused where named (`drop_untracked`)."""
    labels = _expand_keys(campaign, done, requested_labels(contexts, metrics))
    return drop_untracked(labels, indexed_metrics(done), contexts, metrics, notes)


def _values_at_epoch(campaign: Campaign, done: pd.DataFrame, labels: list[str], epoch: str | int) -> pd.DataFrame:
    """Wide frame (index run_id, one column per label) of the values at `epoch` from the compacted
    trajectories: an epoch number, each label's last epoch in the run ('last'), or the run's epoch
    of minimal val/loss ('best', the index column `best_epoch`)."""
    chosen, params = label_filter(labels)
    params = {**params, "ids": done["run_id"].tolist()}
    rows = (f"SELECT run_id, epoch, {LABEL_SQL} AS label, value FROM traj "
            f"WHERE {chosen} AND run_id IN (SELECT unnest($ids::VARCHAR[]))")
    if epoch == "last":
        sql = f"SELECT run_id, label, arg_max(value, epoch) AS value FROM ({rows}) GROUP BY run_id, label"
    elif epoch == "best":
        sql = (f"SELECT r.run_id, r.label, r.value FROM ({rows}) r "
               "JOIN best b ON r.run_id = b.run_id AND r.epoch = b.epoch")
    else:
        sql, params = f"SELECT run_id, label, value FROM ({rows}) WHERE epoch = $epoch", {**params, "epoch": int(epoch)}
    best = done[["run_id", "best_epoch"]].rename(columns={"best_epoch": "epoch"}).dropna()
    long = campaign.query_trajectories(sql, params, tables={"best": best})
    if long.empty:
        raise CampaignError(f"no run has {', '.join(labels)} at epoch {epoch}; choose an epoch the runs reached")
    wide = long.pivot_table(index="run_id", columns="label", values="value", aggfunc="first", dropna=False)
    return wide.reindex(index=done["run_id"], columns=labels)


def _summary_values(campaign: Campaign, done: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Wide frame (index run_id) of whole-run process summaries, one column per `summary/<name>` label."""
    from pab_campaign.analysis.campaign.campaign import load_trajectories
    from pab_campaign.analysis.summary.trajectory import summarize_trajectory

    trajectories = load_trajectories(campaign, done["run_id"].tolist())
    table = pd.DataFrame.from_dict(
        {run_id: summarize_trajectory(frame) for run_id, frame in trajectories.groupby("run_id")}, orient="index")
    names = [label.split("/", 1)[1] for label in labels]
    unknown = [name for name in names if name not in table.columns]
    if unknown:
        raise CampaignError(f"{SUMMARY_CONTEXT}/{unknown[0]} is not a process-summary metric"
                            f"{did_you_mean(unknown[0], table.columns)}; choose from {', '.join(table.columns)}")
    return table[names].set_axis(labels, axis=1).reindex(done["run_id"])


def build_report(
    campaign: Campaign, groupby: list[str] | None = None, contexts: list[str] | None = None,
    metrics: list[str] | None = None, epoch: str | int = "last",
) -> Report:
    """Summarise the completed runs of `campaign` per group of hyper-parameters, at one epoch.

    Parameters
    ----------
    campaign : Campaign
        The campaign, from `pab_campaign.analysis.campaign.open_campaign`.
    groupby : list of str, optional
        Hyper-parameters to group by; default: every one that varies across the completed runs,
        except the seed and any that only restates those before it.
    contexts : list of str, optional
        Contexts crossed with `metrics` (default ``val, test``).
    metrics : list of str, optional
        Metric names (default ``acc, loss``), or full ``context/metric`` labels; ``summary/<name>``
        is a whole-run process summary (see `summarize_trajectory`).
    epoch : 'last', 'best' or int
        Where each run's values are read: its last epoch, its epoch of minimal val/loss, or this
        epoch number.

    Returns
    -------
    Report
        ``groupby`` and ``metrics`` (the labels reported); ``per_run`` (one row per usable run);
        ``summary``: one row per group with ``runs`` and, per label and ``duration_s``,
        ``<label>.mean``, ``.std`` and ``.ci95``; ``notes`` for the user. Runs without any finite
        value are set aside on the campaign with their reason.

    Raises
    ------
    CampaignError
        For an unknown hyper-parameter or an untracked metric named explicitly, or when no
        completed run has a value.

    Notes
    -----
    Per group and label, over the runs with a finite value: the mean, the standard deviation s
    (ddof=1) and the CI95 half-width ``t_{0.975, n-1} · s / √n`` (`ci95_halfwidth`). Tested
    against the same statistics computed with pandas, ``scipy.stats.t`` and statsmodels'
    ``DescrStatsW(x).tconfint_mean()`` from the run files read one by one.

    Examples
    --------
    A campaign of two learning rates × three seeds, written in the data contract's format:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pab_campaign import store
    >>> from pab_campaign.analysis.campaign.campaign import open_campaign
    >>> tmp = tempfile.TemporaryDirectory()
    >>> final_acc = {(0.1, 0): 0.80, (0.1, 1): 0.84, (0.1, 2): 0.82,
    ...              (0.01, 0): 0.70, (0.01, 1): 0.74, (0.01, 2): 0.69}
    >>> for (lr, seed), acc in final_acc.items():
    ...     run = store.run_dir(Path(tmp.name) / "demo", f"lr{lr}-seed{seed}")
    ...     buffer = store.TrajectoryBuffer()
    ...     for epoch, value in enumerate([0.1, acc]):
    ...         buffer.add(epoch, "val", "acc", value)
    ...         buffer.add(epoch, "val", "loss", 1 - value)
    ...     store.write_trajectory(run, buffer.to_table())
    ...     store.write_run_json(run, store.RunRecord(run.name, store.RunStatus.COMPLETED, epochs_done=1,
    ...                                               duration_s=10.0, hparams={"optimizer.lr": lr, "seed": seed}))
    >>> report = build_report(open_campaign(Path(tmp.name) / "demo"), metrics=["val/acc"])
    >>> report.groupby, report.metrics
    (['optimizer.lr'], ['val/acc'])
    >>> columns = ["optimizer.lr", "runs", "val/acc.mean", "val/acc.ci95"]
    >>> print(report.summary[columns].round(4).to_string(index=False))
     optimizer.lr  runs  val/acc.mean  val/acc.ci95
             0.01     3          0.71        0.0657
             0.10     3          0.82        0.0497
    >>> from pab_campaign.analysis.stats.descriptive import ci95_halfwidth
    >>> round(ci95_halfwidth([0.70, 0.74, 0.69]), 4)
    0.0657
    >>> tmp.cleanup()
    """
    done = completed_runs(campaign)
    notes: list[str] = []
    groupby = choose_groupby(campaign, done, groupby)
    if done[CAMPAIGN_KEY].nunique() > 1 and CAMPAIGN_KEY not in groupby:
        groupby = [CAMPAIGN_KEY, *groupby]
    labels = _choose_metrics(campaign, done, contexts, metrics, notes)
    measured = [label for label in labels if not label.startswith(f"{SUMMARY_CONTEXT}/")]
    summaries = [label for label in labels if label.startswith(f"{SUMMARY_CONTEXT}/")]
    indexed = [label for label in measured if not label.endswith("]")] if epoch in ("last", "best") else []
    values = done[[f"{label}@{epoch}" for label in indexed]].set_axis(indexed, axis=1).set_index(done["run_id"])
    if len(indexed) < len(measured):
        read = [label for label in measured if label not in indexed]
        values = values.join(_values_at_epoch(campaign, done, read, epoch))[measured]
    if summaries:
        values = values.join(_summary_values(campaign, done, summaries))[labels]
    hparams = [name for name in groupby if name != CAMPAIGN_KEY]  # the campaign id is a run.json field
    columns = hparam_columns(hparams, labels)
    table = hparam_values(done.set_index("run_id"), hparams).set_axis(columns, axis=1)
    if CAMPAIGN_KEY in groupby:
        table.insert(0, CAMPAIGN_KEY, done.set_index("run_id")[CAMPAIGN_KEY])
        columns = [CAMPAIGN_KEY, *columns]
    per_run = table.join(done.set_index("run_id")["duration_s"]).join(values).reset_index()
    groupby = columns
    per_run[labels] = drop_infinite(per_run.set_index("run_id")[labels], notes).to_numpy()
    empty = per_run[labels].isna().all(axis=1)
    for run_id in per_run.loc[empty, "run_id"]:
        campaign.skip(run_id, f"no finite value of {', '.join(labels)} at epoch {epoch}")
    per_run = per_run[~empty]
    if per_run.empty:
        raise CampaignError(f"no completed run of {campaign.directory} has a value of {', '.join(labels)} at "
                            f"epoch {epoch}; see the skipped runs above")
    for label in labels:
        lacking = int(per_run[label].isna().sum())
        if lacking:
            notes.append(f"{lacking} of {len(per_run)} runs have no finite {label}: left out of its statistics")
    summary = summarize(per_run, groupby, [*labels, "duration_s"])
    ids = sorted(done.set_index("run_id").loc[per_run["run_id"], CAMPAIGN_KEY].dropna().astype(str).unique())
    return Report(groupby, labels, per_run, summary, notes, ids)


def split_layout(summary: pd.DataFrame, groupby: list[str], labels: list[str]) -> pd.DataFrame:
    """A `Report.summary` with the context as a row level, as tcbench lays out its report: one row
    per (context, group), columns `context`, the groupby, `runs`, then `<metric>.mean|std|ci95` per
    metric name (NaN where a context lacks that metric) and `duration_s.*`.

    >>> wide = pd.DataFrame({"lr": [0.1], "runs": [3], "val/acc.mean": [0.8], "val/acc.std": [0.01],
    ...                      "val/acc.ci95": [0.02], "test/acc.mean": [0.7], "test/acc.std": [0.02],
    ...                      "test/acc.ci95": [0.05], "duration_s.mean": [9.0], "duration_s.std": [1.0],
    ...                      "duration_s.ci95": [2.5]})
    >>> split_layout(wide, ["lr"], ["val/acc", "test/acc"])[["context", "lr", "runs", "acc.mean"]]
      context   lr  runs  acc.mean
    0     val  0.1     3       0.8
    1    test  0.1     3       0.7
    """
    stats = STATS
    contexts = list(dict.fromkeys(label.split("/", 1)[0] for label in labels))
    metrics = list(dict.fromkeys(label.split("/", 1)[1] for label in labels))
    pieces = []
    for context in contexts:
        piece = summary[[*groupby, "runs"]].copy()
        piece.insert(0, "context", context)
        for metric in metrics:
            for stat in stats:
                column = f"{context}/{metric}.{stat}"
                piece[f"{metric}.{stat}"] = summary[column] if column in summary else float("nan")
        for stat in stats:
            piece[f"duration_s.{stat}"] = summary[f"duration_s.{stat}"]
        pieces.append(piece)
    return pd.concat(pieces, ignore_index=True)


def report_path(campaign: Campaign, groupby: list[str], epoch: str | int, campaign_ids: list[str] | None,
                folder: Path | None = None, layout: str = "wide") -> Path:
    """`<folder>/summary_<groupby>_<epoch>[_<campaign ids>][_split].csv` (`groupby` without the
    campaign key); the folder defaults to the campaign's `summary/`."""
    return (folder or campaign.summary_dir) / report_name(groupby, epoch, campaign_ids, layout)


def write_report(campaign: Campaign, report: Report, epoch: str | int, campaign_ids: list[str] | None = None,
                 folder: Path | None = None, layout: str = "wide") -> Path:
    """Write the summary CSV, in the `layout` (wide, or split: the context as a row level) and the
    `folder` (default the campaign's `summary/`, where runs.parquet, the index, is already up to
    date); returns its path."""
    name = report_path(campaign, report.groupby, epoch, campaign_ids, folder, layout).name
    frame = split_layout(report.summary, report.groupby, report.metrics) if layout == "split" else report.summary
    return campaign.write_output(name, lambda tmp: frame.to_csv(tmp, index=False), folder)


def write_reports_per_campaign(campaign: Campaign, report: Report, epoch: str | int, folder: Path | None = None,
                               layout: str = "wide") -> list[Path]:
    """One summary CSV per campaign id of the runs summarised, each holding that campaign's groups and
    named with its id as a `--campaign-id` filter names it (`summary_<groupby>_<epoch>_<id>.csv`).

    >>> import tempfile
    >>> from pab_campaign import store
    >>> from pab_campaign.analysis.campaign.campaign import open_campaign
    >>> tmp = Path(tempfile.mkdtemp())
    >>> for name, accs in (("sgd", [0.8, 0.9]), ("adam", [0.7, 0.6])):
    ...     for seed, acc in enumerate(accs):
    ...         run = store.run_dir(tmp / name, f"seed{seed}")
    ...         buffer = store.TrajectoryBuffer()
    ...         buffer.add(1, "val", "acc", acc)
    ...         store.write_trajectory(run, buffer.to_table())
    ...         store.write_run_json(run, store.RunRecord(run.name, store.RunStatus.COMPLETED, campaign=name,
    ...                                                   duration_s=1.0, hparams={"seed": seed}))
    >>> report = build_report(open_campaign([tmp / "sgd", tmp / "adam"]), metrics=["val/acc"])
    >>> print(report.summary[["campaign", "runs", "val/acc.mean"]].round(3).to_string(index=False))
    campaign  runs  val/acc.mean
        adam     2          0.65
         sgd     2          0.85
    >>> [p.name for p in write_reports_per_campaign(open_campaign(tmp / "sgd"), report, "last", folder=tmp)]
    ['summary_all_last_adam.csv', 'summary_all_last_sgd.csv']
    """
    frame = split_layout(report.summary, report.groupby, report.metrics) if layout == "split" else report.summary
    if CAMPAIGN_KEY in report.groupby:
        pieces = [(str(cid), part) for cid, part in frame.groupby(CAMPAIGN_KEY, sort=True)]
    else:
        pieces = [(cid, frame) for cid in report.per_run_campaigns[:1]]
    paths = []
    for cid, piece in pieces:
        name = report_path(campaign, report.groupby, epoch, [cid], folder, layout).name

        def write(tmp: Path, piece: pd.DataFrame = piece) -> None:
            piece.to_csv(tmp, index=False)

        paths.append(campaign.write_output(name, write, folder))
    return paths


CURVE_COLUMNS = ("label", "epoch", "runs", "mean", "std", "ci95")


def build_curves(campaign: Campaign, groupby: list[str] | None = None, contexts: list[str] | None = None,
                 metrics: list[str] | None = None) -> tuple[list[str], pd.DataFrame]:
    """Learning curves over seeds: per group, label (`context/metric`) and epoch, the number of runs
    with a finite value, its mean, std (ddof=1) and CI95 half-width. Returns (groupby, curves).

    The finest grouping (every varying hyper-parameter but the seed, the default) is computed from
    the aggregates kept beside the index when they are those of these runs (`curve_store`; the
    labels they lack are computed and added); a `groupby` that is part of it is pooled from it
    (`coarser_curves`), so that the numbers never depend on what was kept. Another grouping is
    computed from the trajectories."""
    done = completed_runs(campaign)
    finest = choose_groupby(campaign, done, None)
    groupby = finest if groupby is None else choose_groupby(campaign, done, groupby)
    labels = _choose_metrics(campaign, done, contexts, metrics, [])
    if any(label.startswith(f"{SUMMARY_CONTEXT}/") for label in labels):
        raise CampaignError(f"{SUMMARY_CONTEXT}/ metrics are whole-run numbers, not curves; use them with `report`")
    pooled = groupby != finest and len(set(groupby)) == len(groupby) and set(groupby) <= set(finest)
    basis = finest if pooled else groupby
    codes, keys = group_codes(hparam_values(done, basis))
    aggregates = aggregates_of(campaign, done, codes, labels, partial(_aggregate, campaign), keep=basis == finest)
    for label, (count, named) in sorted(aggregates.infinite.items()):
        if count:
            campaign.note(f"{label} is ±inf at some epochs of {count} run(s) ({', '.join(named)}): "
                          "those values are left out of the curves")
    columns = output_names(basis, CURVE_COLUMNS)
    curves = curves_frame(aggregates, keys.set_axis(columns, axis=1), labels)
    if pooled:
        names = output_names(groupby, CURVE_COLUMNS)
        return names, coarser_curves(curves, columns, names, labels)
    return columns, curves


def _aggregate(campaign: Campaign, run_ids: list[str], codes: np.ndarray, labels: list[str]) -> CurveAggregates:
    """Per group (`codes[i]` the group of `run_ids[i]`), label and epoch: the runs with a finite
    value, their mean and std (ddof 1); per label the runs with a ±inf value (`CurveAggregates`).

    The rows are grouped by context, metric and key, and the label is spelled for each group (a
    label per row costs twice as much); where two of those spell the same label (a context or a
    metric holding '/' or '['), they are grouped by label instead."""
    scan, params = label_filter(labels, exact=False)
    params["labels"] = list(labels)
    groups = pd.DataFrame({"run_id": run_ids, "g": codes})
    stats = "count(*) AS runs, avg(t.value) AS mean, stddev_samp(t.value) AS std"
    source = f"FROM traj t JOIN groups g USING (run_id) WHERE isfinite(t.value) AND {scan}"
    rows = campaign.query_trajectories(
        f"SELECT g, {LABEL_SQL} AS label, epoch, runs, mean, std FROM ("
        f"SELECT g.g, t.context, t.metric, t.key, t.epoch, {stats} {source} GROUP BY ALL) WHERE {LABEL_TEST}",
        params, tables={"groups": groups})
    if rows.duplicated(["g", "label", "epoch"]).any():
        rows = campaign.query_trajectories(
            f"SELECT g.g, {LABEL_SQL} AS label, t.epoch, {stats} {source} AND {LABEL_TEST} GROUP BY ALL",
            params, tables={"groups": groups})
    # ±inf tested as two values, so that the reader skips every row group whose statistics hold neither
    infinite = campaign.query_trajectories(
        f"SELECT DISTINCT {LABEL_SQL} AS label, run_id FROM traj WHERE (value = 'inf'::DOUBLE OR value = "
        f"'-inf'::DOUBLE) AND {scan} AND {LABEL_TEST} AND run_id IN (SELECT unnest($ids::VARCHAR[])) "
        "ORDER BY label, run_id",
        {**params, "ids": run_ids})
    found = {label: (len(ids), tuple(ids.tolist()[:MAX_NAMED])) for label, ids in infinite.groupby("label")["run_id"]}
    return CurveAggregates(rows.rename(columns={"g": "group"}), tuple(labels),
                           {label: found.get(label, (0, ())) for label in labels})


def coarser_curves(curves: pd.DataFrame, groupby: list[str], names: list[str], labels: list[str]) -> pd.DataFrame:
    """`build_curves` output grouped by `names` (a part of `groupby`, its grouping), computed from
    `curves` alone: per coarser group, label and epoch the runs add up, the mean is their weighted
    mean and the std pools each part's spread with the spread of the parts' means (Chan et al.'s
    combination), so the numbers equal a direct grouping up to rounding without reading the
    trajectories again. `labels` gives the order of the labels."""
    frame = curves.assign(_weighted=curves["mean"] * curves["runs"],
                          _spread=(curves["runs"] - 1) * curves["std"].fillna(0.0) ** 2)
    keys = [*names, "label", "epoch"]
    grouped = frame.groupby(keys, dropna=False, sort=False)
    out = grouped[["runs", "_weighted", "_spread"]].sum().reset_index()
    out["mean"] = out["_weighted"] / out["runs"]
    frame = frame.merge(out[[*keys, "mean"]].rename(columns={"mean": "_overall"}), on=keys, how="left")
    frame["_between"] = frame["runs"] * (frame["mean"] - frame["_overall"]) ** 2
    between = frame.groupby(keys, dropna=False, sort=False)["_between"].sum().reset_index()
    out = out.merge(between, on=keys, how="left")
    many = out["runs"] > 1
    out["std"] = np.where(many, np.sqrt((out["_spread"] + out["_between"]) / (out["runs"] - 1).where(many, 1)), np.nan)
    out["ci95"] = ci95_halfwidths(out["runs"].to_numpy(), out["std"].to_numpy())
    out = out[[*names, "label", "epoch", "runs", "mean", "std", "ci95"]]
    position = {label: i for i, label in enumerate(labels)}
    return out.sort_values(["label", *names, "epoch"], key=lambda c: c.map(position) if c.name == "label" else c,
                           kind="stable", ignore_index=True)


def write_curves(campaign: Campaign, groupby: list[str], curves: pd.DataFrame,
                 campaign_ids: list[str] | None = None, folder: Path | None = None,
                 x: str = "epoch", log_y: bool | None = None) -> tuple[Path, Path]:
    """Write `curves_<groupby>[_<ids>].parquet` (`curves_steps_...` for `x` = "step") and its PNG
    with CI95 bands into `folder` (default the campaign's `summary/`); `log_y` as `plot_curves` takes
    it (None: loss panels spanning more than two decades on a log scale)."""
    import matplotlib.pyplot as plt

    from pab_campaign.analysis.plots.curves import plot_curves
    from pab_campaign.analysis.plots.style import write_png

    stem = f"curves_{'steps_' if x == 'step' else ''}{slug(groupby)}{ids_suffix(campaign_ids)}"
    parquet = campaign.write_output(f"{stem}.parquet", lambda tmp: curves.to_parquet(tmp, index=False), folder)
    figure = plot_curves(curves, groupby, campaign=campaign.directory.name, log_y=log_y, x=x)
    try:
        png = campaign.write_output(f"{stem}.png", lambda tmp: write_png(figure, tmp), folder)
    finally:
        plt.close(figure)
    return parquet, png
