"""The data contract: campaign layout, `run.json`, `trajectory.parquet`, atomic writes.

Training writes through this module and analysis reads through it; it imports neither torch nor
any analysis code, so both sides can depend on it alone.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pab_campaign.errors import StoreError

RUNS_DIR = "runs"
SUMMARY_DIR = "summary"
RUN_JSON = "run.json"
TRAJECTORY = "trajectory.parquet"
CHECKPOINTS = "checkpoints"

STATUSES = ("running", "completed", "failed", "diverged", "preempted")
FINISHED_STATUSES = frozenset({"completed", "diverged"})

RUN_FIELDS = (
    "run_id", "campaign", "status", "hparams", "overrides", "seed", "started_at", "ended_at",
    "duration_s", "epochs_done", "restarts", "host", "slurm_job_id", "git_commit", "versions",
    "error",
)

_DICT = pa.dictionary(pa.int32(), pa.string())
TRAJECTORY_SCHEMA = pa.schema([
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("context", _DICT, nullable=False),
    pa.field("metric", _DICT, nullable=False),
    pa.field("key", _DICT, nullable=True),
    pa.field("value", pa.float64(), nullable=True),
])


def runs_dir(campaign_dir: Path) -> Path:
    return Path(campaign_dir) / RUNS_DIR


def run_dir(campaign_dir: Path, run_id: str) -> Path:
    return runs_dir(campaign_dir) / run_id


def summary_dir(campaign_dir: Path) -> Path:
    return Path(campaign_dir) / SUMMARY_DIR


def is_campaign(path: Path) -> bool:
    """True when `path` is a directory laid out as a campaign (it has a `runs/` directory)."""
    return runs_dir(path).is_dir()


def iter_run_dirs(campaign_dir: Path) -> Iterator[Path]:
    """Run directories of a campaign, sorted by run_id."""
    root = runs_dir(campaign_dir)
    if not root.is_dir():
        return
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            yield Path(entry.path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` all-or-nothing: `write(tmp)` fills a temp file beside it, then fsync + rename.

    If `write` raises, the previous file at `path` (if any) is untouched and the temp file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_run_json(directory: Path, record: dict[str, Any]) -> None:
    """Atomically (re)write `<directory>/run.json`; unknown fields are refused."""
    unknown = set(record) - set(RUN_FIELDS)
    if unknown:
        raise StoreError(f"run.json fields {sorted(unknown)} are not in the contract {RUN_FIELDS}")
    text = json.dumps(_json_safe(record), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(Path(directory) / RUN_JSON, text.encode())


def read_run_json(directory: Path) -> dict[str, Any]:
    path = Path(directory) / RUN_JSON
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{path}: missing run.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: run.json is not valid JSON ({exc})") from None
    if not isinstance(record, dict) or "run_id" not in record or "status" not in record:
        raise StoreError(f"{path}: run.json lacks run_id or status")
    return record


class TrajectoryBuffer:
    """Rows of one run's trajectory held in memory: (epoch, context, metric, key, value)."""

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.context: list[str] = []
        self.metric: list[str] = []
        self.key: list[str | None] = []
        self.value: list[float] = []

    def __len__(self) -> int:
        return len(self.epoch)

    def add(self, epoch: int, context: str, metric: str, value: float, key: str | None = None) -> None:
        self.epoch.append(int(epoch))
        self.context.append(context)
        self.metric.append(metric)
        self.key.append(None if key is None else str(key))
        self.value.append(float(value))

    def extend(self, epoch: int, rows: list[tuple[str, str, str | None, float]]) -> None:
        """Add (context, metric, key, value) rows measured at `epoch`."""
        for context, metric, key, value in rows:
            self.add(epoch, context, metric, value, key)

    def truncate_after(self, epoch: int) -> None:
        """Drop every row of an epoch later than `epoch` (used when resuming from a checkpoint)."""
        keep = [i for i, e in enumerate(self.epoch) if e <= epoch]
        for name in ("epoch", "context", "metric", "key", "value"):
            column = getattr(self, name)
            setattr(self, name, [column[i] for i in keep])

    def to_table(self) -> pa.Table:
        return pa.table({
            "epoch": pa.array(self.epoch, pa.int32()),
            "context": pa.array(self.context, pa.string()).dictionary_encode(),
            "metric": pa.array(self.metric, pa.string()).dictionary_encode(),
            "key": pa.array(self.key, pa.string()).dictionary_encode(),
            "value": pa.array(self.value, pa.float64()),
        }).cast(TRAJECTORY_SCHEMA)

    @classmethod
    def from_table(cls, table: pa.Table) -> TrajectoryBuffer:
        buffer = cls()
        columns = table.cast(TRAJECTORY_SCHEMA).to_pydict()
        buffer.epoch = [int(e) for e in columns["epoch"]]
        buffer.context = list(columns["context"])
        buffer.metric = list(columns["metric"])
        buffer.key = list(columns["key"])
        buffer.value = [math.nan if v is None else float(v) for v in columns["value"]]
        return buffer


def write_trajectory(directory: Path, table: pa.Table) -> None:
    """Atomically (re)write `<directory>/trajectory.parquet` with all rows so far."""
    table = table.cast(TRAJECTORY_SCHEMA)
    atomic_write(Path(directory) / TRAJECTORY, lambda tmp: pq.write_table(table, tmp))


def read_trajectory(directory: Path) -> pa.Table:
    """Read a run's trajectory, checked against TRAJECTORY_SCHEMA."""
    path = Path(directory) / TRAJECTORY
    if not path.exists():
        raise StoreError(f"{path}: missing trajectory.parquet")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(f"{path}: unreadable Parquet ({exc})") from None
    missing = set(TRAJECTORY_SCHEMA.names) - set(table.column_names)
    if missing:
        raise StoreError(f"{path}: trajectory lacks columns {sorted(missing)}")
    return table.select(TRAJECTORY_SCHEMA.names).cast(TRAJECTORY_SCHEMA)
