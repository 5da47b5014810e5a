"""The layout of the runs index file (`index` builds it, `warm` reads it, `patch` amends it): its
name and version, its columns and their types, the DuckDB query that reads each run's scalar
metrics at its last and best epoch, and how DuckDB reads a stored file's columns. Imports nothing
heavy."""
from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from pab_campaign.analysis.campaign.duck import READ_OPTIONS
from pab_campaign.analysis.campaign.manifest import MANIFEST_COLUMNS

INDEX_VERSION = "4"
RUNS_INDEX = "runs.parquet"
META_VERSION = b"pab_campaign.index_version"

RECORD_COLUMNS = ("run_id", "campaign", "status", "started_at", "ended_at", "duration_s", "epochs_done",
                  "restarts", "host", "slurm_job_id", "error")
DERIVED_COLUMNS = ("last_epoch", "best_epoch", "skip_reason")
FIXED_COLUMNS = (*RECORD_COLUMNS, *DERIVED_COLUMNS, *MANIFEST_COLUMNS)
# Column types of the fixed columns: text (None when missing) and float (NaN when missing); the
# manifest is int64.
TEXT_COLUMNS = ("run_id", "campaign", "status", "started_at", "ended_at", "host", "slurm_job_id", "error",
                "skip_reason")
FLOAT_COLUMNS = ("duration_s", "epochs_done", "restarts", "last_epoch", "best_epoch")
# The columns of the stored file beyond the index frame: each run's hyper-parameters as run.json has
# them (a JSON object; null when run.json could not be read) and its metric columns (a JSON list).
RUN_HPARAMS = "run_hparams"
RUN_METRICS = "run_metric_columns"
# The per-run texts a refresh reads; no warm answer uses them.
STORED_TEXTS = (RUN_HPARAMS, RUN_METRICS)
# A hyper-parameter's column is its name plus this suffix: no name a run.json holds can meet a fixed
# column (no '@') or a metric column (ending '@last' or '@best').
HPARAM_SUFFIX = "@hparam"

# Per trajectory file (`f`, its position in the list) and scalar (context, metric): the last epoch,
# the value there, the value at the run's epoch of minimal finite val/loss (`best_epoch`), and
# whether an epoch holds two rows of it.
SCALARS_SQL = """
WITH t AS MATERIALIZED (
    SELECT file_index AS f, epoch, context::VARCHAR AS context, metric::VARCHAR AS metric, value
    FROM read_parquet(?, hive_partitioning = false) WHERE key IS NULL),
b AS (SELECT f, arg_min(epoch, (value, epoch)) AS best_epoch FROM t
      WHERE context = 'val' AND metric = 'loss' AND isfinite(value) GROUP BY f)
SELECT t.f, t.context, t.metric, max(t.epoch) AS last_epoch, arg_max(t.value, t.epoch) AS last,
       any_value(t.value) FILTER (WHERE t.epoch = b.best_epoch) AS best, any_value(b.best_epoch) AS best_epoch,
       count(*) > max(t.epoch) - min(t.epoch) + 1 AS duplicated
FROM t LEFT JOIN b ON t.f = b.f GROUP BY ALL
"""


# tcbench names a hyper-parameter `hparams.<name>` (its aim runs' key); its users type either form.
TCBENCH_PREFIX = "hparams."


def as_hparam_name(given: str, names: Collection[str]) -> str:
    """`given` as a hyper-parameter of `names`: itself, or without tcbench's `hparams.` prefix when
    only that names one (`hparams.optimizer.lr` → optimizer.lr); `given` unchanged otherwise.

    >>> as_hparam_name("hparams.lr", ["lr", "seed"]), as_hparam_name("hparams.x", ["hparams.x"])
    ('lr', 'hparams.x')
    """
    bare = given.removeprefix(TCBENCH_PREFIX)
    return bare if given not in names and bare in names else given


def hparam_key(name: str) -> str:
    """The index column of hyper-parameter `name`."""
    return f"{name}{HPARAM_SUFFIX}"


def hparams_text(hparams: dict[str, Any]) -> str:
    """A run's RUN_HPARAMS: its hyper-parameters as run.json has them, as compact JSON."""
    return json.dumps(hparams, separators=(",", ":"))


def metrics_text(labels: list[str]) -> str:
    """A run's RUN_METRICS: its metric columns (sorted), as a compact JSON list."""
    return json.dumps(labels, separators=(",", ":"))


def stored_types(con: Any, literal: str) -> dict[str, str] | None:
    """DuckDB's type of each column of the runs index file whose path is the SQL text `literal`, in
    the file's order; None for a file of another version, or with names DuckDB cannot keep apart
    (it folds case) or hold (NUL)."""
    version = con.execute(f"SELECT value::VARCHAR FROM parquet_kv_metadata({literal}) WHERE key::VARCHAR = $k",
                          {"k": META_VERSION.decode()}).fetchall()
    if version != [(INDEX_VERSION,)]:
        return None
    stored = [name for (name,) in con.execute(f"SELECT name FROM parquet_schema({literal})").fetchall()][1:]
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                             f"read_parquet({literal}, {READ_OPTIONS}))").fetchall())
    return types if list(types) == stored and not any("\0" in name for name in types) else None
