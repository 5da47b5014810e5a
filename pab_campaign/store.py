"""The data contract: campaign layout, `run.json`, `trajectory.parquet`, atomic writes.

Training writes through this module and analysis reads through it; it imports neither torch nor
any analysis code, so both sides can depend on it alone.
"""
from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pab_campaign.errors import StoreError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

RUNS_DIR = "runs"
SUMMARY_DIR = "summary"
RUN_JSON = "run.json"
TRAJECTORY = "trajectory.parquet"
# Values recorded per training step (a user's `tracker.log(step=...)`, an import's steps), beside the
# per-epoch trajectory, which every analysis reads.
STEPS = "steps.parquet"
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
    # The user's code: {repo, commit, dirty, diff_sha256} of the git repository the run came from
    # (`git_commit` is its commit); null outside git.
    code: dict[str, str | bool | None] | None = None

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
        except RecursionError:
            raise StoreError(f"{source}: run.json nests arrays or objects too deeply to be read") from None
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


def is_int64(value: Any) -> bool:
    """Whether `value` is a whole number (not a bool) that a 64-bit integer holds: run.json's counts
    must be; the index keeps a hyper-parameter's whole number past that range (a 128-bit seed) as
    text, its exact digits."""
    return _is_int(value) and -(2**63) <= value < 2**63


def _is_float(value: Any) -> bool:
    """A number within the float range (a whole number past it cannot be read as one)."""
    if not _is_number(value):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


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
    "duration_s": (_optional(_is_float), "a number within the float range, or null"),
    "epochs_done": (is_int64, "an integer of at most 64 bits"),
    "restarts": (is_int64, "an integer of at most 64 bits"),
    "host": _TEXT,
    "slurm_job_id": _TEXT,
    "git_commit": _TEXT,
    "versions": (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()), "an object of strings"),
    "error": _TEXT,
    "world_sizes": (lambda v: isinstance(v, list) and all(_is_int(x) and x >= 1 for x in v),
                    "a list of positive integers"),
    "code": (_optional(lambda v: isinstance(v, dict) and all(isinstance(x, (str, bool)) or x is None
                                                             for x in v.values())),
             "an object of strings and booleans, or null"),
}
RUN_FIELDS = tuple(f.name for f in fields(RunRecord))

# The largest epoch and step the run files hold (their Parquet columns are int32 and int64).
MAX_EPOCH = 2**31 - 1
MAX_STEP = 2**63 - 1

# The schemas of `trajectory.parquet` and `steps.parquet` (`TRAJECTORY_SCHEMA`, `STEPS_SCHEMA`), built
# on first use so that a command that never touches Arrow does not import it (module `__getattr__`).
# `steps.parquet`: one row per value recorded at a training step; `epoch` is the epoch the step falls
# in (null when unknown), `wall_time` Unix seconds when the value was recorded (null when unknown).
@functools.cache
def _schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    text = pa.dictionary(pa.int32(), pa.string())
    trajectory = pa.schema([
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("context", text, nullable=False),
        pa.field("metric", text, nullable=False),
        pa.field("key", text, nullable=True),
        pa.field("value", pa.float64(), nullable=True),
    ])
    steps = pa.schema([
        pa.field("step", pa.int64(), nullable=False),
        pa.field("epoch", pa.int32(), nullable=True),
        pa.field("wall_time", pa.float64(), nullable=True),
        pa.field("context", text, nullable=False),
        pa.field("metric", text, nullable=False),
        pa.field("key", text, nullable=True),
        pa.field("value", pa.float64(), nullable=True),
    ])
    return {"TRAJECTORY_SCHEMA": trajectory, "STEPS_SCHEMA": steps}


def __getattr__(name: str) -> pa.Schema:
    if name in ("TRAJECTORY_SCHEMA", "STEPS_SCHEMA"):
        return _schemas()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def runs_dir(campaign_dir: Path) -> Path:
    return Path(campaign_dir) / RUNS_DIR


def run_dir(campaign_dir: Path, run_id: str) -> Path:
    return runs_dir(campaign_dir) / run_id


def summary_dir(campaign_dir: Path) -> Path:
    return Path(campaign_dir) / SUMMARY_DIR


def is_campaign(path: Path) -> bool:
    """True when `path` is a directory laid out as a campaign (it has a `runs/` directory)."""
    return runs_dir(path).is_dir()


def campaign_owning(path: Path) -> Path | None:
    """The campaign whose `runs/` holds `path` (a file or folder, existing or not; links resolved),
    None when none does: everything there belongs to the runs and their writers, so no command's
    output may be written there (it would replace a run.json or a trajectory)."""
    folder = Path(os.path.realpath(Path(path).parent))
    for ancestor in (Path(os.path.realpath(path)), folder, *folder.parents):
        if ancestor.name == RUNS_DIR and is_campaign(ancestor.parent):
            return ancestor.parent
    return None


def is_foreign_directory(path: Path) -> bool:
    """True when `path` is a directory holding entries, and no campaign: no place to start or merge a
    campaign in. Its entries are listed before `runs/` is looked for: a process beside this one may
    make `runs/` between the two looks, and in this order its new campaign is never taken for a
    stranger's folder."""
    return path.is_dir() and any(path.iterdir()) and not is_campaign(path)


def run_entry_names(campaign_dir: Path) -> list[str]:
    """The names in a campaign's `runs/` that are or were meant to be runs, sorted: every directory,
    and every symbolic link that cannot be followed (dangling, a loop), so that readers can set it
    aside with its reason. Names starting with '.' (temp files) and plain files are not runs."""
    return [name for name, _ in run_entries(campaign_dir)]


def run_entries(campaign_dir: Path) -> list[tuple[str, bool]]:
    """(name, whether it is a directory itself rather than a link) of `run_entry_names`, sorted; the
    second part comes from the listing of `runs/`, without a system call per entry."""
    root = runs_dir(campaign_dir)
    if not root.is_dir():
        return []
    entries = []
    with os.scandir(root) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir or (entry.is_symlink() and not os.path.exists(entry.path)):
                entries.append((entry.name, is_dir and not entry.is_symlink()))
    return sorted(entries)


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
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)~(?P<host>[^~]+)~(?P<pid>\d+)~(?P<token>[0-9a-f]+)(?P<suffix>\.\w+)?\Z")
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
    behind); live ones of a concurrent command stay. A stale backup of `swap_in` (suffix `.old`)
    whose folder is missing is put back instead: the command was killed between its two renames.
    Returns what was removed or restored; nothing on a directory that cannot be listed or written."""
    removed: list[Path] = []
    try:
        entries = [Path(e.path) for e in os.scandir(directory) if e.name.startswith(".")]
    except OSError:
        return removed
    for path in entries:
        if not is_stale_temp(path):
            continue
        try:
            if _restore_backup(path):
                pass
            elif path.is_dir() and not path.is_symlink():
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


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
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


# ---- replacing a folder's outputs ------------------------------------------------------------
# Temp folders of `replace_outputs`: the new outputs being written, and the old folder during a swap.
STAGING_SUFFIX = ".new"
BACKUP_SUFFIX = ".old"
# renameat2's flag that exchanges two paths atomically (Linux).
_RENAME_EXCHANGE = 2


def _restore_backup(path: Path) -> bool:
    """Put a stale `swap_in` backup back in its folder's place when that folder is missing; True if done."""
    match = _TEMP_NAME.match(path.name)
    if not match or match.group("suffix") != BACKUP_SUFFIX or not path.is_dir():
        return False
    target = path.with_name(match.group("target"))
    if os.path.lexists(target):
        return False
    os.rename(path, target)
    return True


def stage_dir(folder: Path) -> Path:
    """A new empty folder beside `folder`, named as a temp of this process (`temp_path`, suffix
    `.new`), so that a later command's `remove_stale_temps` deletes it when this process is gone."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    while True:
        staging = temp_path(folder, STAGING_SUFFIX)
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` in one atomic step (Linux renameat2); False where that is not supported."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_cwd = -100
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_in(staging: Path, folder: Path, exchange: bool = True) -> None:
    """Put the folder `staging` in the place of `folder` (created when missing) so that the old
    result is never lost: where the system can, the two are exchanged atomically and the old one
    (now under the staging name) removed; else the old folder is renamed to a backup temp (suffix
    `.old`), `staging` to `folder`, and the backup removed. A command killed between those two
    renames leaves the backup, which the next `remove_stale_temps` puts back."""
    if os.path.lexists(folder) and exchange and _exchange(staging, folder):
        _fsync_dir(folder.parent)
        shutil.rmtree(staging, ignore_errors=True)
        return
    target = temp_path(folder, BACKUP_SUFFIX)
    backup: Path | None = target
    try:
        os.rename(folder, target)
    except FileNotFoundError:
        backup = None
    try:
        os.rename(staging, folder)
    except BaseException:
        if backup is not None and not os.path.lexists(folder):
            os.rename(backup, folder)
        raise
    _fsync_dir(folder.parent)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def replace_outputs(folder: Path, fill: Callable[[Path], list[Path]],
                    ours: Callable[[str], bool] | None = None) -> list[Path]:
    """Make `folder` hold what `fill(staging)` writes into a staging folder, so that the files of an
    earlier call never linger and a failure of `fill` changes nothing. Returns the written paths,
    under `folder`.

    With `ours` None the folder is wholly this command's: the staging folder is swapped in for it
    (`swap_in`). Otherwise the folder holds other files too (a user's, a cache): each new file is
    renamed into it (atomic per file), then the files `ours(name)` claims that this call did not
    write are deleted, and everything else stays. Stale temps of a killed earlier call are cleaned
    up first (`remove_stale_temps`)."""
    folder = Path(folder)
    if ours is None:
        remove_stale_temps(folder.parent)
        staging = stage_dir(folder)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(folder)
        staging = stage_dir(folder / "outputs")
    try:
        written = [folder / Path(path).relative_to(staging) for path in fill(staging)]
        if ours is None:
            swap_in(staging, folder)
        else:
            for path in written:
                os.replace(staging / path.relative_to(folder), path)
            for entry in os.scandir(folder):
                if ours(entry.name) and entry.is_file(follow_symlinks=False) and Path(entry.path) not in written:
                    os.unlink(entry.path)
            _fsync_dir(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written


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


# ---- reading a run's files (a campaign may come from someone else) ------------------------------
# The largest run.json read (a run's record is a few kB; a larger one is not a record).
MAX_RUN_JSON_BYTES = 1 << 20
# The most rows a trajectory or steps file may declare (1,000 epochs of 10,000 values each): a run
# file past it is set aside before it is read.
MAX_RUN_FILE_ROWS = 10_000_000
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def run_boundary(directory: Path) -> Path:
    """The directory a run's files must lie in, links resolved: its campaign (the folder above
    `runs/`), or the run directory itself when it is not inside a campaign's `runs/`."""
    directory = Path(directory)
    return directory.parent.parent if directory.parent.name == RUNS_DIR else directory


def _kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


@functools.lru_cache(maxsize=64)
def _resolved(boundary: str) -> str:
    return os.path.realpath(boundary)


def _inside(path: Path, boundary: Path) -> bool:
    """Whether `path`, links resolved, lies in `boundary`: at once when it is below `boundary` with
    no link on the way (a few lstat calls), else by resolving both."""
    base, text = os.fspath(boundary).rstrip("/") or "/", os.fspath(path)
    parts = text[len(base):].split("/") if text.startswith(base + "/") else [".."]
    if ".." not in parts:
        current = base
        try:
            for part in parts[1:]:
                current = f"{current}/{part}"
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    break
            else:
                return True
        except OSError:
            pass
    root = _resolved(str(boundary))
    return os.path.commonpath([os.path.realpath(path), root]) == root


def _check(path: Path, info: os.stat_result, limit: int | None) -> None:
    name = path.name
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path}: {name} is {_kind(info.st_mode)}, not a regular file; only regular files are read")
    if limit is not None and info.st_size > limit:
        raise StoreError(f"{path}: {name} is {info.st_size} bytes, more than the {limit} a run's {name} may have")


def check_run_file(path: Path, boundary: Path, limit: int | None = None) -> os.stat_result:
    """`os.stat` of the run file `path` when it may be read: its links resolve inside `boundary`
    (`run_boundary`), and it is a regular file (no FIFO, device or directory) of at most `limit`
    bytes. FileNotFoundError when it is missing; StoreError naming the file and the problem otherwise."""
    path = Path(path)
    if not _inside(path, boundary):
        raise StoreError(f"{path}: leads outside {boundary} (to {os.path.realpath(path)}); links out of a campaign "
                         "are not followed")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: {path.name} cannot be read ({exc.strerror})") from None
    _check(path, info, limit)
    return info


def _open_checked(path: Path, boundary: Path, limit: int | None) -> int:
    """A read-only descriptor of the run file `path`, checked by `check_run_file` before it is
    opened (no device is ever opened) and on the open file (opened without blocking, so a FIFO
    swapped in between cannot hang the reader)."""
    check_run_file(path, boundary, limit)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: {path.name} cannot be read ({exc.strerror})") from None
    try:
        _check(path, os.fstat(fd), limit)
    except StoreError:
        os.close(fd)
        raise
    return fd


def read_run_file(path: Path, boundary: Path, limit: int) -> bytes:
    """The bytes of the run file `path` under `check_run_file`'s rules (at most `limit` of them)."""
    path = Path(path)
    fd = _open_checked(path, boundary, limit)
    with os.fdopen(fd, "rb") as handle:
        try:
            # as many bytes as the file has, plus one to see it grow (a read of `limit` + 1 bytes
            # allocates that much: 1 MiB per run.json, a second at 50,000 runs)
            size = os.fstat(fd).st_size
            data = handle.read(size + 1)
            if len(data) > size:  # it grew since it was checked: read on up to the limit
                data += handle.read(max(limit + 1 - len(data), 0))
        except OSError as exc:
            raise StoreError(f"{path}: {path.name} cannot be read ({exc.strerror})") from None
    if len(data) > limit:
        raise StoreError(f"{path}: {path.name} grew past {limit} bytes while being read")
    return data


def read_run_json(directory: Path, boundary: Path | None = None) -> RunRecord:
    """The checked `run.json` of a run directory (a regular file of at most MAX_RUN_JSON_BYTES inside
    `boundary`, default `run_boundary(directory)`); StoreError naming the file and the problem."""
    directory = Path(directory)
    path = directory / RUN_JSON
    try:
        data = read_run_file(path, boundary or run_boundary(directory), MAX_RUN_JSON_BYTES)
    except FileNotFoundError:
        raise StoreError(f"{path}: missing run.json") from None
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: run.json is not valid JSON ({exc})") from None
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
        import pyarrow as pa

        return pa.table({
            "epoch": pa.array(self.epoch, pa.int32()),
            "context": pa.array(self.context, pa.string()).dictionary_encode(),
            "metric": pa.array(self.metric, pa.string()).dictionary_encode(),
            "key": pa.array(self.key, pa.string()).dictionary_encode(),
            "value": pa.array(self.value, pa.float64()),
        }).cast(_schemas()["TRAJECTORY_SCHEMA"])

    @classmethod
    def from_table(cls, table: pa.Table) -> TrajectoryBuffer:
        buffer = cls()
        columns = table.cast(_schemas()["TRAJECTORY_SCHEMA"]).to_pydict()
        buffer.epoch = [int(e) for e in columns["epoch"]]
        buffer.context = list(columns["context"])
        buffer.metric = list(columns["metric"])
        buffer.key = list(columns["key"])
        buffer.value = [math.nan if v is None else float(v) for v in columns["value"]]
        return buffer


def write_trajectory(directory: Path, table: pa.Table) -> None:
    """Atomically (re)write `<directory>/trajectory.parquet` with all rows so far."""
    import pyarrow.parquet as pq

    table = table.cast(_schemas()["TRAJECTORY_SCHEMA"])
    atomic_write(Path(directory) / TRAJECTORY, lambda tmp: pq.write_table(table, tmp))


def read_trajectory(directory: Path, boundary: Path | None = None) -> pa.Table:
    """Read a run's trajectory (a regular file inside `boundary`, default `run_boundary(directory)`),
    checked against TRAJECTORY_SCHEMA."""
    return _read_run_table(Path(directory), TRAJECTORY, "TRAJECTORY_SCHEMA", boundary, "missing trajectory.parquet",
                           "trajectory", ", e.g. epoch must hold whole numbers")


def _read_run_table(directory: Path, name: str, schema: str, boundary: Path | None, missing_text: str, what: str,
                    hint: str = "") -> pa.Table:
    """The run file `name` of `directory` (a regular file inside `boundary`, default
    `run_boundary(directory)`, of at most MAX_RUN_FILE_ROWS rows), as the contract's `schema`;
    StoreError naming the file and the problem (`missing_text` where it is missing)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = directory / name
    try:
        fd = _open_checked(path, boundary or run_boundary(directory), None)
    except FileNotFoundError:
        raise StoreError(f"{path}: {missing_text}") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            # ParquetFile reads in this thread. read_table's dataset scanner can drop its last
            # reference to this Python file on one of Arrow's threads after returning; at
            # interpreter exit that thread then aborts the process (std::terminate).
            table = _read_bounded(pq.ParquetFile(handle), path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(f"{path}: unreadable Parquet ({exc})") from None
    target = _schemas()[schema]
    missing = set(target.names) - set(table.column_names)
    if missing:
        raise StoreError(f"{path}: {what} lacks columns {sorted(missing)}")
    try:
        return table.select(target.names).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise StoreError(f"{path}: {what} columns are not of the contract's types{hint} ({first})") from None


class StepBuffer:
    """Rows of one run's `steps.parquet` held in memory: (step, epoch, wall_time, context, metric, key,
    value); `epoch` and `wall_time` (Unix seconds) may be None."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int | None, float | None, str, str, str | None, float]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, step: int, epoch: int | None, wall_time: float | None, context: str, metric: str, value: float,
            key: str | None = None) -> None:
        self.rows.append((int(step), None if epoch is None else int(epoch),
                          None if wall_time is None else float(wall_time), context, metric,
                          None if key is None else str(key), float(value)))

    def truncate_after(self, epoch: int) -> None:
        """Drop every row of an epoch later than `epoch` (rows of no known epoch stay)."""
        self.rows = [row for row in self.rows if row[1] is None or row[1] <= epoch]

    def to_table(self) -> pa.Table:
        import pyarrow as pa

        arrays: dict[str, list[Any]] = {name: [row[i] for row in self.rows]
                                        for i, name in enumerate(_schemas()["STEPS_SCHEMA"].names)}
        return pa.table({
            "step": pa.array(arrays["step"], pa.int64()),
            "epoch": pa.array(arrays["epoch"], pa.int32()),
            "wall_time": pa.array(arrays["wall_time"], pa.float64()),
            "context": pa.array(arrays["context"], pa.string()).dictionary_encode(),
            "metric": pa.array(arrays["metric"], pa.string()).dictionary_encode(),
            "key": pa.array(arrays["key"], pa.string()).dictionary_encode(),
            "value": pa.array(arrays["value"], pa.float64()),
        }).cast(_schemas()["STEPS_SCHEMA"])

    @classmethod
    def from_table(cls, table: pa.Table) -> StepBuffer:
        buffer = cls()
        columns = table.cast(_schemas()["STEPS_SCHEMA"]).to_pydict()
        buffer.rows = [(s, e, w, c, m, k, math.nan if v is None else float(v))
                       for s, e, w, c, m, k, v in zip(*(columns[name] for name in _schemas()["STEPS_SCHEMA"].names))]
        return buffer


def write_steps(directory: Path, table: pa.Table) -> None:
    """Atomically (re)write `<directory>/steps.parquet` with all step rows so far."""
    import pyarrow.parquet as pq

    table = table.cast(_schemas()["STEPS_SCHEMA"])
    atomic_write(Path(directory) / STEPS, lambda tmp: pq.write_table(table, tmp))


def _read_bounded(parquet: pq.ParquetFile, path: Path) -> pa.Table:
    """The rows of an open run file, when its footer declares at most MAX_RUN_FILE_ROWS of them: a
    few kB of Parquet can declare hundreds of millions of equal rows, tens of GB once read."""
    rows = parquet.metadata.num_rows
    if rows > MAX_RUN_FILE_ROWS:
        raise StoreError(too_many_rows(path, rows))
    return parquet.read()


def too_many_rows(path: Path | str, rows: int) -> str:
    """Why the run file `path`, whose footer declares `rows` rows (past MAX_RUN_FILE_ROWS), is not read."""
    return (f"{path}: {rows:,} rows, more than the {MAX_RUN_FILE_ROWS:,} a run file may hold; record fewer values "
            "per epoch (e.g. fewer keys) or split the run")


def read_steps(directory: Path, boundary: Path | None = None) -> pa.Table:
    """Read a run's `steps.parquet` (a regular file inside `boundary`, default `run_boundary(directory)`),
    checked against STEPS_SCHEMA; StoreError naming the problem."""
    return _read_run_table(Path(directory), STEPS, "STEPS_SCHEMA", boundary,
                           "missing steps.parquet (the run recorded no values per step)", "steps")
