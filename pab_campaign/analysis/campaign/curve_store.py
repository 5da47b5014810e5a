"""Learning-curve aggregates kept beside the index (`curve_aggregates.parquet`, in the place the
index lives: see `workspace`), so that `curves` reads a few thousand rows instead of every
trajectory row.

For one grouping of the completed runs, the file holds per group number, label and epoch the
number of finite values (`runs`), their mean and standard deviation (ddof 1), and per label how
many runs have a ±inf value, with the first MAX_NAMED of their ids. Labels are added as they are
asked for. The file stands for the runs it was computed from only: its `token` hashes every run's
id, group number and trajectory manifest (size, mtime ns), so a run added, no longer completed,
rewritten or moved to another group makes it stale.

The file is untrusted like every file of a campaign: one that is missing, stale, of another
version, no regular file inside its folder (a link out, a FIFO, a directory), larger than
MAX_BYTES or MAX_ROWS, unreadable, or whose columns or values are not what `save` writes is not
used (`load` returns None); the caller computes the aggregates again and `save` replaces it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pab_campaign.errors import StoreError
from pab_campaign.store import atomic_write, read_run_file

CURVE_STORE = "curve_aggregates.parquet"
STORE_VERSION = 1
META_KEY = b"pab_campaign.curve_aggregates"
# Run ids with a ±inf value named per label (the note says how many there are).
MAX_NAMED = 10
# Bounds of a file that is read: a real one has groups × labels × epochs rows.
MAX_ROWS = 5_000_000
MAX_BYTES = 128 << 20
SCHEMA = pa.schema([("group", pa.int64()), ("label", pa.string()), ("epoch", pa.int32()), ("runs", pa.int64()),
                    ("mean", pa.float64()), ("std", pa.float64())])
# Columns that hold a value in every row (std is null where a group has one value).
_REQUIRED = ("group", "label", "epoch", "runs", "mean")


@dataclass(frozen=True)
class CurveAggregates:
    """`rows`: one row per group, label and epoch with a finite value: group (int64, the group's
    number), label (str), epoch (int32), runs (int64, values averaged), mean and std (float64, in
    the metric's unit; std NaN for one value). `labels`: the labels computed (one without any
    finite value has no rows). `infinite`: per label, the number of runs with a ±inf value and the
    first MAX_NAMED of their ids, in order."""

    rows: pd.DataFrame
    labels: tuple[str, ...]
    infinite: dict[str, tuple[int, tuple[str, ...]]]

    def having(self, labels: Sequence[str]) -> CurveAggregates:
        """The aggregates of `labels` alone (each one of `self.labels`)."""
        chosen = set(labels)
        return CurveAggregates(self.rows[self.rows["label"].isin(chosen)].reset_index(drop=True),
                               tuple(label for label in self.labels if label in chosen),
                               {label: found for label, found in self.infinite.items() if label in chosen})

    def plus(self, other: CurveAggregates) -> CurveAggregates:
        """These aggregates and `other`'s (computed for the same runs and groups), `other`'s labels
        replacing these ones where both have them."""
        kept = self.having([label for label in self.labels if label not in other.labels])
        return CurveAggregates(pd.concat([kept.rows, other.rows], ignore_index=True), (*kept.labels, *other.labels),
                               {**kept.infinite, **other.infinite})


def token(run_ids: Sequence[str], groups: np.ndarray, manifest: np.ndarray) -> str:
    """The identity of the runs aggregates are computed from: `run_ids` (in order), their group
    numbers (shape (runs,)) and trajectory manifest (shape (runs, 2): size, mtime ns)."""
    digest = hashlib.sha256(f"pab_campaign curve aggregates {STORE_VERSION}\n".encode())
    digest.update(json.dumps(list(run_ids)).encode())
    for array in (groups, manifest):
        digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.hexdigest()


def load(directory: Path, expected: str, groups: int) -> CurveAggregates | None:
    """The aggregates stored in `directory` when they were computed from the runs of token
    `expected`, in `groups` groups; None when there are none that may be used (module docstring)."""
    path = Path(directory) / CURVE_STORE
    try:
        data = read_run_file(path, path.parent, MAX_BYTES)
        source = pq.ParquetFile(pa.BufferReader(data))
        if source.metadata.num_rows > MAX_ROWS or not source.schema_arrow.remove_metadata().equals(SCHEMA):
            return None
        meta = _meta((source.schema_arrow.metadata or {}).get(META_KEY), expected)
        if meta is None:
            return None
        table = source.read()
    except (OSError, StoreError, ValueError, RecursionError, pa.ArrowException):
        return None
    if any(table.column(name).null_count for name in _REQUIRED):
        return None
    rows = table.replace_schema_metadata(None).to_pandas()
    labels, infinite = meta
    if (not rows["label"].isin(set(labels)).all() or not rows["group"].between(0, groups - 1).all()
            or not (rows["runs"] >= 1).all() or rows.duplicated(["group", "label", "epoch"]).any()):
        return None
    return CurveAggregates(rows, labels, infinite)


def _meta(raw: bytes | None, expected: str) -> tuple[tuple[str, ...], dict[str, tuple[int, tuple[str, ...]]]] | None:
    """The labels and ±inf runs of the file's key-value metadata `raw` when it is of this version
    and token `expected` and well formed; else None."""
    if raw is None:
        return None
    meta: Any = json.loads(raw)
    if not isinstance(meta, dict) or meta.get("version") != STORE_VERSION or meta.get("token") != expected:
        return None
    labels, infinite = meta.get("labels"), meta.get("infinite")
    if (not isinstance(labels, list) or not all(isinstance(label, str) for label in labels)
            or len(set(labels)) != len(labels) or not isinstance(infinite, dict) or set(infinite) != set(labels)):
        return None
    found: dict[str, tuple[int, tuple[str, ...]]] = {}
    for label, entry in infinite.items():
        if (not isinstance(entry, list) or len(entry) != 2 or type(entry[0]) is not int or entry[0] < 0
                or not isinstance(entry[1], list) or not all(isinstance(run_id, str) for run_id in entry[1])
                or len(entry[1]) != min(entry[0], MAX_NAMED)):
            return None
        found[label] = (entry[0], tuple(entry[1]))
    return tuple(labels), found


def save(directory: Path, stamp: str, aggregates: CurveAggregates) -> bool:
    """Write `aggregates` of the runs of token `stamp` into `directory` (atomically, over whatever
    is there); False, leaving everything as it was, when that cannot be done there or they have
    more than MAX_ROWS rows."""
    if len(aggregates.rows) > MAX_ROWS:
        return False
    meta = {"version": STORE_VERSION, "token": stamp, "labels": list(aggregates.labels),
            "infinite": {label: [count, list(named)] for label, (count, named) in aggregates.infinite.items()}}
    table = pa.Table.from_pandas(aggregates.rows[SCHEMA.names], schema=SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, separators=(",", ":")).encode()})
    try:
        atomic_write(Path(directory) / CURVE_STORE, lambda tmp: pq.write_table(table, tmp))
    except OSError:
        return False
    return True
