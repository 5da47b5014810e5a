"""The runs index brought up to date for a few changed or new runs inside DuckDB, without pyarrow or
pandas: the rows of those runs are made from their files, put in place of the old ones, and DuckDB
writes the file again (atomically), sorted by run_id as `index.refresh_runs` writes it.

It applies only where the result is exactly what a build from nothing gives (the property test of
the index checks it): no run removed; every changed or new run readable (run.json, trajectory with
scalar values, no duplicate rows); the same metric and hyper-parameter columns as before, each of
the same type, and every column of a type the build writes (so DuckDB writes it back as the build
does). A hyper-parameter column's type depends on the kinds of value every run has
(`index.hparam_column`); the kinds of the kept runs are not read, so the patch requires that the
kinds the changed runs had are still there and that the column's type takes every new kind
(`ABSORBS`). Anything else returns False, and the caller takes `index.refresh_runs`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pab_campaign.analysis.campaign.duck import (
    READ_OPTIONS,
    connect,
    literal_paths,
    pinned_file,
    rows_past,
    sql_name,
    sql_text,
)
from pab_campaign.analysis.campaign.index_layout import (
    FIXED_COLUMNS,
    FLOAT_COLUMNS,
    HPARAM_SUFFIX,
    INDEX_VERSION,
    META_VERSION,
    RECORD_COLUMNS,
    RUN_HPARAMS,
    RUN_METRICS,
    SCALARS_SQL,
    STORED_TEXTS,
    TEXT_COLUMNS,
    hparams_text,
    metrics_text,
    stored_types,
)
from pab_campaign.analysis.campaign.manifest import MANIFEST_COLUMNS, ScanRow
from pab_campaign.errors import StoreError
from pab_campaign.store import (
    MAX_RUN_FILE_ROWS,
    TRAJECTORY,
    RunRecord,
    atomic_write,
    check_run_file,
    is_int64,
    read_run_json,
    runs_dir,
)

# More changed runs than this are rebuilt by `index.refresh_runs`.
MAX_PATCHED = 2000
# The kinds of value each hyper-parameter column type takes without changing its type.
ABSORBS = {"int": {"int"}, "float": {"int", "float", "missing"}, "bool": {"bool"},
           "bool_missing": {"bool", "missing"}, "text": {"int", "float", "bool", "other", "missing"}}
# DuckDB's type of each kind of column the build writes (a hyper-parameter column takes any of
# HPARAM_TYPES); a column of another type was not written by the build, and the patch leaves it.
HPARAM_TYPES = {"BOOLEAN": "bool", "BIGINT": "int", "DOUBLE": "float", "VARCHAR": "text"}


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
    con = connect()
    try:
        write = _prepared(con, campaign_dir, path, scanned, None, loaded=False)
        if write is None:
            return False
        write.run()
        return write.written
    finally:
        con.close()


def patch_loaded(campaign_dir: Path, path: Path, scanned: list[ScanRow], con: Any,
                 stored: list[tuple]) -> IndexWrite | None:
    """`patch_runs_index` where `con` holds the file as `warm.read_warm` reads it (the temp table
    `runs`, every column but STORED_TEXTS; `stored` its (run_id, *MANIFEST_COLUMNS) sorted by run_id):
    `runs` is brought up to date at once (in another order, which no warm query depends on), and
    the file is written by the returned thread, already started, while the command answers (`join`
    it before the process ends). None, having changed nothing, where the patch does not apply."""
    write = _prepared(con, campaign_dir, path, scanned, stored, loaded=True)
    if write is not None:
        con.execute("DELETE FROM runs WHERE run_id IN (SELECT run_id FROM patch_changed)")
        con.execute(f"INSERT INTO runs SELECT * EXCLUDE ({', '.join(STORED_TEXTS)}) FROM patch_rows")
        write.start()
    return write


class IndexWrite(threading.Thread):
    """Writes the patched index to `path`: the rows of the pinned stored file (descriptor `fd`) but
    those of the table `patch_changed`, and the rows of `patch_rows`, sorted by run_id, on a
    connection of its own to the database of `con`. `written`: whether the file was replaced (where
    it was not, it stays as it was, and the next command patches again)."""

    def __init__(self, con: Any, fd: int, source: str, path: Path) -> None:
        super().__init__(name="pab-index-write")  # not a daemon: the process waits for the file
        self.con, self.fd, self.source, self.path = con.cursor(), fd, source, path
        self.written = False

    def run(self) -> None:
        import duckdb

        merged = (f"SELECT * FROM (SELECT * FROM {self.source} WHERE run_id NOT IN (SELECT run_id FROM patch_changed) "
                  "UNION ALL BY NAME SELECT * FROM patch_rows) ORDER BY run_id")
        metadata = f"{{{sql_text(META_VERSION.decode())}: {sql_text(INDEX_VERSION)}}}"
        try:
            atomic_write(self.path, lambda tmp: self.con.execute(
                f"COPY ({merged}) TO {sql_text(str(tmp))} (FORMAT parquet, KV_METADATA {metadata}, "
                "USE_TMP_FILE false)"))
            self.written = True
        except (duckdb.Error, OSError):
            self.written = False
        finally:
            self.release()

    def release(self) -> None:
        """Drop the patch's tables and close the file and the connection."""
        import duckdb

        try:
            with contextlib.suppress(duckdb.Error):  # else they go with the in-memory database
                self.con.execute("DROP TABLE IF EXISTS patch_changed; DROP TABLE IF EXISTS patch_rows")
        finally:
            self.con.close()
            os.close(self.fd)


def _prepared(con: Any, campaign_dir: Path, path: Path, scanned: list[ScanRow], stored: list[tuple] | None,
              loaded: bool) -> IndexWrite | None:
    """The tables `patch_changed` and `patch_rows` of the patch on `con`, and the write that applies
    them (not started); None where the patch does not apply. `loaded`: whether `con` holds the index
    as the table `runs`, read moments ago (its manifest `stored`)."""
    import duckdb

    try:
        check_run_file(path, path.parent)
        fd, literal = pinned_file(path)
    except (OSError, StoreError):
        return None
    try:
        applies = _fill(con, campaign_dir, sql_text(literal), scanned, stored, loaded)
    except (duckdb.Error, OSError, StoreError, ValueError):
        applies = False  # a file the index does not write, or a run file gone meanwhile
    if applies:
        return IndexWrite(con, fd, f"read_parquet({sql_text(literal)}, {READ_OPTIONS})", path)
    con.execute("DROP TABLE IF EXISTS patch_changed; DROP TABLE IF EXISTS patch_rows")
    os.close(fd)
    return None


def _fill(con: Any, campaign_dir: Path, literal: str, scanned: list[ScanRow], stored: list[tuple] | None,
          loaded: bool) -> bool:
    """Whether the patch applies to the stored index whose path is the SQL text `literal`; if so,
    the tables `patch_changed` (the run_ids of the replaced rows) and `patch_rows` (the new rows)
    are filled on `con`."""
    source = f"read_parquet({literal}, {READ_OPTIONS})"
    types = _layout(con, literal)
    if types is None:
        return False
    if loaded and con.execute("SELECT column_name, column_type FROM (DESCRIBE runs)").fetchall() != [
            (name, kind) for name, kind in types.items() if name not in STORED_TEXTS]:
        return False  # the file was replaced since it was read
    if stored is None:
        manifest = ", ".join(MANIFEST_COLUMNS)
        stored = con.execute(f"SELECT run_id, {manifest} FROM {source} ORDER BY run_id").fetchall()
    found = _differences(stored, scanned)
    if found is None:
        return False
    now, changed = found
    fresh = sorted(now)
    records = _records(campaign_dir, fresh, now)
    scalars = _scalars(con, campaign_dir, fresh) if records is not None else None
    if records is None or scalars is None:
        return False
    con.execute("CREATE OR REPLACE TABLE patch_changed AS SELECT unnest($ids::VARCHAR[]) AS run_id", {"ids": changed})
    if not _columns_stay(con, source, types, records, scalars):
        return False
    names = list(types)
    texts = {name for name, kind in types.items() if kind == "VARCHAR"}
    rows = [_row(names, run_id, now[run_id], records[run_id], scalars[run_id], texts) for run_id in fresh]
    con.execute(f"CREATE OR REPLACE TABLE patch_rows AS SELECT * FROM {source} LIMIT 0")
    con.executemany(f"INSERT INTO patch_rows VALUES ({', '.join('?' * len(names))})",
                    [[row[name] for name in names] for row in rows])
    return True


def _differences(stored: list[tuple], scanned: list[ScanRow]) -> tuple[dict[str, tuple], list[str]] | None:
    """({run_id: manifest} of the runs new or changed since `stored`, the changed ones' run_ids);
    None where nothing changed, too much did (MAX_PATCHED), a stored run is gone or listed twice.
    Both lists are sorted by run_id; where they list the same runs, they are compared pairwise."""
    if len(stored) == len(scanned):
        pairs = [(old, new) for old, new in zip(stored, scanned) if old != new]
        if all(old[0] == new[0] for old, new in pairs):
            changed = [new[0] for _, new in pairs]
            return ({new[0]: new[1:] for _, new in pairs}, changed) if 0 < len(changed) <= MAX_PATCHED else None
    old_rows, new_rows = set(map(tuple, stored)), set(scanned)
    now = {row[0]: row[1:] for row in new_rows - old_rows}
    changed = sorted({row[0] for row in old_rows - new_rows})
    if (not now or len(now) > MAX_PATCHED or len({row[0] for row in stored}) != len(stored)
            or not now.keys() >= set(changed)):
        return None
    return now, changed


def _layout(con: Any, literal: str) -> dict[str, str] | None:
    """`index_layout.stored_types` of the stored index; None also where a column the build writes is
    missing or of another type than the build gives it, or a column is of none of its kinds."""
    types = stored_types(con, literal)
    if types is None or any(name not in types for name in (*FIXED_COLUMNS, RUN_HPARAMS, RUN_METRICS)):
        return None
    for name, kind in types.items():
        if name in TEXT_COLUMNS or name in (RUN_HPARAMS, RUN_METRICS):
            wanted = {"VARCHAR"}
        elif name in FLOAT_COLUMNS or name.endswith(("@last", "@best")):
            wanted = {"DOUBLE"}
        elif name in MANIFEST_COLUMNS:
            wanted = {"BIGINT"}
        elif name.endswith(HPARAM_SUFFIX):
            wanted = set(HPARAM_TYPES)
        else:
            return None
        if kind not in wanted:
            return None
    return types


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


def _scalars(con: Any, campaign_dir: Path, run_ids: list[str]) -> dict[str, _Scalars] | None:
    """The scalar metrics of each run's trajectory (SCALARS_SQL, on `con`); None when a file cannot be
    read, holds duplicate rows, a row without context or metric or no scalar value, or two (context,
    metric) pairs spell one label."""
    import duckdb

    root = str(runs_dir(campaign_dir))
    try:
        with literal_paths([f"{root}/{run_id}/{TRAJECTORY}" for run_id in run_ids]) as files:
            if rows_past(con, files, MAX_RUN_FILE_ROWS):
                return None  # the full build sets such a run aside with its reason
            found = con.execute(SCALARS_SQL, [list(files)]).fetchall()
    except (duckdb.Error, OSError, StoreError):
        return None
    per_run: dict[str, _Scalars] = {}
    for f, context, metric, last_epoch, last, best, best_epoch, duplicated in found:
        run = per_run.setdefault(run_ids[f], _Scalars({}, last_epoch, best_epoch))
        label = f"{context}/{metric}"
        if duplicated or context is None or metric is None or f"{label}@last" in run.values:
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
        return "int" if is_int64(value) else "other"
    return "float" if isinstance(value, float) else "other"


def _json_texts(texts: list[Any], kind: type) -> list[Any] | None:
    """Each stored text parsed (None stays None); None when one is not JSON of `kind` (a tampered index)."""
    parsed = []
    for text in texts:
        try:
            value = None if text is None else json.loads(text)
        except (TypeError, ValueError, RecursionError):
            return None
        if value is not None and not isinstance(value, kind):
            return None
        parsed.append(value)
    return parsed


def _columns_stay(con: Any, source: str, types: dict[str, str], records: dict[str, RunRecord],
                  scalars: dict[str, _Scalars]) -> bool:
    """Whether the index with the new rows has the same columns of the same types: every metric
    label still held by some run and no new one; every hyper-parameter column keeping its type; every
    fixed text column taking the new values. The table `patch_changed` holds the replaced run_ids."""
    kept = _json_texts([text for (text,) in con.execute(
        f"SELECT DISTINCT {RUN_METRICS} FROM {source} WHERE run_id NOT IN (SELECT run_id FROM patch_changed)"
    ).fetchall()], list)
    if kept is None or any(held is None or not all(isinstance(label, str) for label in held) for held in kept):
        return False
    after = {label for held in kept for label in held} | {label for run in scalars.values() for label in run.values}
    if after != {name for name in types if name.endswith(("@last", "@best"))}:
        return False
    columns = {name[: -len(HPARAM_SUFFIX)]: name for name in types if name.endswith(HPARAM_SUFFIX)}
    if any(value is not None and name not in columns for record in records.values()
           for name, value in record.hparams.items()):
        return False
    before = _json_texts([text for (text,) in con.execute(
        f"SELECT {RUN_HPARAMS} FROM {source} WHERE run_id IN (SELECT run_id FROM patch_changed)").fetchall()], dict)
    if before is None:
        return False
    flags = [name for name in columns.values() if types[name] == "BOOLEAN"]
    gaps = con.execute(f"SELECT {', '.join(f'count(*) - count({sql_name(n)})' for n in flags) or '0'} "
                       f"FROM {source}").fetchone() or ()
    missing = dict(zip(flags, gaps))
    for name, column in columns.items():
        kind = HPARAM_TYPES[types[column]]
        if kind == "bool" and missing[column]:
            kind = "bool_missing"
        added = Counter(_kind(record.hparams.get(name)) for record in records.values())
        removed = Counter(_kind((values or {}).get(name)) for values in before)
        if not set(added) <= ABSORBS[kind] or any(removed[k] > added[k] for k in removed):
            return False
    fixed = [name for name in TEXT_COLUMNS if name not in ("run_id", "skip_reason")]
    return all(value is None or isinstance(value, str) for record in records.values()
               for value in (_record_value(record, name) for name in fixed))


def _row(names: list[str], run_id: str, manifest: tuple, record: RunRecord, scalars: _Scalars,
         texts: set[str]) -> dict[str, Any]:
    """The index row of one run (a missing or NaN number None: Parquet keeps it as null, as pyarrow
    writes pandas' NaN), as `index.refresh_runs` builds it; `texts`: the columns stored as text."""
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
            if value is not None and name in texts:
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
