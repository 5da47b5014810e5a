"""The runs index brought up to date for a few changed or new runs without pandas: the stored file
is read with pyarrow, the rows of those runs are made from their files and put in place of the old
ones, and the file is written again (atomically), sorted by run_id as `index.refresh_runs` writes it.

It applies only where the result is exactly what a build from nothing gives (the property test of
the index checks it): no run removed; every changed or new run readable (run.json, trajectory with
scalar values, no duplicate rows); the same metric and hyper-parameter columns as before, each of
the same type. A hyper-parameter column's type depends on the kinds of value every run has
(`index.hparam_column`); the kinds of the kept runs are not read, so the patch requires that the
kinds the changed runs had are still there (`_kinds_kept`) and that the column's type takes every
new kind (`ABSORBS`). Anything else returns False, and the caller takes `index.refresh_runs`.
"""
from __future__ import annotations

import io
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pab_campaign.analysis.campaign.duck import connect, literal_paths
from pab_campaign.analysis.campaign.index_layout import (
    FLOAT_COLUMNS,
    HPARAM_SUFFIX,
    INDEX_VERSION,
    META_VERSION,
    RECORD_COLUMNS,
    RUN_HPARAMS,
    RUN_METRICS,
    SCALARS_SQL,
    TEXT_COLUMNS,
    hparams_text,
    metrics_text,
)
from pab_campaign.analysis.campaign.manifest import MANIFEST_COLUMNS, ScanRow
from pab_campaign.errors import StoreError
from pab_campaign.store import TRAJECTORY, RunRecord, atomic_write, check_run_file, read_run_json, runs_dir

# More changed runs than this are rebuilt by `index.refresh_runs`.
MAX_PATCHED = 2000
# The kinds of value each hyper-parameter column type takes without changing its type.
ABSORBS = {"int": {"int"}, "float": {"int", "float", "missing"}, "bool": {"bool"},
           "bool_missing": {"bool", "missing"}, "text": {"int", "float", "bool", "other", "missing"}}


@dataclass
class _Scalars:
    """One run's scalar metrics: `values` {`<context>/<metric>@last|@best`: value}, its last epoch and
    its epoch of minimal finite val/loss (None without one)."""

    values: dict[str, float | None]
    last_epoch: int
    best_epoch: int | None


def patch_runs_index(campaign_dir: Path, path: Path, scanned: list[ScanRow]) -> bool:
    """Bring the runs index at `path` up to date with `scanned` (`manifest.scan_rows` of
    `campaign_dir`, made moments ago) in place; False, having written nothing, where it does not
    apply (module docstring) or the file is not a runs index of this version."""
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    try:
        check_run_file(path, path.parent)
        table = pq.ParquetFile(path).read()  # read_table's dataset layer imports pandas (0.4 s)
    except (OSError, StoreError, pa.ArrowInvalid):
        return False
    names = table.schema.names
    metadata = table.schema.metadata or {}
    if (metadata.get(META_VERSION) != INDEX_VERSION.encode()
            or any(name not in names or table.schema.field(name).type != pa.string()
                   for name in ("run_id", RUN_HPARAMS, RUN_METRICS))):
        return False
    run_ids = table.column("run_id").to_pylist()
    stored = dict(zip(run_ids, zip(*(table.column(name).to_pylist() for name in MANIFEST_COLUMNS))))
    now = {run_id: tuple(rest) for run_id, *rest in scanned}
    fresh = sorted(run_id for run_id, manifest in now.items() if stored.get(run_id) != manifest)
    if (len(stored) != len(run_ids) or run_ids != sorted(run_ids) or stored.keys() - now.keys() or not fresh
            or len(fresh) > MAX_PATCHED):
        return False
    records = _records(campaign_dir, fresh, now)
    scalars = _scalars(campaign_dir, fresh) if records is not None else None
    if records is None or scalars is None:
        return False
    plain = table.replace_schema_metadata(None)  # pyarrow imports pandas for a schema with pandas' metadata
    changed = {run_id for run_id in fresh if run_id in stored}
    kept = [(0, i) for i, run_id in enumerate(run_ids) if run_id not in changed]
    replaced = [(0, i) for i, run_id in enumerate(run_ids) if run_id in changed]
    if not _columns_stay(table, _rows_of((plain,), kept), _rows_of((plain,), replaced), records, scalars):
        return False
    rows = [_row(names, run_id, now[run_id], records[run_id], scalars[run_id], table.schema) for run_id in fresh]
    options = pa_json.ParseOptions(explicit_schema=plain.schema, unexpected_field_behavior="error")
    try:  # pyarrow's JSON reader: pa.array and from_pylist import pandas (0.4 s)
        new = pa_json.read_json(io.BytesIO("\n".join(map(json.dumps, rows)).encode()), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return False  # a column of a type the index does not write
    if new.schema != plain.schema or new.num_rows != len(rows):
        return False
    order = sorted([(run_ids[i], 0, i) for _, i in kept] + [(run_id, 1, k) for k, run_id in enumerate(fresh)])
    merged = _rows_of((plain, new), [(source, i) for _, source, i in order])
    merged = merged.replace_schema_metadata(_with_rows(metadata, merged.num_rows))
    atomic_write(path, lambda tmp: pq.write_table(merged, tmp))
    return True


def _rows_of(tables: tuple[Any, ...], order: list[tuple[int, int]]) -> Any:
    """One table of the rows `order` names, each (t, i): row i of tables[t]; consecutive rows of one
    table are taken as one slice (nothing is copied)."""
    import pyarrow as pa

    slices = []
    source = start = length = 0
    for which, i in order:
        if length and which == source and i == start + length:
            length += 1
            continue
        if length:
            slices.append(tables[source].slice(start, length))
        source, start, length = which, i, 1
    if length:
        slices.append(tables[source].slice(start, length))
    return pa.concat_tables(slices) if slices else tables[0].slice(0, 0)


def _records(campaign_dir: Path, run_ids: list[str], now: dict[str, tuple]) -> dict[str, RunRecord] | None:
    """The run.json of each run; None when one cannot be read or a run has no readable trajectory."""
    root = runs_dir(campaign_dir)
    records = {}
    for run_id in run_ids:
        if now[run_id][2] < 0:
            return None
        try:
            records[run_id] = read_run_json(root / run_id, campaign_dir)
        except StoreError:
            return None
    return records


def _scalars(campaign_dir: Path, run_ids: list[str]) -> dict[str, _Scalars] | None:
    """The scalar metrics of each run's trajectory (SCALARS_SQL); None when a file cannot be read,
    holds duplicate rows or no scalar value, or two (context, metric) pairs spell one label."""
    import duckdb

    root = str(runs_dir(campaign_dir))
    con = connect()
    try:
        with literal_paths([f"{root}/{run_id}/{TRAJECTORY}" for run_id in run_ids]) as files:
            found = con.execute(SCALARS_SQL, [list(files)]).fetchall()
    except (duckdb.Error, OSError, StoreError):
        return None
    per_run: dict[str, _Scalars] = {}
    for f, context, metric, last_epoch, last, best, best_epoch, duplicated in found:
        run = per_run.setdefault(run_ids[f], _Scalars({}, last_epoch, best_epoch))
        label = f"{context}/{metric}"
        if duplicated or f"{label}@last" in run.values:
            return None
        run.values[f"{label}@last"], run.values[f"{label}@best"] = last, best
        run.last_epoch = max(run.last_epoch, last_epoch)
    return per_run if len(per_run) == len(run_ids) else None


def _kind(value: Any) -> str:
    """The kind of a hyper-parameter value, as `index.hparam_column` tells them apart."""
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return "float" if isinstance(value, float) else "other"


def _column_kind(table: Any, name: str) -> str | None:
    """The type of a stored hyper-parameter column, as a key of ABSORBS; None for another type."""
    import pyarrow as pa

    kind = table.schema.field(name).type
    if kind == pa.bool_():
        return "bool" if table.column(name).null_count == 0 else "bool_missing"
    return {pa.int64(): "int", pa.float64(): "float", pa.string(): "text"}.get(kind)


def _columns_stay(table: Any, kept: Any, replaced: Any, records: dict[str, RunRecord],
                  scalars: dict[str, _Scalars]) -> bool:
    """Whether the index with the new rows has the same columns of the same types: every metric
    label still held by some run and no new one; every hyper-parameter column keeping its type."""
    names = table.schema.names
    labels = {name for name in names if name.endswith(("@last", "@best"))}
    after: set[str] = set()
    for text in kept.column(RUN_METRICS).unique().to_pylist():
        try:
            held = json.loads(text)
        except (TypeError, ValueError):
            return False
        if not isinstance(held, list) or not all(isinstance(label, str) for label in held):
            return False
        after.update(held)
    for run in scalars.values():
        after.update(run.values)
    if after != labels:
        return False
    columns = {name[: -len(HPARAM_SUFFIX)]: name for name in names if name.endswith(HPARAM_SUFFIX)}
    if any(value is not None and name not in columns for record in records.values()
           for name, value in record.hparams.items()):
        return False
    before: list[dict[str, Any]] = []
    for text in replaced.column(RUN_HPARAMS).to_pylist():
        try:
            values = {} if text is None else json.loads(text)
        except ValueError:
            return False
        if not isinstance(values, dict):
            return False
        before.append(values)
    for name, column in columns.items():
        kind = _column_kind(table, column)
        added = Counter(_kind(record.hparams.get(name)) for record in records.values())
        removed = Counter(_kind(values.get(name)) for values in before)
        if kind is None or not set(added) <= ABSORBS[kind] or any(removed[k] > added[k] for k in removed):
            return False
    return _text_columns_take(table, records)


def _text_columns_take(table: Any, records: dict[str, RunRecord]) -> bool:
    """Whether every fixed text column can hold the new runs' values: a column every run left empty
    is stored without a type, and a value there changes it; a value must be text."""
    import pyarrow as pa

    for name in TEXT_COLUMNS:
        if name in ("run_id", "skip_reason"):
            continue
        for record in records.values():
            value = _record_value(record, name)
            if value is not None and (not isinstance(value, str) or table.schema.field(name).type == pa.null()):
                return False
    return True


def _row(names: list[str], run_id: str, manifest: tuple, record: RunRecord, scalars: _Scalars,
         schema: Any) -> dict[str, Any]:
    """The index row of one run (a missing or NaN number None: Parquet keeps it as null, as pyarrow
    writes pandas' NaN), as `index.refresh_runs` builds it."""
    import pyarrow as pa

    row: dict[str, Any] = dict.fromkeys(names)
    row["run_id"] = run_id
    for name in RECORD_COLUMNS[1:]:
        value = _record_value(record, name)
        row[name] = _number(value) if name in FLOAT_COLUMNS else value
    row["last_epoch"], row["best_epoch"] = float(scalars.last_epoch), _number(scalars.best_epoch)
    row.update(zip(MANIFEST_COLUMNS, manifest))
    for label, value in scalars.values.items():
        row[label] = _number(value)
    for name in names:
        if name.endswith(HPARAM_SUFFIX):
            value = record.hparams.get(name[: -len(HPARAM_SUFFIX)])
            if value is not None and schema.field(name).type == pa.string():
                value = str(value)  # a text column holds every value as text (`index.hparam_column`)
            row[name] = _number(value) if isinstance(value, float) else value
    row[RUN_HPARAMS] = hparams_text(record.hparams)
    row[RUN_METRICS] = metrics_text(sorted(scalars.values))
    return row


def _record_value(record: RunRecord, name: str) -> Any:
    """The value of the index column `name` (of RECORD_COLUMNS) in `record`: the status as its text."""
    return str(record.status) if name == "status" else getattr(record, name)


def _number(value: Any) -> float | None:
    """A float column's value: None for a missing or NaN number."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _with_rows(metadata: dict[bytes, bytes], rows: int) -> dict[bytes, bytes]:
    """The file's metadata with pandas' range index spanning `rows` rows."""
    if b"pandas" not in metadata:
        return metadata
    described = json.loads(metadata[b"pandas"])
    for index in described.get("index_columns", []):
        if isinstance(index, dict) and index.get("kind") == "range":
            index["stop"] = index.get("start", 0) + rows * index.get("step", 1)
    return {**metadata, b"pandas": json.dumps(described).encode()}
