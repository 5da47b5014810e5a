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
from pab_campaign.analysis.campaign.index_layout import as_hparam_name
from pab_campaign.analysis.campaign.warm import (
    HPARAM_SUFFIX,
    WarmIndex,
    chosen_runs,
    is_number_type,
    key_expressions,
    tracked_labels,
    varying_in,
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
    must answer (module docstring). DuckDB picks the runs, the finite values and the groups; each
    group's values come back as one list per column for `describe`."""
    types, con = warm.column_types, warm.con
    where, params = chosen_runs(warm)
    skipped = list(warm.skipped)
    for run_id, reason in con.execute(f"SELECT run_id, skip_reason FROM runs WHERE {where} AND status = $completed "
                                      "AND skip_reason IS NOT NULL ORDER BY run_id",
                                      {**params, "completed": RunStatus.COMPLETED.value}).fetchall():
        if (run_id, reason) not in skipped:
            skipped.append((run_id, reason))
    done_where, done_params = chosen_runs(warm, completed=True)
    done = f"runs WHERE {done_where}"  # the completed runs not set aside (a copy of them took 0.09 s at 50k)
    count, campaigns = con.execute(f"SELECT count(*), count(DISTINCT campaign) FROM {done}", done_params).fetchone()
    if not count or campaigns > 1:
        return None
    key = key_expressions(warm)
    if groupby is None:
        groupby = varying_in(con, done, done_params, key)
    else:
        groupby = [as_hparam_name(name, key) for name in groupby]
        if any(name not in key for name in groupby) or len(set(groupby)) < len(groupby):
            return None
    notes: list[str] = []
    try:
        labels = drop_untracked(requested_labels(contexts, metrics),
                                tracked_labels(con, list(types), done, done_params), contexts, metrics, notes)
    except CampaignError:
        return None
    wanted = [f"{label}@{epoch}" for label in labels]
    if (len(set(labels)) < len(labels) or any(label.endswith("]") or label.startswith(f"{SUMMARY_CONTEXT}/")
                                              for label in labels) or any(c not in types for c in wanted)
            or not all(_orderable(con, f"{name}{HPARAM_SUFFIX}", types, done, done_params) for name in groupby)):
        return None
    out_names = hparam_columns(groupby, labels)
    if len(set(out_names)) < len(out_names):
        return None
    finite = [f"CASE WHEN isfinite({sql_name(c)}) THEN {sql_name(c)} END" for c in wanted]
    kept = " OR ".join(f"({f}) IS NOT NULL" for f in finite) or "false"
    con.execute(f"CREATE OR REPLACE TEMP TABLE values AS SELECT run_id, duration_s, "
                f"{''.join(f'{key[name]} AS k{i}, ' for i, name in enumerate(groupby))}"
                f"{''.join(f'{f} AS v{i}, ' for i, f in enumerate(finite))}"
                f"{''.join(f'isinf({sql_name(c)}) AS inf{i}, ' for i, c in enumerate(wanted))}"
                f"{kept} AS kept FROM {done}", done_params)
    runs_where = "coalesce(list(run_id ORDER BY run_id) FILTER (WHERE {}), [])"
    found = con.execute(", ".join(["SELECT " + runs_where.format("NOT kept"), "count(*) FILTER (WHERE kept)",
                                   *(runs_where.format(f"inf{i}") for i in range(len(wanted))),
                                   *(f"count(*) FILTER (WHERE kept AND v{i} IS NULL)" for i in range(len(wanted)))])
                        + " FROM values").fetchone()
    unkept, kept_count, infinite, lacking = found[0], found[1], found[2:2 + len(labels)], found[2 + len(labels):]
    for label, runs in zip(labels, infinite):
        if runs:
            notes.append(f"{label} is ±inf in {len(runs)} run(s) ({', '.join(runs[:10])}"
                         f"{', ...' if len(runs) > 10 else ''}): left out of its statistics")
    reason = f"no finite value of {', '.join(labels)} at epoch {epoch}"
    skipped += [(run_id, reason) for run_id in unkept if (run_id, reason) not in skipped]
    if not kept_count:
        return None
    for label, missing in zip(labels, lacking):
        if missing:
            notes.append(f"{missing} of {kept_count} runs have no finite {label}: left out of its statistics")
    key_types = [types[f"{name}{HPARAM_SUFFIX}"] for name in groupby]
    return WarmReport(out_names, labels, _groups(con, out_names, key_types, [*labels, "duration_s"]), notes, skipped)


def _groups(con: Any, names: list[str], key_types: list[str], columns: list[str]) -> list[dict]:
    """One row per distinct key (k0.., one per DuckDB type of `key_types`) of the kept runs of
    `values`, sorted key by key with a
    missing value last (as pandas' groupby sorts): the key under `names`, `runs`, then `describe` of
    each of `columns` (the values v0.. of the labels, then duration_s) as `<column>.mean|std|ci95`."""
    keys = len(key_types)
    key_columns = [f"k{i}" for i in range(keys)]
    value_columns = [*(f"v{i}" for i in range(len(columns) - 1)), "duration_s"]
    lists = ", ".join(f"list(coalesce({c}, 'NaN'::DOUBLE) ORDER BY run_id)" for c in value_columns)
    grouped = con.execute(f"SELECT {''.join(f'{k}, ' for k in key_columns)}count(*), {lists} FROM values "
                          f"WHERE kept {'GROUP BY ALL' if keys else ''}").fetchall()
    whole = _whole_keys(con, key_columns, key_types)
    rows = []
    for found in sorted(grouped, key=lambda found: [(v is None, v if v is not None else 0) for v in found[:keys]]):
        group: dict[str, Any] = {name: math.nan if value is None else int(value) if is_whole else value
                                 for name, value, is_whole in zip(names, found, whole)}
        group["runs"] = found[keys]
        for column, values in zip(columns, found[keys + 1:]):
            described = describe(values)
            group.update({f"{column}.{stat}": getattr(described, stat) for stat in STATS})
        rows.append(group)
    return rows


def _whole_keys(con: Any, key_columns: list[str], key_types: list[str]) -> list[bool]:
    """For each key column of `values`: whether it holds run.json's whole numbers (`campaign.as_written`,
    the full path's rule): a number column some run lacks (NULL) whose values are all whole within
    ±2**53, which the index could only store as DOUBLE. No query without a DOUBLE key."""
    numbers = [is_number_type(kind) for kind in key_types]
    if not any(numbers):
        return [False] * len(key_columns)
    tests = [f"(count(*) FILTER (WHERE {k} IS NULL) > 0 AND count(*) FILTER (WHERE {k} <> trunc({k}) "
             f"OR abs({k}) > 2 ** 53) = 0)" if number else "false" for k, number in zip(key_columns, numbers)]
    return list(con.execute(f"SELECT {', '.join(tests)} FROM values").fetchone())


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


def _orderable(con: Any, column: str, types: dict[str, str], source: str, params: dict[str, Any]) -> bool:
    """Whether pandas orders the groups of this key of the runs of `source` (a table with its WHERE
    clause, taking `params`) as `warm_report` does: a column type of the index with no -0.0 (pandas
    merges it with 0.0) and no boolean missing (pandas keeps a True/False/None column in order of
    appearance)."""
    kind, name = types[column], sql_name(column)
    if kind not in KEY_TYPES:
        return False
    unordered = {"DOUBLE": f"{name} = 0 AND signbit({name})", "BOOLEAN": f"{name} IS NULL"}.get(kind)
    return unordered is None or not con.execute(f"SELECT coalesce(bool_or({unordered}), false) FROM {source}",
                                                params).fetchone()[0]
