"""The one writer of a run directory, shared by the built-in training loop (`run.py`) and the
`Tracker` of a user's own loop, so a run written by either is handled the same way:

    writer = RunWriter(directory, run_id, campaign, hparams, seed, overrides, world_size)
    if writer.open():                        # False: the run finished before; nothing is written
        writer.resume(state.epoch, state.recorded_epochs)    # after loading its checkpoint (-1: none)
        ... writer.trajectory.add(...); writer.save_trajectory(); <checkpoint>; writer.record_epoch(epoch)
        writer.finish(RunStatus.COMPLETED)   # or writer.end(exc) when the attempt raised

One policy for both loops:

- A run another live process writes is left alone (`RunLocked` from `open`, nothing touched).
- A completed or diverged run is never reopened: `open` returns False, writes nothing, holds no lock.
- An earlier `run.json` that cannot be read: when the directory holds no history yet (no
  trajectory, no checkpoint) nothing is lost by starting afresh, so a warning names the reason and
  the run starts as new. Otherwise it is refused (`RunRefused`, one line, every file kept): the
  record may say the run finished, and its start, restarts and time spent would be lost. A
  `run.json` that is not a file (a directory) is always refused: it would have to be deleted.
- The history a resume continues must be readable and hold every epoch the checkpoint recorded;
  otherwise the attempt ends `failed` with the reason and every file is kept as it is.
- `duration_s` is the earlier attempts' seconds plus this attempt's since `open` (wall clock).
- Nothing is recorded over a new owner of the lock (`RunLockLost` before each write; no end).
"""
from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Sequence
from pathlib import Path
from time import monotonic

from pab_campaign.errors import StoreError, one_line
from pab_campaign.runlock import RunLock
from pab_campaign.store import (
    RUN_JSON,
    RUN_LOG,
    STEPS,
    TRAJECTORY,
    RunRecord,
    RunStatus,
    Scalar,
    StepBuffer,
    TrajectoryBuffer,
    read_run_json,
    read_steps,
    read_trajectory,
    remove_stale_temps,
    write_run_json,
    write_steps,
    write_trajectory,
)
from pab_campaign.training import checkpoint, provenance

log = logging.getLogger(__name__)

NOT_RESUMED = ("the run was not resumed over it (every file kept); restore the file, or move the run directory "
               "aside to train the run from scratch")
NOT_REOPENED = ("the run was not reopened (every file kept); restore run.json, or move the run directory aside to "
                "train the run from scratch")
# Exceptions that interrupt an attempt rather than fail it: the run resumes when launched again.
INTERRUPTIONS = (KeyboardInterrupt, SystemExit)


class RunRefused(StoreError):
    """The run cannot be reopened without losing what its directory holds; nothing was written.
    `note`: the few words the sweep's status table shows for it."""

    def __init__(self, message: str, note: str) -> None:
        super().__init__(message)
        self.note = note


class RunWriter:
    """One attempt at writing the run in `directory` (see the module docstring). `hparams` are the
    flat dotted hyper-parameters the run id hashes, `overrides` the command line's (recorded),
    `world_size` the ranks training this attempt (recorded; only rank 0 writes)."""

    def __init__(self, directory: Path, run_id: str, campaign: str, hparams: dict[str, Scalar], seed: int | None,
                 overrides: Sequence[str] = (), world_size: int = 1, code_dir: Path | None = None) -> None:
        self.directory = Path(directory)
        self.code_dir = code_dir
        self.run_id, self.campaign, self.hparams, self.seed = run_id, campaign, hparams, seed
        self.overrides, self.world_size = list(overrides), world_size
        self.lock = RunLock(self.directory)
        self.previous: RunRecord | None = None
        self.record: RunRecord | None = None
        self.trajectory = TrajectoryBuffer()
        self.steps = StepBuffer()
        self._steps_saved = 0
        self._base_s = self._started = 0.0
        self._writing = False

    @property
    def writing(self) -> bool:
        """Whether this attempt holds the run and has not ended yet."""
        return self._writing

    # ---- opening -------------------------------------------------------------------------------
    def open(self) -> bool:
        """Claim the run: take its lock (RunLocked when another live process writes it), read the
        earlier attempt's record (RunRefused when it is unreadable and history would be lost), clear
        temp files a killed writer left, write this attempt's start record and read the trajectory.
        False, with nothing written and no lock held, when the run finished before (`record` is that
        one's). An unreadable trajectory ends the attempt `failed` and raises StoreError."""
        for folder in (self.directory.parent, self.directory):
            if os.path.lexists(folder) and not folder.is_dir():  # Hydra would show mkdir's 'File exists'
                raise RunRefused(f"{folder} is not a directory (a file or a link) where this run's folder belongs; "
                                 "move it aside and launch again", "no folder of its own can be made; every file kept")
        self.previous = self._peek()
        if self.previous is not None and self.previous.status.finished:
            return self._keep_finished()
        self.lock.acquire()
        try:
            if self.lock.took_over is not None:
                log.warning("run %s: took over the stale lock of %s", self.run_id, self.lock.took_over.describe())
            self.previous = self._earlier_record()
            if self.previous is not None and self.previous.status.finished:
                self.lock.release()
                return self._keep_finished()
            for folder in (self.directory, checkpoint.checkpoint_dir(self.directory)):
                remove_stale_temps(folder)
            self.record = provenance.start_record(self.run_id, self.campaign, self.hparams, self.seed,
                                                  self.overrides, self.previous, self.world_size, self.code_dir)
            write_run_json(self.directory, self.record)
        except BaseException:
            self.lock.release()
            raise
        self._base_s, self._started, self._writing = self.record.duration_s or 0.0, monotonic(), True
        try:
            self.trajectory = self._history()
            self.steps = self._step_history()
        except StoreError as exc:
            self.end(exc)
            raise
        return True

    def _peek(self) -> RunRecord | None:
        """The earlier record read without the lock (None when missing or unreadable: `open` decides
        under the lock), so a finished run is skipped without touching its directory."""
        try:
            return read_run_json(self.directory) if (self.directory / RUN_JSON).exists() else None
        except StoreError:
            return None

    def _earlier_record(self) -> RunRecord | None:
        """Under the lock: the earlier attempt's record, None for a new run (see the module docstring)."""
        path = self.directory / RUN_JSON
        if not path.exists():
            return None
        try:
            return read_run_json(self.directory)
        except StoreError as exc:
            if path.is_file() and not self._has_history():
                log.warning("run %s: %s; nothing was trained yet, so the run starts afresh", self.run_id,
                            one_line(exc))
                return None
            raise RunRefused(f"{one_line(exc)}; {NOT_REOPENED}",
                             "its run.json cannot be read; every file kept") from None

    def _has_history(self) -> bool:
        """Whether an earlier attempt left a trajectory or a checkpoint."""
        return (self.directory / TRAJECTORY).exists() or any(checkpoint.checkpoint_dir(self.directory).glob("*.pt"))

    def _keep_finished(self) -> bool:
        assert self.previous is not None
        self.record = self.previous
        log.info("run %s already %s after epoch %d; kept as it is (%s)", self.run_id, self.record.status,
                 self.record.epochs_done, self.directory)
        return False

    def _history(self) -> TrajectoryBuffer:
        """The trajectory an earlier attempt left (empty when none); StoreError when unreadable."""
        if not (self.directory / TRAJECTORY).exists():
            return TrajectoryBuffer()
        try:
            return TrajectoryBuffer.from_table(read_trajectory(self.directory))
        except StoreError as exc:
            raise StoreError(f"{one_line(exc)}; {NOT_RESUMED}") from None

    def _step_history(self) -> StepBuffer:
        """The values an earlier attempt logged per step (empty when none); StoreError when unreadable."""
        if not (self.directory / STEPS).exists():
            return StepBuffer()
        try:
            steps = StepBuffer.from_table(read_steps(self.directory))
        except StoreError as exc:
            raise StoreError(f"{one_line(exc)}; {NOT_RESUMED}") from None
        self._steps_saved = len(steps)
        return steps

    # ---- writing -------------------------------------------------------------------------------
    def resume(self, epoch: int, recorded: Sequence[int] | None = None) -> None:
        """Continue after the checkpoint of `epoch` (-1: none). The trajectory must hold every epoch
        that checkpoint `recorded` (0..`epoch` when it does not say), or StoreError and nothing is
        rewritten; rows of later epochs are dropped (measured again) and the trajectory rewritten."""
        expected = range(epoch + 1) if recorded is None else [e for e in recorded if e <= epoch]
        missing = sorted(set(expected) - set(self.trajectory.epoch))
        if missing:
            raise StoreError(f"{self.directory / TRAJECTORY} lacks epochs {missing[:5]}"
                             f"{'...' if len(missing) > 5 else ''} that the checkpoint of epoch {epoch} follows; "
                             f"{NOT_RESUMED}")
        if any(e > epoch for e in self.trajectory.epoch):
            self.trajectory.truncate_after(epoch)
            self.save_trajectory()
        if any(row[1] is not None and row[1] > epoch for row in self.steps.rows):
            self.steps.truncate_after(epoch)
            self._steps_saved = -1
            self.save_steps()

    def recorded_epochs(self) -> list[int]:
        """The epochs the trajectory holds, ascending (what a checkpoint saved now records)."""
        return sorted(set(self.trajectory.epoch))

    def save_trajectory(self) -> None:
        """Rewrite `trajectory.parquet` atomically with every row so far; RunLockLost if the lock was lost."""
        self.lock.verify()
        write_trajectory(self.directory, self.trajectory.to_table())

    def save_steps(self) -> None:
        """Rewrite `steps.parquet` when values were logged per step since it was last written."""
        if len(self.steps) == self._steps_saved:
            return
        self.lock.verify()
        write_steps(self.directory, self.steps.to_table())
        self._steps_saved = len(self.steps)

    def record_epoch(self, epoch: int) -> None:
        """Rewrite `run.json` with `epoch` done and the time spent; RunLockLost if the lock was lost."""
        assert self.record is not None
        self.lock.verify()
        self.record.epochs_done, self.record.duration_s = epoch, self._elapsed_s()
        write_run_json(self.directory, self.record)

    def _elapsed_s(self) -> float:
        return self._base_s + monotonic() - self._started

    # ---- ending --------------------------------------------------------------------------------
    def finish(self, status: RunStatus, error: str | None = None) -> None:
        """End the attempt: record `status` (and `error`, one line), unless another writer took the
        lock over (then it owns the run), and release the lock. Only the first end counts."""
        if not self._writing:
            return
        self._writing = False
        try:
            if self.lock.held():
                assert self.record is not None
                try:
                    self.save_steps()
                finally:  # the status is recorded even where the steps could not be
                    self.record.status, self.record.error = RunStatus(status), error
                    self.record.ended_at, self.record.duration_s = provenance.now(), self._elapsed_s()
                    write_run_json(self.directory, self.record)
            else:
                log.error("run %s: lost its lock to another writer; %s not recorded", self.run_id, status)
        finally:
            self.lock.release()

    def end(self, exc: BaseException) -> RunStatus:
        """End the attempt after `exc`: `preempted` for an interruption (Ctrl-C, SystemExit), else
        `failed` with its last line in run.json and its traceback appended to `run.log`. Returns the
        status recorded."""
        if isinstance(exc, INTERRUPTIONS):
            self.finish(RunStatus.PREEMPTED)
            return RunStatus.PREEMPTED
        error = f"{type(exc).__name__}: {one_line(exc)}"
        if self._writing and self.lock.held():
            log.error("run %s failed: %s (traceback in %s)", self.run_id, error, self.directory / RUN_LOG)
            self._log_traceback(exc)
        self.finish(RunStatus.FAILED, error)
        return RunStatus.FAILED

    def _log_traceback(self, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        try:
            with open(self.directory / RUN_LOG, "a") as handle:
                handle.write(f"--- {provenance.now()} run {self.run_id} failed\n{text}")
        except OSError as error:
            log.error("run %s: could not write %s (%s)", self.run_id, self.directory / RUN_LOG, error)
