"""The data contract: campaign layout, `run.json`, `trajectory.parquet`, atomic writes.

Training writes through this module and analysis reads through it; it imports neither torch nor
any analysis code, so both sides can depend on it alone.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pab_campaign.errors import StoreError

RUNS_DIR = "runs"
SUMMARY_DIR = "summary"
RUN_JSON = "run.json"
TRAJECTORY = "trajectory.parquet"
# Full tracebacks of the run's failures, appended (run.json's `error` holds the last line).
RUN_LOG = "run.log"
CHECKPOINTS = "checkpoints"

Scalar = str | int | float | bool | None


class RunStatus(str, Enum):
    """Where a run stands; `run.json` stores the value. `completed` and `diverged` are final: a sweep
    launched again skips such a run. The others are resumed from the run's last checkpoint."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DIVERGED = "diverged"
    PREEMPTED = "preempted"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """True for the final statuses, which a relaunch never reopens."""
        return self in (RunStatus.COMPLETED, RunStatus.DIVERGED)


@dataclass
class RunRecord:
    """One run's `run.json`: identity, status, hyper-parameters, timing and provenance.

    `hparams` maps flat dotted keys (`optimizer.lr`) to scalars; times are ISO-8601 UTC strings;
    `duration_s` is wall-clock seconds over all attempts (None when unknown); `error` is the last line
    of the exception that failed the run; `world_sizes` the ranks of each attempt. `from_json` checks
    every field's type, so a hand-edited or foreign file is refused with the field named, and fills
    fields an older file lacks with defaults.
    """

    run_id: str
    status: RunStatus
    campaign: str | None = None
    hparams: dict[str, Scalar] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = 0.0
    epochs_done: int = 0
    restarts: int = 0
    host: str | None = None
    slurm_job_id: str | None = None
    git_commit: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    # Ranks (processes) of each attempt, first to last: 1 for a single-process attempt. Empty in a
    # run.json written before this field existed.
    world_sizes: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        """The record as indented JSON text (non-finite numbers written as null)."""
        return json.dumps(json_safe(asdict(self)), indent=2, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str, source: Path | str = "run.json") -> RunRecord:
        """Parse and check `text`; StoreError naming `source` and the offending field otherwise."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{source}: run.json is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or "run_id" not in data or "status" not in data:
            raise StoreError(f"{source}: run.json lacks run_id or status")
        return cls.from_dict(data, source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | str = "run.json") -> RunRecord:
        """Check the known fields of `data` (unknown ones are ignored) and build the record."""
        values = {}
        for name, (check, expected) in _FIELD_CHECKS.items():
            if name not in data:
                continue
            value = data[name]
            if not check(value):
                raise StoreError(f"{source}: run.json field '{name}' is {_describe(value)}; expected {expected}")
            values[name] = value
        try:
            values["status"] = RunStatus(values["status"])
        except ValueError:
            raise StoreError(f"{source}: run.json status '{values['status']}' is not one of "
                             f"{[s.value for s in RunStatus]}") from None
        if values.get("duration_s") is not None:
            values["duration_s"] = float(values["duration_s"])
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and not isinstance(value, bool)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_scalar_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))) for k, v in value.items())


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {json.dumps(value, default=str)[:40]}"


_TEXT = (_optional(_is_str), "a string or null")
# run.json field -> (check of its JSON value, what the check expects, for the error message)
_FIELD_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "run_id": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "status": (_is_str, "a string"),
    "campaign": _TEXT,
    "hparams": (_is_scalar_map, "an object of scalars"),
    "overrides": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "seed": (_optional(_is_int), "an integer or null"),
    "started_at": _TEXT,
    "ended_at": _TEXT,
    "duration_s": (_optional(_is_number), "a number or null"),
    "epochs_done": (_is_int, "an integer"),
    "restarts": (_is_int, "an integer"),
    "host": _TEXT,
    "slurm_job_id": _TEXT,
    "git_commit": _TEXT,
    "versions": (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()), "an object of strings"),
    "error": _TEXT,
    "world_sizes": (lambda v: isinstance(v, list) and all(_is_int(x) and x >= 1 for x in v),
                    "a list of positive integers"),
}
RUN_FIELDS = tuple(f.name for f in fields(RunRecord))

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


def run_entry_names(campaign_dir: Path) -> list[str]:
    """The names in a campaign's `runs/` that are or were meant to be runs, sorted: every directory,
    and every symbolic link that cannot be followed (dangling, a loop), so that readers can set it
    aside with its reason. Names starting with '.' (temp files) and plain files are not runs."""
    root = runs_dir(campaign_dir)
    if not root.is_dir():
        return []
    names = []
    for entry in os.scandir(root):
        if entry.name.startswith("."):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir or (entry.is_symlink() and not os.path.exists(entry.path)):
            names.append(entry.name)
    return sorted(names)


def iter_run_dirs(campaign_dir: Path) -> Iterator[Path]:
    """Run directories of a campaign, sorted by run_id (links that cannot be followed left out)."""
    root = runs_dir(campaign_dir)
    for name in run_entry_names(campaign_dir):
        if (root / name).is_dir():
            yield root / name


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- processes and temp files ------------------------------------------------------------------
# A temp file's name says which process made it: `.<target>~<host>~<pid>~<token><suffix>`.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)~(?P<host>[^~]+)~(?P<pid>\d+)~(?P<token>[0-9a-f]+)(?P<suffix>\.\w+)?$")
# A temp file of another host is stale after this long (no live command keeps one open for an hour).
FOREIGN_TEMP_STALE_S = 3600.0
# What a write to a read-only, full or foreign directory raises: the reader falls back elsewhere.
UNWRITABLE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


def host_name() -> str:
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host exists (a zombie counts as gone); from /proc where there is
    one, else by signal 0."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temp_path(target: Path, suffix: str = ".tmp") -> Path:
    """A fresh temp name beside `target` that records this host and process (nothing is created)."""
    target = Path(target)
    return target.parent / f".{target.name}~{host_name()}~{os.getpid()}~{secrets.token_hex(4)}{suffix}"


def is_stale_temp(path: Path, now: float | None = None) -> bool:
    """True for a temp file or directory (of `temp_path`'s naming) whose maker is gone: a process of
    this host that no longer exists, or any process of another host after FOREIGN_TEMP_STALE_S."""
    match = _TEMP_NAME.match(Path(path).name)
    if not match:
        return False
    if match.group("host") == host_name():
        return not process_alive(int(match.group("pid")))
    try:
        age = (time.time() if now is None else now) - os.lstat(path).st_mtime
    except FileNotFoundError:
        return False
    return age > FOREIGN_TEMP_STALE_S


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete the stale temp files and directories directly in `directory` (what a killed command left
    behind); live ones of a concurrent command stay. Returns what was removed; nothing on a directory
    that cannot be listed or written."""
    removed = []
    try:
        entries = [Path(e.path) for e in os.scandir(directory) if e.name.startswith(".")]
    except OSError:
        return removed
    for path in entries:
        if not is_stale_temp(path):
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        removed.append(path)
    return removed


def create_temp_file(target: Path, suffix: str = ".tmp") -> Path:
    """Create an empty temp file beside `target` (see `temp_path`) with mode 0666 less the umask,
    as any new file gets (not mkstemp's 0600): files of a shared campaign stay readable by others."""
    while True:
        path = temp_path(target, suffix)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` all-or-nothing: `write(tmp)` fills a temp file beside it, then fsync + rename.

    If `write` raises, the previous file at `path` (if any) is untouched and the temp file removed.
    The file gets the mode any new file gets under the process's umask (0644 under umask 022).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temp_file(path)
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


def json_safe(value: Any) -> Any:
    """`value` (nested dicts, lists, tuples) with every non-finite float as None, so JSON written from
    it is standard (no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_run_json(directory: Path, record: RunRecord) -> None:
    """Atomically (re)write `<directory>/run.json` from `record`."""
    atomic_write_bytes(Path(directory) / RUN_JSON, record.to_json().encode())


def read_run_json(directory: Path) -> RunRecord:
    """The checked `run.json` of a run directory; StoreError naming the file and the problem."""
    path = Path(directory) / RUN_JSON
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        raise StoreError(f"{path}: missing run.json") from None
    except IsADirectoryError:
        raise StoreError(f"{path}: run.json is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: run.json is not valid JSON ({exc})") from None
    except OSError as exc:
        raise StoreError(f"{path}: run.json cannot be read ({exc.strerror})") from None
    return RunRecord.from_json(text, path)


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
    try:
        return table.select(TRAJECTORY_SCHEMA.names).cast(TRAJECTORY_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise StoreError(f"{path}: trajectory columns are not of the contract's types, e.g. epoch must hold "
                         f"whole numbers ({first})") from None
