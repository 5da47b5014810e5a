"""The compacted campaign index, kept under `<campaign>/summary/`.

- `runs.parquet`: one row per run directory: the run.json fields, the hyper-parameters (one column
  each, named as in run.json), every scalar metric at the run's last epoch (`val/acc@last`) and at its
  epoch of minimal val/loss (`val/acc@best`), `last_epoch`, `best_epoch`, `skip_reason` (why the run
  cannot be analysed, else null) and the manifest: size and mtime (ns) of run.json and
  trajectory.parquet as they were when the row was read (-1 when the file is missing).
- `trajectories.parquet`: every trajectory row of the usable runs plus `run_id`; built on first
  demand (curves, a fixed epoch, the audit), since a `report` at the last or best epoch needs only
  `runs.parquet`. Its manifest sits in the file's key-value metadata.

Both are rebuilt incrementally: only runs whose files changed size or mtime since the last build are
read again. Both are written to a temp file and renamed over the old one, so a reader never sees a
half-written index and two reporters at once only repeat each other's work. Trajectories are read
with DuckDB over the list of files (several times faster than pyarrow's dataset scan on thousands of
small files); a corrupt file is found by bisecting the list and set aside with its reason.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pab_campaign.errors import CampaignError, StoreError
from pab_campaign.store import (
    RUN_JSON,
    TRAJECTORY,
    atomic_write,
    iter_run_dirs,
    read_run_json,
    runs_dir,
    summary_dir,
)

if TYPE_CHECKING:
    import duckdb

INDEX_VERSION = "1"
RUNS_INDEX = "runs.parquet"
TRAJECTORIES_INDEX = "trajectories.parquet"
META_VERSION = b"pab_campaign.index_version"
META_HPARAMS = b"pab_campaign.hparams"
META_MANIFEST = "pab_campaign.manifest"

RECORD_COLUMNS = ("run_id", "campaign", "status", "started_at", "ended_at", "duration_s", "epochs_done",
                  "restarts", "host", "slurm_job_id", "error")
MANIFEST_COLUMNS = ("run_json_size", "run_json_mtime_ns", "trajectory_size", "trajectory_mtime_ns")
DERIVED_COLUMNS = ("last_epoch", "best_epoch", "skip_reason")
FIXED_COLUMNS = (*RECORD_COLUMNS, *DERIVED_COLUMNS, *MANIFEST_COLUMNS)

_SCALARS_SQL = """
WITH t AS MATERIALIZED (
    SELECT file_index AS f, epoch, context::VARCHAR AS context, metric::VARCHAR AS metric, value
    FROM read_parquet(?) WHERE key IS NULL),
b AS (SELECT f, arg_min(epoch, (value, epoch)) AS best_epoch FROM t
      WHERE context = 'val' AND metric = 'loss' AND NOT isnan(value) GROUP BY f)
SELECT t.f, t.context, t.metric, max(t.epoch) AS last_epoch, arg_max(t.value, t.epoch) AS last,
       any_value(t.value) FILTER (WHERE t.epoch = b.best_epoch) AS best, any_value(b.best_epoch) AS best_epoch
FROM t LEFT JOIN b USING (f) GROUP BY ALL
"""


@dataclass
class RunsIndex:
    """`frame`: the rows of runs.parquet; `hparam_names`; `read`: how many runs this refresh read."""

    frame: pd.DataFrame
    hparam_names: list[str]
    read: int


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection (imported lazily: the CLI starts without it)."""
    import duckdb

    return duckdb.connect()


def _stat(path: str) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return -1, -1
    return info.st_size, info.st_mtime_ns


def scan(campaign_dir: Path) -> pd.DataFrame:
    """The manifest of the campaign as it is now: run_id and MANIFEST_COLUMNS, sorted by run_id."""
    rows = [(d.name, *_stat(f"{d}/{RUN_JSON}"), *_stat(f"{d}/{TRAJECTORY}")) for d in iter_run_dirs(campaign_dir)]
    return pd.DataFrame(rows, columns=["run_id", *MANIFEST_COLUMNS]).astype(
        {c: "int64" for c in MANIFEST_COLUMNS})


def bisect_query(
    con: duckdb.DuckDBPyConnection, sql: str, files: Sequence[str], offset: int = 0,
) -> tuple[list[pd.DataFrame], dict[int, str]]:
    """Run `sql` (one `?` = the file list, `f` = file_index in its output) over `files`.

    A failing list is split in halves until the unreadable files are isolated. Returns the result
    frames with `f` shifted to index into `files` (plus `offset`), and {index: reason} of bad files.
    """
    import duckdb

    if not files:
        return [], {}
    try:
        frame = con.execute(sql, [list(files)]).df()
    except duckdb.Error as exc:
        if len(files) == 1:
            reason = str(exc).strip().splitlines()[0]
            return [], {offset: f"unreadable trajectory.parquet ({reason})"}
        half = len(files) // 2
        left, bad_left = bisect_query(con, sql, files[:half], offset)
        right, bad_right = bisect_query(con, sql, files[half:], offset + half)
        return left + right, {**bad_left, **bad_right}
    frame["f"] += offset
    return [frame], {}


def _scalar_metrics(run_ids: list[str], files: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Wide frame (index run_id): `<ctx>/<metric>@last`, `@best`, last_epoch, best_epoch; and bad files."""
    frames, bad = bisect_query(connect(), _SCALARS_SQL, files)
    bad_runs = {run_ids[i]: reason for i, reason in bad.items()}
    columns = ["context", "metric", "last", "best", "last_epoch", "best_epoch"]
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["f", *columns])
    long["run_id"] = [run_ids[i] for i in long["f"]]
    long["name"] = long["context"] + "/" + long["metric"]
    wide = long.pivot(index="run_id", columns="name", values=["last", "best"])
    wide.columns = [f"{name}@{which}" for which, name in wide.columns]
    epochs = long.groupby("run_id").agg(last_epoch=("last_epoch", "max"), best_epoch=("best_epoch", "first"))
    return wide.join(epochs), bad_runs


def _read_runs(campaign_dir: Path, manifest: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Rows of runs.parquet for the runs of `manifest`, read from disk; and each run's hparams.

    DuckDB reads the trajectories in a worker thread (it releases the GIL) while this thread
    parses the run.json files.
    """
    root = runs_dir(campaign_dir)
    with_trajectory = manifest[manifest["trajectory_size"] >= 0]["run_id"].tolist()
    files = [f"{root}/{run_id}/{TRAJECTORY}" for run_id in with_trajectory]
    with ThreadPoolExecutor(max_workers=1) as pool:
        scalars = pool.submit(_scalar_metrics, with_trajectory, files)
        records, hparams = [], {}
        for row in manifest.itertuples(index=False):
            record: dict[str, Any] = {"run_id": row.run_id, "skip_reason": None}
            try:
                data = read_run_json(root / row.run_id)
                record.update({c: getattr(data, c) for c in RECORD_COLUMNS if c != "run_id"})
                hparams[row.run_id] = data.hparams
                if row.trajectory_size < 0:
                    record["skip_reason"] = f"{root / row.run_id / TRAJECTORY}: missing trajectory.parquet"
            except StoreError as exc:
                record["skip_reason"] = str(exc)
            records.append(record)
        metrics, bad = scalars.result()
    frame = pd.DataFrame(records, columns=["run_id", *RECORD_COLUMNS[1:], "skip_reason"]).set_index("run_id")
    for column in ("campaign", "status", "started_at", "ended_at", "host", "slurm_job_id", "error", "skip_reason"):
        frame[column] = pd.array([None if v is None or v != v else str(v) for v in frame[column]], dtype=object)
    usable = frame["skip_reason"].isna()
    for run_id, reason in bad.items():
        if usable[run_id]:
            frame.loc[run_id, "skip_reason"] = reason
    frame = frame.join(metrics)
    for run_id in with_trajectory:
        if run_id not in bad and run_id not in metrics.index and usable[run_id]:
            frame.loc[run_id, "skip_reason"] = f"{root / run_id / TRAJECTORY}: trajectory has no scalar values"
    frame = frame.join(manifest.set_index("run_id"))
    return frame.reset_index(), hparams


def hparam_column(values: list) -> list:
    """Keep numbers (or booleans) as they are; a column of mixed kinds becomes text."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    boolean = all(isinstance(v, bool) for v in present)
    if numeric or boolean:
        return [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
    return [None if v is None else str(v) for v in values]


def _load_runs_index(path: Path) -> tuple[pd.DataFrame, list[str]] | None:
    """The stored index, or None when it is missing, unreadable or of another version."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None
    meta = table.schema.metadata or {}
    if meta.get(META_VERSION) != INDEX_VERSION.encode() or META_HPARAMS not in meta:
        return None
    return table.to_pandas(), json.loads(meta[META_HPARAMS])


def _write_runs_index(path: Path, frame: pd.DataFrame, names: list[str]) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), META_VERSION: INDEX_VERSION.encode(),
            META_HPARAMS: json.dumps(names).encode()}
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def refresh_runs(campaign_dir: Path) -> RunsIndex:
    """Bring `summary/runs.parquet` up to date with the run directories and return it.

    Only runs that are new or whose run.json/trajectory changed (size or mtime) are read; the file
    is rewritten (atomically) only when something changed.
    """
    campaign_dir = Path(campaign_dir)
    path = summary_dir(campaign_dir) / RUNS_INDEX
    manifest = scan(campaign_dir)
    stored = _load_runs_index(path)
    keep = pd.DataFrame(columns=["run_id"])
    names: list[str] = []
    if stored is not None:
        old, names = stored
        now = manifest.set_index("run_id")[list(MANIFEST_COLUMNS)]
        before = old.set_index("run_id")[list(MANIFEST_COLUMNS)].reindex(now.index)
        same = (now.to_numpy() == before.to_numpy()).all(axis=1)
        unchanged = set(now.index[same])
        if same.all() and len(now) == len(old):
            return RunsIndex(old, names, 0)
        keep = old[[rid in unchanged for rid in old["run_id"]]]
        fresh = manifest[~same]
    else:
        fresh = manifest
    rows, hparams = _read_runs(campaign_dir, fresh)
    rows = pd.concat([keep, rows], ignore_index=True) if not keep.empty else rows
    hparam_names = []
    for name in sorted((set(names) | {n for h in hparams.values() for n in h}) - set(FIXED_COLUMNS)):
        current = rows[name].tolist() if name in rows.columns else [None] * len(rows)
        values = hparam_column([hparams[rid].get(name) if rid in hparams else current[i]
                                for i, rid in enumerate(rows["run_id"])])
        if any(v is not None for v in values):
            rows[name] = values
            hparam_names.append(name)
    names = hparam_names
    rows = rows.sort_values("run_id", ignore_index=True)
    metrics = sorted(c for c in rows.columns if "@" in c)
    rows = rows[[*FIXED_COLUMNS, *names, *metrics]]
    _write_runs_index(path, rows, names)
    return RunsIndex(rows, names, len(fresh))


def _trajectory_manifest(path: Path) -> dict[str, list[int]]:
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_MANIFEST.encode()])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError):
        return {}


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextmanager
def _snapshot(path: Path) -> Iterator[Path]:
    """A hard link to `path` that a concurrent atomic replace of `path` cannot change under a reader."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".snap", dir=path.parent)
    os.close(fd)
    link = Path(name)
    link.unlink()
    os.link(path, link)
    try:
        yield link
    finally:
        link.unlink(missing_ok=True)


def refresh_trajectories(campaign_dir: Path, runs: pd.DataFrame) -> Path:
    """Bring `summary/trajectories.parquet` up to date for the usable runs of `runs` (rows of
    runs.parquet) and return its path. Unchanged runs' rows are copied from the old file."""
    path = summary_dir(campaign_dir) / TRAJECTORIES_INDEX
    usable = runs[runs["skip_reason"].isna() & (runs["trajectory_size"] >= 0)]
    wanted = {r.run_id: [int(r.trajectory_size), int(r.trajectory_mtime_ns)] for r in usable.itertuples()}
    have = _trajectory_manifest(path) if path.exists() else {}
    if have == wanted and path.exists():
        return path
    keep = [rid for rid, stat in wanted.items() if have.get(rid) == stat]
    fresh = [rid for rid in wanted if have.get(rid) != wanted[rid]]
    files = [str(runs_dir(campaign_dir) / rid / TRAJECTORY) for rid in fresh]
    parts = []
    if files:
        parts.append("SELECT ($ids::VARCHAR[])[(file_index + 1)::BIGINT] AS run_id, epoch, "
                     "context::VARCHAR AS context, "
                     "metric::VARCHAR AS metric, key::VARCHAR AS key, value FROM read_parquet($files)")
    if keep:
        parts.append("SELECT * FROM read_parquet($old) WHERE run_id IN (SELECT unnest($keep::VARCHAR[]))")
    if not parts:
        parts.append("SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS epoch, NULL::VARCHAR AS context, "
                     "NULL::VARCHAR AS metric, NULL::VARCHAR AS key, NULL::DOUBLE AS value WHERE false")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    manifest = _sql_text(json.dumps(wanted, separators=(",", ":")))
    sql = (f"COPY ({' UNION ALL '.join(parts)} ORDER BY run_id, epoch) TO {_sql_text(tmp)} "
           f"(FORMAT parquet, KV_METADATA {{'{META_MANIFEST}': {manifest}}})")
    try:
        with ExitStack() as stack:
            old = str(stack.enter_context(_snapshot(path))) if keep else None
            params = {"ids": fresh, "files": files, "old": old, "keep": keep}
            params = {k: v for k, v in params.items() if f"${k}" in " ".join(parts)}
            connect().execute(sql, params)
        os.replace(tmp, path)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CampaignError(f"could not compact the trajectories of {campaign_dir} ({str(exc).splitlines()[0]}); "
                            "a run changed while indexing: run the command again") from None
    return path


def query_trajectories(path: Path, sql: str, params: dict[str, Any] | None = None,
                       tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Run `sql` over the compacted trajectories, available as the view `traj` (next to `tables`,
    data frames registered under their names)."""
    con = connect()
    for name, frame in (tables or {}).items():
        con.register(name, frame)
    with _snapshot(path) as stable:
        con.execute(f"CREATE VIEW traj AS SELECT * FROM read_parquet({_sql_text(str(stable))})")
        return con.execute(sql, params or {}).df()
