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

A holder checks before each write (`verify`) that the lock is still its own; a writer that was
suspended past `stale_after_s` and replaced learns it there and stops (`RunLockLost`), so two
writers never write the same run. The store-level module imports no torch; training's run and the
tracker of users' own loops both use it.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
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


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in lock file `path`; None when it vanished or is unreadable (being written)."""
    try:
        data = json.loads(Path(path).read_text())
        return Holder(str(data["host"]), int(data["pid"]), data.get("start"), data.get("slurm_job_id"),
                      str(data["token"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def has_live_writer(run_dir: Path, stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether a process is writing `run_dir` now: its lock file exists, its holder has not ended
    (checked on this host), and its heartbeat touched the file within `stale_after_s` seconds."""
    path = Path(run_dir) / LOCK_FILE
    holder = read_holder(path)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age <= stale_after_s and (holder is None or not holder.gone())


class RunLock:
    """The lock of one run directory (see the module docstring); a context manager."""

    def __init__(self, run_dir: Path, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.me = Holder.me()
        self.took_over: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- acquiring ---------------------------------------------------------------------------
    def acquire(self) -> RunLock:
        """Take the lock, taking over a stale one; RunLocked when a live writer holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            if self._create():
                self._start_heartbeat()
                return self
            holder = read_holder(self.path)
            if holder is None:
                if self.path.exists() and self._age() > self.stale_after_s:
                    self._break(None)
                else:
                    time.sleep(0.05)  # vanished, or being created right now: look again
                continue
            reason = self._stale_reason(holder)
            if reason is None:
                raise RunLocked(f"{self.path.parent}: another process is writing this run ({holder.describe()}); "
                                "it was left alone", holder.describe())
            self._break(holder)
            self.took_over = holder
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

    def _break(self, holder: Holder | None) -> None:
        """Delete the lock judged stale (`holder`; None: unreadable) unless it changed meanwhile. The
        check and the deletion happen under a short-lived breaker file created with O_EXCL, so that a
        contender can never delete the fresh lock another one has just created."""
        breaker = self.path.with_name(f".{LOCK_FILE}.break")
        try:
            fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            self._clear_stale_breaker(breaker)
            time.sleep(0.01)
            return
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(asdict(self.me)) + "\n")
            current = read_holder(self.path)
            if (current.token if current else None) == (holder.token if holder else None):
                self.path.unlink(missing_ok=True)
        finally:
            breaker.unlink(missing_ok=True)

    def _clear_stale_breaker(self, breaker: Path) -> None:
        """A breaker whose process died while holding it (it holds one for microseconds) is removed."""
        owner = read_holder(breaker)
        try:
            age = time.time() - breaker.stat().st_mtime
        except FileNotFoundError:
            return
        if (owner is not None and owner.gone()) or age > BREAKER_STALE_S:
            breaker.unlink(missing_ok=True)

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
