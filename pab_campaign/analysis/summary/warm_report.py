"""A `report` at the last or best epoch answered from a current runs index (`campaign.warm`) with
DuckDB and the standard library alone (a warm `report` is then mostly the DuckDB import).

It reads the index columns `<label>@last|@best`, `<name>@hparam` and duration_s of the chosen
runs and computes what `report.build_report` computes from the same rows: the groups (sorted as
pandas sorts them: missing keys last), `runs`, `descriptive.describe` per label and duration_s,
the notes (untracked defaults, ±inf values, runs lacking a value) and the runs set aside, in the
same order; `write_warm_report` writes the same CSV bytes as `write_report`. Where the answer
could differ (keyed or `summary/` metrics, several campaign ids, a grouping key pandas would
order otherwise) or the full path would refuse, `warm_report` returns None and the command takes
the full path, which gives its own output or error.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pab_campaign.analysis.campaign.duck import sql_name
from pab_campaign.analysis.campaign.warm import (
    HPARAM_SUFFIX,
    WarmIndex,
    chosen_runs,
    hparams_by_name,
    varying_names,
)
from pab_campaign.analysis.stats.descriptive import describe
from pab_campaign.analysis.summary.report_plan import (
    STATS,
    SUMMARY_CONTEXT,
    drop_untracked,
    hparam_columns,
    report_name,
    requested_labels,
)
from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus, atomic_write

# DuckDB types of the index's hyper-parameter columns (`index.hparam_column`: int64, float64, bool, text).
KEY_TYPES = ("BIGINT", "DOUBLE", "BOOLEAN", "VARCHAR")


@dataclass
class WarmReport:
    """`groupby`: output names of the grouping columns; `metrics`: the labels reported; `rows`: one
    dict per group as `Report.summary.to_dict("records")` gives it (a missing key is NaN);
    `notes`; `skipped`: every run set aside (run_id, reason), in the full path's order."""

    groupby: list[str]
    metrics: list[str]
    rows: list[dict[str, Any]]
    notes: list[str]
    skipped: list[tuple[str, str]]


def warm_report(warm: WarmIndex, groupby: list[str] | None, contexts: list[str] | None,
                metrics: list[str] | None, epoch: str) -> WarmReport | None:
    """The report of the runs of `warm` at `epoch` ('last' or 'best'), or None where the full path
    must answer (module docstring)."""
    types = warm.column_types
    skipped = list(warm.skipped)
    done = [row for row in warm.rows if row["status"] == RunStatus.COMPLETED]
    for row in done:
        if row["skip_reason"] is not None and (row["run_id"], row["skip_reason"]) not in skipped:
            skipped.append((row["run_id"], row["skip_reason"]))
    done = [row for row in done if row["skip_reason"] is None]
    if not done or len({row["campaign"] for row in done if row["campaign"] is not None}) > 1:
        return None
    run_ids = [row["run_id"] for row in done]
    hparams = hparams_by_name(done, warm.hparam_names)
    if groupby is None:
        groupby = varying_names(hparams)
    elif any(name not in hparams for name in groupby) or len(set(groupby)) < len(groupby):
        return None
    notes: list[str] = []
    try:
        labels = drop_untracked(requested_labels(contexts, metrics), _tracked(warm, types),
                                bool(contexts or metrics), notes)
    except CampaignError:
        return None
    wanted = [f"{label}@{epoch}" for label in labels]
    if (len(set(labels)) < len(labels) or any(label.endswith("]") or label.startswith(f"{SUMMARY_CONTEXT}/")
                                              for label in labels) or any(c not in types for c in wanted)
            or not all(_orderable(types[f"{name}{HPARAM_SUFFIX}"], hparams[name]) for name in groupby)):
        return None
    names = hparam_columns(groupby, labels)
    if len(set(names)) < len(names):
        return None
    values = _column_values(warm, types, run_ids, wanted)
    if values is None:
        return None
    per_label = {label: _finite(label, run_ids, values[column], notes) for label, column in zip(labels, wanted)}
    kept = []
    for position, run_id in enumerate(run_ids):
        if all(math.isnan(per_label[label][position]) for label in labels):
            reason = f"no finite value of {', '.join(labels)} at epoch {epoch}"
            if (run_id, reason) not in skipped:
                skipped.append((run_id, reason))
        else:
            kept.append(position)
    if not kept:
        return None
    for label in labels:
        lacking = sum(math.isnan(per_label[label][i]) for i in kept)
        if lacking:
            notes.append(f"{lacking} of {len(kept)} runs have no finite {label}: left out of its statistics")
    per_label["duration_s"] = [row["duration_s"] for row in done]
    keys = [tuple(hparams[name][i] for name in groupby) for i in range(len(done))]
    return WarmReport(names, labels, _groups(names, keys, per_label, kept), notes, skipped)


def _finite(label: str, run_ids: list[str], values: list[Any], notes: list[str]) -> list[float]:
    """`values` of `label` per run as floats, NaN where missing or ±inf, with a note naming the
    runs that had ±inf (as `campaign.drop_infinite`)."""
    numbers = [math.nan if v is None else float(v) for v in values]
    infinite = [run_id for run_id, v in zip(run_ids, numbers) if math.isinf(v)]
    if infinite:
        notes.append(f"{label} is ±inf in {len(infinite)} run(s) ({', '.join(infinite[:10])}"
                     f"{', ...' if len(infinite) > 10 else ''}): left out of its statistics")
    return [math.nan if math.isinf(v) else v for v in numbers]


def _groups(names: list[str], keys: list[tuple], columns: dict[str, list[float]], kept: list[int]) -> list[dict]:
    """One row per distinct key of the runs `kept` (positions), sorted key by key with a missing
    value last (as pandas' groupby sorts): the key under `names`, `runs`, then `describe` of each
    of `columns` as `<column>.mean|std|ci95`."""
    members: dict[tuple, list[int]] = {}
    for i in kept:
        members.setdefault(keys[i], []).append(i)
    rows = []
    for key in sorted(members, key=lambda key: [(value is None, value if value is not None else 0) for value in key]):
        group: dict[str, Any] = {name: math.nan if value is None else value for name, value in zip(names, key)}
        group["runs"] = len(members[key])
        for column, values in columns.items():
            described = describe(values[i] for i in members[key])
            group.update({f"{column}.{stat}": getattr(described, stat) for stat in STATS})
        rows.append(group)
    return rows


def write_warm_report(warm: WarmIndex, report: WarmReport, rows: list[dict[str, Any]], epoch: str,
                      campaign_ids: list[str] | None, folder: Path | None) -> Path | None:
    """Write `rows` (groups of `report`) as `write_report` writes the summary CSV (pandas'
    `to_csv`: floats as repr, missing values empty) into `folder` or the index's folder; its path,
    or None when it cannot be written there (the full path then finds another place or says why)."""
    path = (folder or warm.path.parent) / report_name(report.groupby, epoch, campaign_ids)
    header = list(rows[0]) if rows else [*report.groupby, "runs"]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator=os.linesep)
            writer.writerow(header)
            writer.writerows([_cell(row[column]) for column in header] for row in rows)

    try:
        atomic_write(path, write)
    except OSError:
        return None
    return path


def _cell(value: Any) -> str:
    """A CSV field as pandas writes it: '' for a missing value, a float by its repr."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def _column_values(warm: WarmIndex, types: dict[str, str], run_ids: list[str],
                   columns: list[str]) -> dict[str, list[Any]] | None:
    """The values of index `columns` (of DuckDB `types`) for `run_ids`, the completed runs not set
    aside (in that order), None where missing or NaN; None when the index holds other runs."""
    if not columns:
        return {}
    selected = ", ".join(f"CASE WHEN isnan({sql_name(c)}) THEN NULL ELSE {sql_name(c)} END" if types[c] == "DOUBLE"
                         else sql_name(c) for c in columns)
    where, params = chosen_runs(warm, completed=True)
    found = warm.con.execute(f"SELECT run_id, {selected} FROM runs WHERE {where} ORDER BY run_id", params).fetchall()
    if [row[0] for row in found] != run_ids:
        return None
    return {column: [row[position] for row in found] for position, column in enumerate(columns, start=1)}


def _tracked(warm: WarmIndex, types: dict[str, str]) -> list[str]:
    """`campaign.indexed_metrics` of the completed runs not set aside: the labels with a value (not
    NaN) at some run's last or best epoch."""
    labels = [name[: -len("@last")] for name in types if name.endswith("@last")]
    columns = [c for label in labels for c in (f"{label}@last", f"{label}@best") if c in types]
    if not columns:
        return []
    counts = ", ".join(f"count(*) FILTER (WHERE NOT isnan({sql_name(c)}))" for c in columns)
    where, params = chosen_runs(warm, completed=True)
    found = warm.con.execute(f"SELECT {counts} FROM runs WHERE {where}", params).fetchone()
    present = {c for c, count in zip(columns, found or ()) if count}
    return sorted(label for label in labels if f"{label}@last" in present or f"{label}@best" in present)


def _orderable(kind: str, values: list[Any]) -> bool:
    """Whether pandas orders the groups of this key as `warm_report` does: a column type of the
    index with no -0.0 (pandas merges it with 0.0) and no boolean missing (pandas keeps a
    True/False/None column in order of appearance)."""
    if kind not in KEY_TYPES:
        return False
    if kind == "DOUBLE" and any(v == 0.0 and math.copysign(1.0, v) < 0 for v in values if v is not None):
        return False
    return not (kind == "BOOLEAN" and None in values)
