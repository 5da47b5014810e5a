"""The compacted campaign index, kept in the campaign's `summary/` (or, where that cannot be
written, the place `workspace` chooses).

- `runs.parquet`: one row per run directory: the run.json fields, the hyper-parameters (one column
  each, named as in run.json plus `@hparam`, so that a hyper-parameter called `status` or
  `val/acc@last` stays apart from the column of that name; `hparam_key`), every scalar metric at
  the run's last epoch (`val/acc@last`) and at its epoch of minimal finite val/loss (`val/acc@best`),
  `last_epoch`, `best_epoch`, `skip_reason` (why the run cannot be analysed, else null) and the
  manifest: size and mtime (ns) of run.json and trajectory.parquet as they were when the row was
  read (-1 when the file is missing or cannot be read: see `store.check_run_file`). Each run's
  hyper-parameters as run.json has them (`run_hparams`, JSON) and the metric columns its trajectory
  has (`run_metric_columns`, a JSON list) sit in two more text columns, so that rows kept from an
  earlier build are rebuilt exactly as read. A fixed text column is stored as text even where every
  run left it empty, as `patch` (DuckDB) writes it back. Every row stands alone: the file's
  key-value metadata holds only the index version, so the file could be split into parts that a
  reader takes as one table.
- `trajectories.parquet`: every trajectory row of the usable runs plus `run_id`; built on first
  demand (curves, a fixed epoch, the audit), since a `report` at the last or best epoch needs only
  `runs.parquet`. Its manifest sits in the file's key-value metadata.

Both are rebuilt incrementally: only runs whose files changed size or mtime since the last build are
read again, and the result equals a build from nothing (same columns, types and values). Both are
written to a temp file and renamed over the old one, so a reader never sees a half-written index and
two reporters at once only repeat each other's work. Trajectories are read with DuckDB over the list
of files (several times faster than pyarrow's dataset scan on thousands of small files); a corrupt
file is found by bisecting the list and set aside with its reason, as is a trajectory with duplicate
rows (a scalar metric with more rows than epochs in its range; `campaign.load_trajectories` checks
every row exactly).
"""
from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pab_campaign.analysis.campaign import provenance
from pab_campaign.analysis.campaign.duck import READ_OPTIONS, connect, literal_paths, rows_past, sql_text
from pab_campaign.analysis.campaign.index_layout import (
    FIXED_COLUMNS,
    FLOAT_COLUMNS,
    HPARAM_SUFFIX,
    INDEX_VERSION,
    META_VERSION,
    RECORD_COLUMNS,
    RUN_HPARAMS,
    RUN_METRICS,
    RUNS_INDEX,
    SCALARS_SQL,
    TEXT_COLUMNS,
    hparam_key,
    hparams_text,
    metrics_text,
)
from pab_campaign.analysis.campaign.manifest import MANIFEST_COLUMNS, ScanRow, scan_rows
from pab_campaign.analysis.campaign.workspace import Workspace, choose, fallback, is_unwritable, writable
from pab_campaign.errors import CampaignError, StoreError
from pab_campaign.store import (
    MAX_RUN_FILE_ROWS,
    TRAJECTORY,
    atomic_write,
    check_run_file,
    is_int64,
    read_run_json,
    runs_dir,
    summary_dir,
    temp_path,
    too_many_rows,
)

if TYPE_CHECKING:
    import duckdb

TRAJECTORIES_INDEX = "trajectories.parquet"
META_MANIFEST = "pab_campaign.manifest"
SNAPSHOT_ATTEMPTS = 20
# Trajectories read per DuckDB query of a cold build: memory stays flat however many runs there are.
SCAN_BATCH = 2000


@dataclass
class RunsIndex:
    """`frame`: the rows of runs.parquet; `hparam_names`; `read`: how many runs this refresh read;
    `workspace`: where the index lives (it may have moved there during this refresh)."""

    frame: pd.DataFrame
    hparam_names: list[str]
    read: int
    workspace: Workspace | None = field(default=None, repr=False)


@dataclass
class RunRows:
    """Rows of some runs before they are assembled: `frame` (fixed columns and `<label>@last|@best`
    columns), each run's hyper-parameters (and their JSON text as stored in RUN_HPARAMS), and the
    metric columns each run has."""

    frame: pd.DataFrame
    hparams: dict[str, dict[str, Any]]
    metrics: dict[str, list[str]]
    hparams_json: dict[str, str] = field(default_factory=dict)


@dataclass
class StoredRuns:
    """A stored runs index: the index frame, and per row the stored RUN_HPARAMS and RUN_METRICS
    texts (parsed only for the rows a refresh keeps)."""

    frame: pd.DataFrame
    hparams_json: list[str | None]
    metrics_json: list[str | None]


def trajectory_problem(campaign_dir: Path, run_id: str) -> str:
    """Why the trajectory of `run_id` is not read (its manifest size is -1)."""
    path = runs_dir(campaign_dir) / run_id / TRAJECTORY
    try:
        check_run_file(path, Path(campaign_dir))
    except FileNotFoundError:
        return f"{path}: missing trajectory.parquet"
    except StoreError as exc:
        return str(exc)
    return f"{path}: trajectory.parquet changed while it was being read; run the command again"


def scan(campaign_dir: Path, scanned: list[ScanRow] | None = None) -> pd.DataFrame:
    """The manifest of the campaign as it is now (or as `scanned` moments ago): run_id and
    MANIFEST_COLUMNS, sorted by run_id."""
    rows = scan_rows(campaign_dir) if scanned is None else scanned
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
            if isinstance(exc, duckdb.BinderException):  # a column missing or of another type
                reason = f"not the columns of a trajectory: int epoch, text context, metric, key, float value; {reason}"
            return [], {offset: f"unreadable trajectory.parquet ({reason})"}
        half = len(files) // 2
        left, bad_left = bisect_query(con, sql, files[:half], offset)
        right, bad_right = bisect_query(con, sql, files[half:], offset + half)
        return left + right, {**bad_left, **bad_right}
    frame["f"] += offset
    return [frame], {}


def _scalar_metrics(run_ids: list[str], files: list[str]) -> tuple[pd.DataFrame, dict[str, str], dict[str, list[str]]]:
    """Wide frame (index run_id): `<ctx>/<metric>@last`, `@best`, last_epoch, best_epoch; the runs
    set aside with their reason (unreadable file, duplicate rows); and each run's metric columns."""
    con = connect()
    frames, bad = [], {}
    for start in range(0, len(files), SCAN_BATCH):
        batch = range(start, min(start + SCAN_BATCH, len(files)))
        with literal_paths([files[i] for i in batch]) as literal:
            rows = rows_past(con, literal, MAX_RUN_FILE_ROWS)
            for k, count in rows.items():
                bad[batch[k]] = too_many_rows(files[batch[k]], count)
            kept = [k for k in range(len(batch)) if k not in rows]
            found, found_bad = bisect_query(con, SCALARS_SQL, [literal[k] for k in kept])
        for frame in found:
            frame["f"] = [batch[kept[k]] for k in frame["f"]]
        frames += found
        bad.update({batch[kept[k]]: reason for k, reason in found_bad.items()})
    bad_runs = {run_ids[i]: reason for i, reason in bad.items()}
    columns = ["context", "metric", "last", "best", "last_epoch", "best_epoch", "duplicated"]
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["f", *columns])
    for i in sorted(set(long.loc[long["duplicated"].astype(bool), "f"])):
        bad_runs[run_ids[i]] = (f"{files[i]}: the trajectory has duplicate rows (an epoch, context, metric and key "
                                "recorded twice); rewrite it with one row each")
    unnamed = long[long["context"].isna() | long["metric"].isna()]
    for i in sorted(set(unnamed["f"])):
        bad_runs[run_ids[i]] = f"{files[i]}: the trajectory has rows without a context or metric; every row needs both"
    long = long[~long["f"].isin(unnamed["f"])]
    long["name"] = long["context"] + "/" + long["metric"]
    clashing = long[long.duplicated(["f", "name"], keep=False)]
    for i, pairs in clashing.groupby("f"):
        first, second = (row for _, row in pairs.sort_values(["context", "metric"]).head(2).iterrows())
        bad_runs[run_ids[i]] = (f"{files[i]}: two series of the trajectory are labelled {first['name']} (context "
                                f"{first['context']!r} with metric {first['metric']!r}, and context "
                                f"{second['context']!r} with metric {second['metric']!r}); rename one")
    long = long[~long["f"].isin(clashing["f"])]
    long["run_id"] = [run_ids[i] for i in long["f"]]
    wide = long.pivot(index="run_id", columns="name", values=["last", "best"])
    wide.columns = [f"{name}@{which}" for which, name in wide.columns]
    epochs = long.groupby("run_id").agg(last_epoch=("last_epoch", "max"), best_epoch=("best_epoch", "first"))
    columns_of = {run_id: sorted(f"{name}@{which}" for name in names for which in ("best", "last"))
                  for run_id, names in long.groupby("run_id")["name"]}
    return wide.join(epochs), bad_runs, columns_of


def _read_runs(campaign_dir: Path, manifest: pd.DataFrame) -> RunRows:
    """The rows of the runs of `manifest`, read from disk.

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
                data = read_run_json(root / row.run_id, campaign_dir)
                record.update({c: getattr(data, c) for c in RECORD_COLUMNS if c != "run_id"})
                record["status"] = str(data.status)
                hparams[row.run_id] = data.hparams
                if row.trajectory_size < 0:
                    record["skip_reason"] = trajectory_problem(campaign_dir, row.run_id)
            except StoreError as exc:
                record["skip_reason"] = str(exc)
            records.append(record)
        metrics, bad, columns_of = scalars.result()
    frame = pd.DataFrame(records, columns=["run_id", *RECORD_COLUMNS[1:], "skip_reason"]).set_index("run_id")
    reasons = {record["run_id"]: record["skip_reason"] for record in records}
    for run_id, reason in bad.items():
        if reasons[run_id] is None:
            reasons[run_id] = reason
    for run_id in with_trajectory:
        if run_id not in bad and run_id not in metrics.index and reasons[run_id] is None:
            reasons[run_id] = f"{root / run_id / TRAJECTORY}: trajectory has no scalar values"
    frame["skip_reason"] = pd.Series(reasons, dtype=object)
    frame = frame.join(metrics).join(manifest.set_index("run_id"))
    present = {run_id: columns_of.get(run_id, []) for run_id in frame.index}
    texts = {run_id: hparams_text(values) for run_id, values in hparams.items()}
    return RunRows(frame.reset_index(), hparams, present, texts)


def _text(column: pd.Series) -> pd.Series:
    """Text with None for a missing value (never NaN or 'nan'), whatever pandas read it as."""
    text = column.astype(object)
    return text.where(column.notna(), None).astype(object)


def hparam_column(values: list[Any]) -> pd.Series | None:
    """One hyper-parameter over the runs, typed by its values alone: whole numbers (int64 when every
    run has one, else float64 with NaN), numbers (float64), booleans (bool, object when some run
    lacks it), else text (object, None when missing; a whole number past int64 is text too, its
    exact digits: `is_int64`); None when no run has it."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    complete = len(present) == len(values)
    if all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype=bool if complete else object)
    if all(is_int64(v) or isinstance(v, float) for v in present):
        if complete and all(isinstance(v, int) for v in present):
            return pd.Series(values, dtype="int64")
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], dtype=object)


def _assemble(parts: list[pd.DataFrame], hparams: dict[str, dict[str, Any]],
              metrics: dict[str, list[str]]) -> tuple[pd.DataFrame, list[str]]:
    """The index frame of the runs in `parts`, one deterministic layout however its rows were
    obtained: FIXED_COLUMNS, then hyper-parameters, then metric columns (each sorted by name)."""
    parts = [part for part in parts if len(part)]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(FIXED_COLUMNS))
    rows = rows.sort_values("run_id", kind="stable", ignore_index=True)
    run_ids = rows["run_id"].astype(str).tolist()
    labels = sorted({label for rid in run_ids for label in metrics.get(rid, [])})
    out: dict[str, pd.Series] = {}
    for column in FIXED_COLUMNS:
        values = rows[column] if column in rows.columns else pd.Series([None] * len(rows), dtype=object)
        if column in TEXT_COLUMNS:
            out[column] = _text(values).reset_index(drop=True)
        elif column in FLOAT_COLUMNS:
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64").reset_index(drop=True)
        else:
            out[column] = values.astype("int64").reset_index(drop=True)
    names = []
    for name in sorted({n for rid in run_ids for n in hparams.get(rid, {})}):
        series = hparam_column([hparams.get(rid, {}).get(name) for rid in run_ids])
        if series is not None:
            out[hparam_key(name)] = series
            names.append(name)
    for label in labels:
        values = rows[label] if label in rows.columns else pd.Series(np.nan, index=rows.index)
        out[label] = values.astype("float64").reset_index(drop=True)
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(rows)))
    return frame, names


def _index_file(path: Path) -> bool:
    """Whether `path` is an index file that may be read: a regular file whose links stay in its folder."""
    try:
        check_run_file(path, path.parent)
    except (OSError, StoreError):
        return False
    return True


def _load_runs_index(path: Path) -> StoredRuns | None:
    """The stored index, or None when missing, unreadable (not a regular file) or of another
    version."""
    if not _index_file(path):
        return None
    try:
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        if meta.get(META_VERSION) != INDEX_VERSION.encode() or any(
                table.schema.get_field_index(name) < 0 or table.schema.field(name).type != pa.string()
                for name in (RUN_HPARAMS, RUN_METRICS)):
            return None
        texts = [table.column(name).to_pylist() for name in (RUN_HPARAMS, RUN_METRICS)]
        return StoredRuns(table.drop_columns([RUN_HPARAMS, RUN_METRICS]).to_pandas(), *texts)
    except (OSError, pa.ArrowInvalid, ValueError):
        return None


def _write_runs_index(path: Path, frame: pd.DataFrame, hparams_json: dict[str, str],
                      metrics: dict[str, list[str]]) -> None:
    ids = frame["run_id"].tolist()
    sets: dict[tuple[str, ...], str] = {}
    metric_texts = []
    for labels in (tuple(metrics.get(rid, [])) for rid in ids):
        if labels not in sets:
            sets[labels] = metrics_text(list(labels))
        metric_texts.append(sets[labels])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in TEXT_COLUMNS:  # text even where every run left it empty: DuckDB writes the patched file so
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, table.column(i).cast(pa.string()))
    table = table.append_column(RUN_HPARAMS, pa.array([hparams_json.get(rid) for rid in ids], pa.string()))
    table = table.append_column(RUN_METRICS, pa.array(metric_texts, pa.string()))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_VERSION: INDEX_VERSION.encode()})
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _own_summary(campaign_dir: Path) -> list[Path]:
    """The campaign's own summary/ when its caches were made on this file system (else none)."""
    own = summary_dir(campaign_dir)
    return [own] if provenance.made_here(own) else []


def _stored(workspace: Workspace) -> StoredRuns | None:
    """The stored runs index of the workspace; else the campaign's own (a read-only campaign's) when
    it was made on this file system (`provenance.made_here`)."""
    places = [workspace.directory, *_own_summary(workspace.campaign)]
    for place in dict.fromkeys(p for p in places if p is not None):
        stored = _load_runs_index(place / RUNS_INDEX)
        if stored is not None:
            return stored
    return None


def _kept(stored: StoredRuns, run_ids: set[str]) -> RunRows | None:
    """The stored rows of `run_ids`, with their hyper-parameters and metric columns parsed from their
    texts; None when a text is not what the index writes (the index is then built again)."""
    ids = stored.frame["run_id"].tolist()  # plain strings: a membership test per Arrow string took 0.3 s at 50,000 runs
    chosen = [rid in run_ids for rid in ids]
    decode = json.JSONDecoder().decode
    hparams, texts, metrics = {}, {}, {}
    parsed: dict[str, Any] = {}
    try:
        for rid, keep, hparams_text, metrics_text in zip(ids, chosen, stored.hparams_json, stored.metrics_json):
            if not keep:
                continue
            if hparams_text is not None:
                values = decode(hparams_text)
                if not isinstance(values, dict):
                    return None
                hparams[rid], texts[rid] = values, hparams_text
            if metrics_text is None:
                return None
            labels = parsed.get(metrics_text)
            if labels is None:
                labels = parsed[metrics_text] = decode(metrics_text)
                if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
                    return None
            metrics[rid] = labels
    except ValueError:
        return None
    return RunRows(stored.frame[chosen], hparams, metrics, texts)


def refresh_runs(campaign_dir: Path, workspace: Workspace | None = None,
                 scanned: list[ScanRow] | None = None) -> RunsIndex:
    """Bring the runs index of `campaign_dir` up to date with the run directories and return it.

    Only runs that are new or whose run.json/trajectory changed (size or mtime) are read; the file
    is rewritten (atomically) only when something changed, in `workspace` (chosen here when not
    given; a place that turns out unwritable is left for the next, see `workspace.fallback`).
    `scanned`: `manifest.scan_rows` of the campaign, made moments ago by the same command.
    """
    campaign_dir = Path(campaign_dir)
    workspace = workspace or choose(campaign_dir)
    manifest = scan(campaign_dir, scanned)
    stored = _stored(workspace)
    kept = None
    if stored is not None:
        old = stored.frame
        now = manifest.set_index("run_id")[list(MANIFEST_COLUMNS)]
        before = old.set_index("run_id")[list(MANIFEST_COLUMNS)].reindex(now.index)
        same = (now.to_numpy() == before.to_numpy()).all(axis=1)
        unchanged = bool(same.all()) and len(now) == len(old)
        if unchanged and workspace.directory is not None and (workspace.directory / RUNS_INDEX).exists():
            return _as_assembled(old, workspace)  # current, and where it belongs: nothing to write
        kept = _kept(stored, set(now.index[same]))
        fresh = manifest[~same]
    if kept is None:
        kept, fresh = RunRows(pd.DataFrame(), {}, {}), manifest
    read = _read_runs(campaign_dir, fresh) if len(fresh) else RunRows(pd.DataFrame(), {}, {})
    hparams, metrics = {**kept.hparams, **read.hparams}, {**kept.metrics, **read.metrics}
    rows, names = _assemble([kept.frame, read.frame], hparams, metrics)
    workspace = _write_somewhere(workspace, rows, {**kept.hparams_json, **read.hparams_json}, metrics)
    return RunsIndex(rows, names, len(fresh), workspace)


def _as_assembled(stored: pd.DataFrame, workspace: Workspace) -> RunsIndex:
    """The index of a campaign whose stored index (in `workspace`) is current: the stored frame as
    `_assemble` gives it (its text columns as object with None; the file holds nothing else it
    would change), without rebuilding it (0.6 s at 50,000 runs)."""
    frame = stored.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.StringDtype):
            frame[column] = _text(frame[column])
    names = [column[: -len(HPARAM_SUFFIX)] for column in frame.columns if column.endswith(HPARAM_SUFFIX)]
    return RunsIndex(frame, names, 0, workspace)


def _write_somewhere(workspace: Workspace, rows: pd.DataFrame, hparams_json: dict[str, str],
                     metrics: dict[str, list[str]]) -> Workspace:
    """Write the runs index into `workspace`, or the next place that takes it; the place it went."""
    while workspace.directory is not None:
        try:
            _write_runs_index(workspace.directory / RUNS_INDEX, rows, hparams_json, metrics)
            return workspace
        except OSError as exc:
            if not is_unwritable(exc):
                raise
            workspace = fallback(workspace, exc)
    return workspace


def _trajectory_manifest(path: Path) -> dict[str, list[int]]:
    if not _index_file(path):
        return {}
    try:
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[META_MANIFEST.encode()])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError, RecursionError):
        return {}


@contextmanager
def _snapshot(path: Path) -> Iterator[Path]:
    """A hard link to `path` that a concurrent atomic replace of `path` cannot change under a reader
    (in a directory this process cannot write, where no one replaces files either, `path` itself)."""
    link = temp_path(path, ".snap")
    for attempt in range(SNAPSHOT_ATTEMPTS):
        try:
            os.link(path, link)
            break
        except FileNotFoundError:
            # Linux fails a link whose source is being replaced by a rename at that instant: try again.
            if attempt == SNAPSHOT_ATTEMPTS - 1 or not path.exists():
                raise
        except OSError as exc:
            if not is_unwritable(exc):
                raise
            yield path
            return
    try:
        yield link
    finally:
        link.unlink(missing_ok=True)


@dataclass(frozen=True)
class TrajectorySource:
    """Where the view `traj` of `query_trajectories` comes from: the compacted file `path`, or, when
    nowhere can be written (`path` None), the runs' own files read into memory."""

    path: Path | None
    run_ids: list[str]
    files: list[str]
    workspace: Workspace | None = None


_FRESH_ROWS = ("SELECT ($ids::VARCHAR[])[(file_index + 1)::BIGINT] AS run_id, epoch, context::VARCHAR AS context, "
               f"metric::VARCHAR AS metric, key::VARCHAR AS key, value FROM read_parquet($files, {READ_OPTIONS})")


def trajectory_files(campaign_dir: Path, run_ids: Sequence[str]) -> list[str]:
    """The trajectory file path of each run (one string operation per run: at 50,000 runs, building
    a Path per run took a second)."""
    root = str(runs_dir(campaign_dir))
    return [f"{root}/{rid}/{TRAJECTORY}" for rid in run_ids]


def refresh_trajectories(campaign_dir: Path, runs: pd.DataFrame,
                         workspace: Workspace | None = None) -> TrajectorySource:
    """Bring `trajectories.parquet` (in `workspace`, chosen here when not given) up to date for the
    usable runs of `runs` (rows of runs.parquet). Unchanged runs' rows are copied from the old file
    (the workspace's, else the campaign's own summary/); a place that cannot be written is left for
    the next one, and with none left the source is the run files themselves."""
    campaign_dir = Path(campaign_dir)
    workspace = workspace or choose(campaign_dir)
    usable = runs[runs["skip_reason"].isna() & (runs["trajectory_size"] >= 0)]
    wanted = {r.run_id: [int(r.trajectory_size), int(r.trajectory_mtime_ns)] for r in usable.itertuples()}
    ids = list(wanted)
    all_files = trajectory_files(campaign_dir, ids)
    while workspace.directory is not None:
        path = workspace.directory / TRAJECTORIES_INDEX
        bases = [path, *(own / TRAJECTORIES_INDEX for own in _own_summary(campaign_dir))]
        base = next((p for p in bases if _index_file(p)), None)
        have = _trajectory_manifest(base) if base is not None else {}
        if have == wanted and base == path:
            return TrajectorySource(path, ids, all_files, workspace)
        try:
            _compact(campaign_dir, path, base, have, wanted)
            return TrajectorySource(path, ids, all_files, workspace)
        except OSError as exc:
            workspace = fallback(workspace, exc)
    return TrajectorySource(None, ids, all_files, workspace)


# The compacted trajectories' columns, and the rows of a Parquet row group in them (DuckDB's own
# default: small enough that a filter on run_id skips most of the file).
TRAJECTORIES_SCHEMA = pa.schema([("run_id", pa.string()), ("epoch", pa.int32()), ("context", pa.string()),
                                 ("metric", pa.string()), ("key", pa.string()), ("value", pa.float64())])
ROW_GROUP_ROWS = 122_880


def _compact(campaign_dir: Path, path: Path, base: Path | None, have: dict[str, list[int]],
             wanted: dict[str, list[int]]) -> None:
    """Write `path` with the rows of the runs of `wanted`, ordered by run_id and epoch: unchanged ones
    copied from `base`, the others read from their files. The runs go through in batches of
    SCAN_BATCH in run_id order, each sorted alone and appended to the file, so memory stays that of
    one batch however many runs there are. OSError when `path` cannot be written there (read-only,
    full)."""
    import duckdb

    order = sorted(wanted)
    fresh = {rid for rid in order if have.get(rid) != wanted[rid]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    schema = TRAJECTORIES_SCHEMA.with_metadata({META_MANIFEST: json.dumps(wanted, separators=(",", ":"))})
    con = connect()
    try:
        with ExitStack() as stack:
            old = None
            if base is not None and len(fresh) < len(order):
                (old,) = stack.enter_context(literal_paths([str(stack.enter_context(_snapshot(base)))]))
            writer = stack.enter_context(pq.ParquetWriter(tmp, schema))
            for start in range(0, len(order), SCAN_BATCH):
                batch = order[start:start + SCAN_BATCH]
                writer.write_table(_batch_rows(con, campaign_dir, batch, fresh, old), row_group_size=ROW_GROUP_ROWS)
        os.replace(tmp, path)
    except (OSError, duckdb.Error) as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_unwritable(exc):
            raise
        if not writable(path.parent):
            raise OSError(errno.EROFS, f"{path.parent} cannot be written") from None
        raise CampaignError(f"could not compact the trajectories of {campaign_dir} ({str(exc).splitlines()[0]}); "
                            "a run changed while indexing: run the command again") from None


def _batch_rows(con: Any, campaign_dir: Path, batch: list[str], fresh: set[str], old: str | None) -> pa.Table:
    """The rows of the runs `batch` (sorted run ids) ordered by run_id and epoch: those in `fresh`
    read from their files, the others from the old index `old` (a run_id range first, so that its
    row groups outside the batch are skipped)."""
    ids = [rid for rid in batch if rid in fresh]
    keep = [rid for rid in batch if rid not in fresh]
    parts: list[str] = []
    params: dict[str, Any] = {}
    with ExitStack() as stack:
        if ids:
            files = stack.enter_context(literal_paths(trajectory_files(campaign_dir, ids)))
            parts.append(_FRESH_ROWS)
            params.update(ids=ids, files=files)
        if keep and old is not None:
            parts.append(f"SELECT * FROM read_parquet({sql_text(old)}, {READ_OPTIONS}) WHERE run_id BETWEEN $low AND "
                         "$high AND run_id IN (SELECT unnest($keep::VARCHAR[]))")
            params.update(low=keep[0], high=keep[-1], keep=keep)
        if not parts:
            return TRAJECTORIES_SCHEMA.empty_table()
        table = con.sql(f"{' UNION ALL '.join(parts)} ORDER BY run_id, epoch", params=params).to_arrow_table()
    return table.cast(TRAJECTORIES_SCHEMA)


def query_trajectories(source: TrajectorySource, sql: str, params: dict[str, Any] | None = None,
                       tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Run `sql` over the compacted trajectories, available as the view `traj` (next to `tables`,
    data frames registered under their names)."""
    con = connect()
    for name, frame in (tables or {}).items():
        con.register(name, frame)
    if source.path is None:
        if source.files:
            with literal_paths(source.files) as files:
                con.execute(f"CREATE TEMP TABLE traj AS {_FRESH_ROWS}", {"ids": source.run_ids, "files": files})
        else:
            con.execute("CREATE TEMP TABLE traj (run_id VARCHAR, epoch INTEGER, context VARCHAR, metric VARCHAR, "
                        "key VARCHAR, value DOUBLE)")
        return con.execute(sql, params or {}).df()
    with _snapshot(source.path) as stable, literal_paths([stable]) as (literal,):
        con.execute(f"CREATE VIEW traj AS SELECT * FROM read_parquet({sql_text(literal)}, {READ_OPTIONS})")
        return con.execute(sql, params or {}).df()


def query_several(sources: Sequence[tuple[str, TrajectorySource]], sql: str, params: dict[str, Any] | None = None,
                  tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """`query_trajectories` over several campaigns at once: the view `traj` is every source's rows
    with `run_id` prefixed by that source's prefix (`<prefix>/<run_id>`), so the same run id in two
    campaigns stays two runs. Each source is read where its own campaign keeps it."""
    con = connect()
    for name, frame in (tables or {}).items():
        con.register(name, frame)
    with ExitStack() as stack:
        parts = []
        for number, (prefix, source) in enumerate(sources):
            if source.path is not None:
                stable = stack.enter_context(_snapshot(source.path))
                (literal,) = stack.enter_context(literal_paths([stable]))
                rows = f"SELECT * FROM read_parquet({sql_text(literal)}, {READ_OPTIONS})"
            elif source.files:
                files = stack.enter_context(literal_paths(source.files))
                con.execute(f"CREATE TEMP TABLE part{number} AS {_FRESH_ROWS}", {"ids": source.run_ids, "files": files})
                rows = f"SELECT * FROM part{number}"
            else:
                continue
            parts.append(f"SELECT {sql_text(prefix + '/')} || run_id AS run_id, epoch, context::VARCHAR AS context, "
                         f"metric::VARCHAR AS metric, key::VARCHAR AS key, value FROM ({rows})")
        parts = parts or ["SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS epoch, NULL::VARCHAR AS context, "
                          "NULL::VARCHAR AS metric, NULL::VARCHAR AS key, NULL::DOUBLE AS value WHERE false"]
        con.execute(f"CREATE TEMP VIEW traj AS {' UNION ALL '.join(parts)}")
        return con.execute(sql, params or {}).df()
