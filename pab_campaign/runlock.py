"""One writer per run directory: `RunLock(run_dir)`, a lock file its holder keeps fresh.

    with RunLock(run_dir):          # raises RunLocked naming the holder when another writer is alive
        ...                         # write run.json, trajectory.parquet, checkpoints

The lock is `<run>/run.lock`, a small JSON file (host, pid, process start, SLURM job id, token)
created with O_EXCL, so two writers can never both create it. While held, a background thread
touches it every `heartbeat_s` seconds. A lock is stale, and the next writer takes it over, when

- its holder was a process of this host that no longer exists (SIGKILL, out of memory, a crash);
- it was not touched for `stale_after_s` seconds (a holder on another host that died);
- it belongs to the same SLURM job as the new writer: a requeued job, on whatever node, takes over
  its own earlier lock at once.

A lock that cannot be read (an empty file, which a writer killed between creating and filling it
leaves; garbage; a directory, a link, a FIFO or any other non-file) is judged by what can be read of
it, never followed or opened blocking: a non-file is cleared at once (none is ever a lock), an empty
or garbage file once `UNREADABLE_GRACE_S` have passed since it was last changed (a writer fills its
lock microseconds after creating it), or at once when the pid it names is a process of this host
that has ended; the pid of a live process of this host keeps it like a held lock. What was cleared
is logged and kept in `RunLock.cleared`; a directory with files in it is moved aside, not deleted.

A holder checks before each write (`verify`) that the lock is still its own; a writer that was
suspended past `stale_after_s` and replaced learns it there and stops (`RunLockLost`), so two
writers never write the same run. The store-level module imports no torch; training's run and the
tracker of users' own loops both use it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import stat
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from pab_campaign.errors import StoreError
from pab_campaign.store import host_name, process_alive

LOCK_FILE = "run.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
BREAKER_STALE_S = 10.0
# An empty or garbage lock file older than this is no writer's lock being written.
UNREADABLE_GRACE_S = 10.0
# The most of a lock file read: a record is about 150 bytes.
MAX_LOCK_BYTES = 4096
# `"host": "name"` and `"pid": 123` in whatever part of a record a lock file holds.
_SALVAGE_HOST = re.compile(r'"host"\s*:\s*"([^"]*)"')
_SALVAGE_PID = re.compile(r'"pid"\s*:\s*(\d{1,10})')
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))

log = logging.getLogger(__name__)


class RunLocked(StoreError):
    """Another live writer holds the run's lock; the message names it, `holder` describes it."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class RunLockLost(StoreError):
    """The lock this process held was taken over (it was stale); the run must not be written."""


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (tells a reused pid apart), if known."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _slurm_job() -> str | None:
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file as JSON."""

    host: str
    pid: int
    start: str | None
    slurm_job_id: str | None
    token: str

    @classmethod
    def me(cls) -> Holder:
        pid = os.getpid()
        return cls(host_name(), pid, _process_start(pid), _slurm_job(), secrets.token_hex(8))

    def describe(self) -> str:
        job = f", SLURM job {self.slurm_job_id}" if self.slurm_job_id else ""
        return f"pid {self.pid} on {self.host}{job}"

    def gone(self) -> bool:
        """True when this holder is a process of this host that has ended (or whose pid was reused)."""
        if self.host != host_name():
            return False
        if not process_alive(self.pid):
            return True
        return self.start is not None and _process_start(self.pid) not in (None, self.start)


def _read_text(path: Path) -> str | None:
    """The first MAX_LOCK_BYTES of the regular file `path` (never through a link, never blocking);
    None when it is missing, not a regular file or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return handle.read(MAX_LOCK_BYTES).decode("utf-8", "replace")
        except OSError:
            return None


def _parse(text: str | None) -> Holder | None:
    try:
        data = json.loads(text or "")
        return Holder(str(data["host"]), int(data["pid"]), data.get("start"), data.get("slurm_job_id"),
                      str(data["token"]))
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in lock file `path`; None when it vanished or is unreadable (being written,
    or not a lock file at all)."""
    return _parse(_read_text(Path(path)))


@dataclass(frozen=True)
class LockState:
    """What a lock path is now: `kind` ('a lock', 'an empty file', 'a file that is not a lock
    record', 'a directory', ...), `age` (s since it last changed, of the path itself), `ident`
    (device, inode), the `holder` of a readable lock, and the `host` and `pid` read from an
    unreadable file where it names them."""

    kind: str
    age: float
    ident: tuple[int, int]
    holder: Holder | None = None
    host: str | None = None
    pid: int | None = None

    @property
    def regular(self) -> bool:
        return self.kind in ("a lock", "an empty file", "a file that is not a lock record")

    def owner_alive(self) -> bool:
        """Whether the pid an unreadable file names is a live process of this host."""
        return self.pid is not None and self.host in (None, host_name()) and process_alive(self.pid)

    def owner_gone(self) -> bool:
        """Whether the pid an unreadable file names is a process of this host that has ended."""
        return self.pid is not None and self.host == host_name() and not process_alive(self.pid)

    def describe(self) -> str:
        owner = f" naming pid {self.pid}" + (f" on {self.host}" if self.host else "") if self.pid is not None else ""
        return f"{self.kind}{owner}, {self.age:.0f} s old"


def inspect_lock(path: Path) -> LockState | None:
    """The state of the lock path `path` (module docstring); None when there is none."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    age, ident = time.time() - info.st_mtime, (info.st_dev, info.st_ino)
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
        return LockState(kind, age, ident)
    text = _read_text(path)
    holder = _parse(text)
    if holder is not None:
        return LockState("a lock", age, ident, holder)
    host, pid = _SALVAGE_HOST.search(text or ""), _SALVAGE_PID.search(text or "")
    return LockState("an empty file" if not text else "a file that is not a lock record", age, ident, None,
                     host.group(1) if host else None, int(pid.group(1)) if pid else None)


def _unreadable_wait(state: LockState, stale_after_s: float) -> float | None:
    """Seconds until the unreadable lock `state` may be cleared (0: now); None while a live process
    of this host it names may still hold it (it is then treated as a held lock)."""
    if not state.regular or state.owner_gone():
        return 0.0
    if state.owner_alive():
        return None if state.age <= stale_after_s else 0.0
    return max(0.0, UNREADABLE_GRACE_S - state.age)


def has_live_writer(run_dir: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a process is writing `run_dir` now: its lock file exists, its holder has not ended
    (checked on this host), and its heartbeat touched the file within `stale_after_s` seconds (an
    unreadable lock: while it may still be being written, or while a live process it names holds it)."""
    state = inspect_lock(Path(run_dir) / LOCK_FILE)
    if state is None:
        return False
    if state.holder is not None:
        return state.age <= stale_after_s and not state.holder.gone()
    return _unreadable_wait(state, stale_after_s) != 0.0


def _remove(path: Path, state: LockState) -> None:
    """Remove the lock path `path` (in `state`): unlink a file, a link or another node, remove an
    empty directory, and move a directory with files in it aside (`.run.lock.not-a-lock-<hex>`)
    rather than delete what it holds. RunLocked when it cannot be removed (permissions)."""
    try:
        if state.kind != "a directory":
            path.unlink()
            return
        try:
            path.rmdir()
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            aside = path.with_name(f".{path.name}.not-a-lock-{secrets.token_hex(4)}")
            path.rename(aside)
            log.warning("%s was a directory with files in it, not a lock: moved aside to %s", path, aside)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RunLocked(f"{path}: {state.describe()} is no live writer's lock but cannot be removed "
                        f"({exc.strerror}); remove it to run", state.describe()) from None


class RunLock:
    """The lock of one run directory (see the module docstring); a context manager."""

    def __init__(self, run_dir: Path, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.me = Holder.me()
        self.took_over: Holder | None = None
        self.cleared: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- acquiring ---------------------------------------------------------------------------
    def acquire(self) -> RunLock:
        """Take the lock, taking over a stale one (an unreadable one as the module docstring says,
        waiting at most UNREADABLE_GRACE_S); RunLocked when a live writer holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        attempts = 0
        while attempts < 100:
            if self._create():
                self._start_heartbeat()
                return self
            state = inspect_lock(self.path)
            if state is None:  # vanished: try again
                attempts += 1
                continue
            if state.holder is not None:
                if self._stale_reason(state.holder) is None:
                    who = state.holder.describe()
                    raise RunLocked(f"{self.path.parent}: another process is writing this run ({who}); "
                                    "it was left alone", who)
                self._break(state)
                self.took_over = state.holder
                attempts += 1
                continue
            wait = _unreadable_wait(state, self.stale_after_s)
            if wait is None:
                who = f"pid {state.pid} on {host_name()}"
                raise RunLocked(f"{self.path}: {state.describe()}, and that process is alive; it was left alone",
                                who)
            if wait > 0:
                time.sleep(min(wait, 0.5))
                continue
            if self._break(state):
                self.cleared = f"{self.path}: cleared an unreadable lock ({state.describe()})"
                log.warning("%s", self.cleared)
            attempts += 1
        raise RunLocked(f"{self.path}: could not take the lock (it keeps changing hands)", "several writers")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(asdict(self.me)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def _stale_reason(self, holder: Holder) -> str | None:
        if holder.token == self.me.token:
            return "our own"
        if self.me.slurm_job_id and holder.slurm_job_id == self.me.slurm_job_id:
            return "the same SLURM job (requeued)"
        if holder.gone():
            return "its process has ended"
        if self._age() > self.stale_after_s:
            return f"not refreshed for {self.stale_after_s:.0f} s"
        return None

    def _break(self, judged: LockState) -> bool:
        """Remove the lock judged stale (`judged`) unless it changed meanwhile; whether it was
        removed here. The check and the removal happen under a short-lived breaker file created with
        O_EXCL, so that a contender can never remove the fresh lock another one has just created."""
        breaker = self.path.with_name(f".{LOCK_FILE}.break")
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            self._clear_stale_breaker(breaker)
            time.sleep(0.01)
            return False
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(asdict(self.me)) + "\n")
            current = inspect_lock(self.path)
            if current is None or current.ident != judged.ident or current.holder != judged.holder:
                return False
            _remove(self.path, current)
            return True
        finally:
            breaker.unlink(missing_ok=True)

    def _clear_stale_breaker(self, breaker: Path) -> None:
        """A breaker whose process died while holding it (it holds one for microseconds), or one that
        is not a file at all, is removed."""
        state = inspect_lock(breaker)
        if state is None:
            return
        owner = state.holder
        if (owner is not None and owner.gone()) or state.age > BREAKER_STALE_S or not state.regular:
            _remove(breaker, state)

    # ---- holding -----------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"runlock {self.path.parent.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self.held():
                with contextlib.suppress(OSError):
                    os.utime(self.path)

    def held(self) -> bool:
        """Whether the lock file is still this holder's."""
        holder = read_holder(self.path)
        return holder is not None and holder.token == self.me.token

    def verify(self) -> None:
        """Before a write: RunLockLost when another writer took the lock over meanwhile."""
        if not self.held():
            holder = read_holder(self.path)
            who = holder.describe() if holder else "nobody"
            raise RunLockLost(f"{self.path.parent}: this process lost the run's lock (now held by {who}); "
                              "it stopped writing the run")

    def release(self) -> None:
        """Stop the heartbeat and delete the lock file if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
