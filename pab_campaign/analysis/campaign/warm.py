"""Warm answers from the compacted runs index without pandas, numpy or pyarrow (a warm `ls` or
`properties` is then mostly the DuckDB import).

`read_warm` returns the index, read into DuckDB, only when the index in the campaign's workspace is
current: a regular file of this index version whose manifest equals a scan of the run directories
now, so that its rows are exactly what `index.refresh_runs` would return (a few changed or new runs
may be patched in first: `patch`). Otherwise it returns None and the command takes the full path
(`campaign.open_campaign`), which refreshes the index. The commands query the rows they show;
values match the full path's: a missing number is NaN, a missing text None.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pab_campaign.analysis.campaign.duck import READ_OPTIONS, connect, literal_paths, sql_name, sql_text
from pab_campaign.analysis.campaign.index_layout import (
    HPARAM_SUFFIX,
    RUNS_INDEX,
    STORED_TEXTS,
    stored_types,
)
from pab_campaign.analysis.campaign.manifest import MANIFEST_COLUMNS, Scans, scan_rows
from pab_campaign.analysis.campaign.workspace import choose
from pab_campaign.analysis.stats.descriptive import describe
from pab_campaign.errors import CampaignError, StoreError
from pab_campaign.store import RunStatus, check_run_file, is_campaign

LS_COLUMNS = ("run_id", "campaign", "status", "started_at", "ended_at", "duration_s", "epochs_done", "error",
              "skip_reason")
LS_FLOAT_COLUMNS = ("duration_s", "epochs_done")


@dataclass
class WarmIndex:
    """A current index, read into the DuckDB temp table `runs` of `con` (DuckDB's `column_types` of
    its columns): the unreadable runs (`skipped`: run_id, reason, sorted by run_id), the
    hyper-parameters some chosen run has (`hparam_names`, sorted), the index file, the user's notes
    and the campaigns the runs were restricted to (`chosen_runs`)."""

    directory: Path
    path: Path
    con: Any = field(repr=False)
    column_types: dict[str, str]
    skipped: list[tuple[str, str]]
    hparam_names: list[str]
    notes: list[str] = field(default_factory=list)
    campaign_ids: list[str] | None = None  # the campaigns the runs were restricted to
    writing: Any = field(default=None, repr=False)  # the patched index file being written (`patch.IndexWrite`)

    def finish(self) -> None:
        """Wait until the patched index file is written (the answers came from memory meanwhile)."""
        if self.writing is not None:
            self.writing.join()


def read_warm(directory: Path | str, campaign_ids: list[str] | None = None,
              scans: Scans | None = None, patch: bool = False) -> WarmIndex | None:
    """The index of `directory` when it is current (module docstring), restricted to `campaign_ids`;
    None when it is missing, stale, of another version or not a regular file. The scan of the run
    files goes into `scans` (under `directory`), for the full path of the same command to reuse.

    The index is read on a second thread while this one scans the run files: DuckDB works without
    Python's lock, and the scan mostly waits on the file system (at 50,000 runs, 0.3 s saved). Only
    the manifest columns are fetched to compare; the commands query what they show.

    With `patch`, an index of this version that a few changed or new runs made stale is brought up to
    date where `patch.patch_loaded` can (in DuckDB): in memory at once, and in its file on a thread
    (`WarmIndex.finish` waits for it)."""
    directory = Path(directory)
    if not directory.is_dir() or not is_campaign(directory):
        return None
    workspace = choose(directory)
    if workspace.directory is None:
        return None
    path = workspace.directory / RUNS_INDEX
    try:
        check_run_file(path, path.parent)
    except (OSError, StoreError):
        return None
    reading = _IndexRead(path)
    reading.start()
    try:
        scanned = scan_rows(directory)
    finally:
        reading.join()
    if scans is not None:
        scans[directory] = scanned
    if reading.manifest is None:
        return None
    writing = None
    if reading.manifest != scanned:
        from pab_campaign.analysis.campaign.patch import patch_loaded

        writing = patch_loaded(directory, path, scanned, reading.con, reading.manifest) if patch else None
        if writing is None:
            return None
    con, types = reading.con, reading.types
    skipped = [(run_id, reason) for run_id, reason in con.execute(
        "SELECT run_id, skip_reason FROM runs WHERE status IS NULL ORDER BY run_id").fetchall()]
    warm = WarmIndex(directory, path, con, types, skipped, [], [workspace.note] if workspace.note else [],
                     campaign_ids or None, writing)
    try:
        warm.hparam_names = _chosen_names(warm)
    except BaseException:
        warm.finish()
        raise
    return warm


def _chosen_names(warm: WarmIndex) -> list[str]:
    """The hyper-parameters some chosen run has (`_named`); CampaignError where no run is of the
    campaigns `warm` was restricted to."""
    con, campaign_ids, directory = warm.con, warm.campaign_ids, warm.directory
    if campaign_ids and not con.execute("SELECT count(*) FROM runs WHERE status IS NOT NULL AND campaign IN "
                                        "(SELECT unnest($c::VARCHAR[]))", {"c": campaign_ids}).fetchone()[0]:
        present = [c for (c,) in con.execute("SELECT DISTINCT campaign FROM runs WHERE status IS NOT NULL AND "
                                             "campaign IS NOT NULL ORDER BY campaign").fetchall()]
        raise CampaignError(f"no run of campaign {', '.join(campaign_ids)} in {directory}; "
                            f"its runs belong to: {', '.join(present) or 'none'}")
    return _named(warm)


def _named(warm: WarmIndex) -> list[str]:
    """The hyper-parameters (names without HPARAM_SUFFIX, sorted) that some chosen run has."""
    keys = _keys(warm.column_types, sorted(n[: -len(HPARAM_SUFFIX)] for n in warm.column_types
                                           if n.endswith(HPARAM_SUFFIX)))
    if not keys:
        return []
    where, params = chosen_runs(warm)
    found = warm.con.execute(f"SELECT {', '.join(f'count({e})' for e in keys.values())} FROM runs WHERE {where}",
                             params).fetchone() or ()
    return [name for name, count in zip(keys, found) if count]


class _IndexRead(threading.Thread):
    """Reads the runs index at `path` into the temp table `runs` of a new connection (`con`) and
    fetches each run's run_id and manifest, sorted by run_id (`manifest`), with DuckDB's `types` of
    the columns. `manifest` stays None for an index of another version, with names DuckDB cannot
    keep (it folds case; NUL), or that cannot be read."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="pab-index-read", daemon=True)
        self.path = path
        self.con: Any = None
        self.types: dict[str, str] = {}
        self.manifest: list[tuple] | None = None

    def run(self) -> None:
        import duckdb

        try:
            self.con = con = connect()
            with literal_paths([self.path]) as (literal,):
                source = sql_text(literal)
                stored = stored_types(con, source)
                if stored is None:
                    return
                con.execute(f"CREATE TEMP TABLE runs AS SELECT * EXCLUDE ({', '.join(STORED_TEXTS)}) "
                            f"FROM read_parquet({source}, {READ_OPTIONS})")
            types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE runs)").fetchall())
            if types != {name: kind for name, kind in stored.items() if name not in STORED_TEXTS}:
                return  # the file was replaced between the two reads
            manifest = ", ".join(MANIFEST_COLUMNS)
            self.manifest = con.execute(f"SELECT run_id, {manifest} FROM runs ORDER BY run_id").fetchall()
            self.types = types
        except (duckdb.Error, OSError, StoreError, ValueError):
            self.manifest = None


def chosen_runs(warm: WarmIndex, completed: bool = False) -> tuple[str, dict[str, Any]]:
    """A condition on the table `runs` (and its parameters) that holds for the runs `read_warm` chose
    (a list of 50,000 run ids in SQL took 0.1 s), or with `completed` for those
    completed and not set aside."""
    where = "status = $completed AND skip_reason IS NULL" if completed else "status IS NOT NULL"
    params: dict[str, Any] = {"completed": RunStatus.COMPLETED.value} if completed else {}
    if warm.campaign_ids:
        where += " AND campaign IN (SELECT unnest($campaigns::VARCHAR[]))"
        params["campaigns"] = warm.campaign_ids
    return where, params


def ls_rows(warm: WarmIndex, statuses: list[str] | None = None) -> tuple[list[str], list[tuple]]:
    """The hyper-parameters that vary over the chosen runs with one of `statuses` (all when None:
    `varying_names`) and those runs, sorted by run_id, as tuples of LS_COLUMNS then the values of
    the varying ones (a missing number NaN, a missing text None, as the full path reads them)."""
    where, params = chosen_runs(warm)
    if statuses:
        where += " AND status IN (SELECT unnest($statuses::VARCHAR[]))"
        params["statuses"] = statuses
    varying = varying_in(warm.con, f"runs WHERE {where}", params, key_expressions(warm))
    numbers = {c for c, kind in warm.column_types.items() if c.endswith(HPARAM_SUFFIX) and is_number_type(kind)}
    shown = [*LS_COLUMNS, *(f"{name}{HPARAM_SUFFIX}" for name in varying)]
    selected = ", ".join(f"coalesce({sql_name(c)}::DOUBLE, 'NaN'::DOUBLE)" if c in (*LS_FLOAT_COLUMNS, *numbers)
                         else sql_name(c) for c in shown)
    return varying, warm.con.execute(f"SELECT {selected} FROM runs WHERE {where} ORDER BY run_id", params).fetchall()


def key_expressions(warm: WarmIndex) -> dict[str, str]:
    """Each hyper-parameter of `warm.hparam_names` as a SQL expression over `runs`, NULL where a run
    lacks it (a NaN number included), as the full path reads a missing value (None)."""
    return _keys(warm.column_types, warm.hparam_names)


def _keys(column_types: dict[str, str], names: list[str]) -> dict[str, str]:
    """`key_expressions` of the hyper-parameters `names`, given DuckDB's type of each index column."""
    keys = {}
    for name in names:
        column = f"{name}{HPARAM_SUFFIX}"
        quoted = sql_name(column)
        number = is_number_type(column_types[column])
        keys[name] = f"CASE WHEN isnan({quoted}) THEN NULL ELSE {quoted} END" if number else quoted
    return keys


def is_number_type(kind: str) -> bool:
    """Whether a DuckDB column type is one whose missing value the index may hold as NaN."""
    return kind in ("DOUBLE", "FLOAT")


def varying_in(con: Any, source: str, params: dict[str, Any], keys: dict[str, str]) -> list[str]:
    """`varying_names` computed by DuckDB over the rows of `source` (a table, or a table with its
    WHERE clause, taking `params`), each hyper-parameter given as the expression of `keys` (NULL when
    missing): DISTINCT takes NULLs as one value and -0.0 as 0.0, as Python's set does."""
    if not keys:
        return []
    counts = con.execute(f"SELECT {', '.join(f'count(DISTINCT {e})' for e in keys.values())} FROM {source}",
                         params).fetchone()
    candidates = sorted((name for name, count in zip(keys, counts) if name != "seed" and count > 1),
                        key=lambda name: (not name.endswith(".name"), name))
    chosen: list[str] = []
    groups = 1
    for name in candidates:
        columns = ", ".join(keys[n] for n in [*chosen, name])
        (count,) = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {columns} FROM {source})", params).fetchone()
        if count > groups:
            chosen.append(name)
            groups = count
    return chosen


def varying_names(columns: dict[str, list[Any]]) -> list[str]:
    """`campaign.varying_hparams` without pandas, over each hyper-parameter's values per run (None
    where a run lacks it): the names other than `seed` with two values or more, `.name` ones first,
    each kept only when it splits the runs further (a missing value then counts as one value)."""
    candidates = sorted((name for name, values in columns.items()
                         if name != "seed" and len({v for v in values if v is not None}) > 1),
                        key=lambda name: (not name.endswith(".name"), name))
    chosen: list[str] = []
    groups = 1
    for name in candidates:
        count = len(set(zip(*(columns[n] for n in [*chosen, name]))))
        if count > groups:
            chosen.append(name)
            groups = count
    return chosen


class PropertyRow(NamedTuple):
    """A row of `properties`: the property, its number of unique values ('-' where a count means
    nothing), its values as text (`values_text`), and how many of the `runs` lack it (a
    hyper-parameter only some runs have)."""

    name: str
    unique: str
    values: str
    lacking: int = 0
    runs: int = 0

    def shown(self) -> str:
        """The values as the table and the page show them: with how many runs lack it, if any."""
        return self.values + (f" ({self.lacking} of {self.runs} runs lack it)" if self.lacking else "")


def warm_properties(warm: WarmIndex, listed: int | None = None) -> list[PropertyRow]:
    """`campaign.properties` of the runs of `warm` (a hyper-parameter's values shortened to `listed`:
    `values_text`), computed by DuckDB over the index columns of those runs alone."""
    con, names = warm.con, list(warm.column_types)
    where, params = chosen_runs(warm)
    chosen = f"runs WHERE {where}"  # filtered in each query (a copy of the runs took 0.09 s at 50k)
    counted = con.execute(f"SELECT status, count(*) FROM {chosen} GROUP BY status", params).fetchall()
    runs = sum(n for _, n in counted)
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(counted))
    (durations,) = con.execute("SELECT coalesce(list(duration_s) FILTER (WHERE NOT isnan(duration_s)), []) "
                               f"FROM {chosen}", params).fetchone()  # in any order (`describe`)
    labels = tracked_labels(con, names, chosen, params)
    campaigns = [c for (c,) in con.execute(f"SELECT DISTINCT campaign FROM {chosen} AND campaign IS NOT NULL "
                                           "ORDER BY campaign", params).fetchall()]
    metrics = sorted({n.split("/", 1)[1] for n in labels})
    contexts = sorted({n.split("/", 1)[0] for n in labels})
    out = [
        PropertyRow("campaigns", str(len(campaigns)), ", ".join(campaigns) or "-"),
        PropertyRow("runs", "-", f"{runs} ({statuses or 'none'}; {len(warm.skipped)} unreadable)"),
        PropertyRow("run duration (s, mean ± std)", "-", duration_text(durations)),
        PropertyRow("metrics", str(len(metrics)), ", ".join(metrics) or "-"),
        PropertyRow("contexts", str(len(contexts)), ", ".join(contexts) or "-"),
    ]
    hparams = sorted(n[: -len(HPARAM_SUFFIX)] for n in names if n.endswith(HPARAM_SUFFIX))
    keys = _keys(warm.column_types, hparams)
    lacking = con.execute("SELECT " + ", ".join(f"count(*) FILTER (WHERE {keys[name]} IS NULL)" for name in hparams)
                          + f" FROM {chosen}", params).fetchone() if hparams else ()
    for name, missing in zip(hparams, lacking or ()):
        column = name + HPARAM_SUFFIX
        values = [v for (v,) in con.execute(f"SELECT DISTINCT {sql_name(column)} FROM {chosen}", params).fetchall()
                  if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if values:
            out.append(PropertyRow(name, str(len(values)), values_text(values, listed, whole=missing > 0), missing,
                                   runs))
    return out


# The values of a hyper-parameter the `properties` table and the page list (`values_text`); `--json`
# lists every one.
LISTED_VALUES = 12


def values_text(values: list[Any], listed: int | None = None, whole: bool = False) -> str:
    """A hyper-parameter's distinct `values` sorted (numbers before text) and comma-separated, as
    `properties` shows them; more than `listed` of them shortened to the first `listed` - 1, '…' and
    the last (`listed` None: all of them). With `whole` (a number column some runs lack is stored as
    floats), a whole value is shown whole: run.json's 3, not 3.0, as `ls` and `report` show it."""
    ordered = [_whole(v) if whole else str(v) for v in sorted(values, key=lambda v: (isinstance(v, str), v))]
    if listed is not None and len(ordered) > listed:
        ordered = [*ordered[:listed - 1], "…", ordered[-1]]
    return ", ".join(ordered)


def _whole(value: Any) -> str:
    """`value` as text, a whole float within ±2**53 without its '.0'."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return str(int(value))
    return str(value)


def tracked_labels(con: Any, columns: list[str], source: str, params: dict[str, Any]) -> list[str]:
    """The metric labels (sorted) of the index `columns` with a value (not null, not NaN) at some
    run's last or best epoch, over the runs of `source` (a table with its WHERE clause, taking
    `params`): `campaign.indexed_metrics` of those runs."""
    labels = [name[: -len("@last")] for name in columns if name.endswith("@last")]
    counted = [c for label in labels for c in (f"{label}@last", f"{label}@best") if c in columns]
    if not counted:
        return []
    counts = ", ".join(f"count(*) FILTER (WHERE NOT isnan({sql_name(c)}))" for c in counted)
    found = con.execute(f"SELECT {counts} FROM {source}", params).fetchone() or ()
    present = {c for c, count in zip(counted, found) if count}
    return sorted(label for label in labels if f"{label}@last" in present or f"{label}@best" in present)


def duration_text(durations: list[float]) -> str:
    """'mean ± std' of run durations (s; NaN left out, any order) as `properties` shows them (std
    NaN for one run), '-' for none: `describe`'s, so that no duration a run.json holds (1e300,
    Infinity) breaks it."""
    described = describe(durations)
    return f"{described.mean:.4g} ± {described.std:.2g}" if described.n else "-"
