"""Coalesce campaigns: copy run directories from sources into a destination campaign.

Never deletes, and overwrites only a run that had not ended: each run is copied into a temp directory
inside the destination and renamed into place (see `copying`), so an interrupted merge leaves no half
run (a leftover `.merge-*` temp directory is ignored by every reader and removed by the next command
on the campaign). One merge into a destination at a time: a second waits for the destination's lock.

A source run whose run_id the destination already has is compared with it. A run that ended
(completed, diverged) beats one that had not; between runs that had not, the one with more epochs
done wins, and the destination's copy is updated in one atomic step unless a live process is
writing it. Equal standing with the same results (trajectory values, not bytes) is skipped, so
merging again adds nothing; different results (a re-run on another machine, a GPU replica) are a
conflict, and both are kept: the incoming run under `<run_id>~<campaign>@<host>`, the campaign and
host its run.json names (`-2`, `-3`, ... when that is taken too). A source run a live process is
writing is copied only with `include_running`.

A campaign is untrusted input: a run entry that is a link, a run without a regular run.json, or a
run whose files are special files (a FIFO) is skipped with its reason; inside a run, links out of it
and special files are left out (`copying`). A destination inside a source, or a source inside the
destination, is refused. The destination's index is rebuilt by the next analysis command.
"""
from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pab_campaign import confined
from pab_campaign.analysis.campaign.copying import install
from pab_campaign.analysis.campaign.naming import file_stem
from pab_campaign.errors import CampaignError, StoreError
from pab_campaign.runlock import has_live_writer
from pab_campaign.store import (
    RUN_JSON,
    TRAJECTORY,
    RunRecord,
    is_campaign,
    is_foreign_directory,
    read_run_json,
    read_trajectory,
    remove_stale_temps,
    run_entry_names,
    runs_dir,
)

# The destination's merge lock, in its runs/ (a name starting with '.' is no run for any reader).
MERGE_LOCK = ".merge.lock"
# The longest file name (bytes) of the file systems a campaign lives on.
NAME_MAX = 255
TRAJECTORY_KEY = ["epoch", "context", "metric", "key"]


@dataclass
class MergeResult:
    """Run ids added to the destination; (run_id, source, reason) of those skipped; (run_id, source,
    kept_as) of the conflicts: runs whose id the destination has with other contents, kept under the
    id `kept_as`; (run_id, source, why) of the destination's runs updated from a source; (run_id,
    source) of the runs copied (under that id) while a live process was writing them; and
    (run_id, source, what) of the files of copied runs that were left out (links out, FIFOs)."""

    added: list[tuple[str, Path]] = field(default_factory=list)
    skipped: list[tuple[str, Path, str]] = field(default_factory=list)
    conflicts: list[tuple[str, Path, str]] = field(default_factory=list)
    updated: list[tuple[str, Path, str]] = field(default_factory=list)
    running: list[tuple[str, Path]] = field(default_factory=list)
    left_out: list[tuple[str, Path, str]] = field(default_factory=list)


def check_destination(dst: Path, named: str | None = None) -> None:
    """A destination must be missing, empty, or a campaign; anything else is refused. `named`: how
    the message names it (default `--dst <dst>`)."""
    named = named or f"--dst {dst}"
    if dst.exists() and not dst.is_dir():
        raise CampaignError(f"{named} is a file; name a new directory or an existing campaign")
    if is_foreign_directory(dst):
        raise CampaignError(f"{named} exists and is not a campaign (no runs/ directory); "
                            "name a new directory or an existing campaign, nothing was copied")


def check_not_nested(sources: list[Path], dst: Path) -> None:
    """Refuse a destination inside a source (it would copy itself into itself) and a source inside
    the destination; the same directory as source and destination is allowed (its runs are there)."""
    target = dst.resolve()
    for source in sources:
        origin = source.resolve()
        if target != origin and target.is_relative_to(origin):
            raise CampaignError(f"--dst {dst} is inside --src {source}; choose a destination outside every source, "
                                "nothing was copied")
        if target != origin and origin.is_relative_to(target):
            raise CampaignError(f"--src {source} is inside --dst {dst}; choose a destination outside every source, "
                                "nothing was copied")


def check_source(source: Path) -> None:
    """A source must be a campaign whose runs/ does not lead out of it."""
    if not is_campaign(source):
        raise CampaignError(f"--src {source} is not a campaign (no runs/ directory); nothing was copied")
    if not confined.inside(runs_dir(source), [source]):
        raise CampaignError(f"--src {source}: its runs/ is a link leading out of the campaign (to "
                            f"{os.path.realpath(runs_dir(source))}); nothing was copied")


class DestinationLock:
    """The destination's merge lock (`flock` on runs/.merge.lock), held for the whole merge so two
    merges into one destination never race; `on_wait` is called once when another merge holds it.
    The holder removes the file before it lets go; a waiter that then holds the lock of a removed
    file tries again on the new one."""

    def __init__(self, target: Path, on_wait: Callable[[], None] | None = None) -> None:
        self.path, self.on_wait, self.fd = target / MERGE_LOCK, on_wait, -1

    def __enter__(self) -> DestinationLock:
        waited = False
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.on_wait is not None and not waited:
                    self.on_wait()
                waited = True
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    return self
            except FileNotFoundError:
                pass
            os.close(self.fd)

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


def merge(sources: list[Path], dst: Path, include_running: bool = False,
          on_wait: Callable[[], None] | None = None) -> MergeResult:
    """Copy every run directory of `sources` into `dst/runs/` (see the module docstring);
    `on_wait` is called when another merge into `dst` holds its lock (this one then waits)."""
    sources, dst = [Path(s) for s in sources], Path(dst)
    for source in sources:
        check_source(source)
    check_not_nested(sources, dst)
    check_destination(dst)
    target = runs_dir(dst)
    target.mkdir(parents=True, exist_ok=True)
    result = MergeResult()
    with DestinationLock(target, on_wait):
        remove_stale_temps(target)  # `.merge-*` directories of a merge that was killed
        copied: dict[str, Path] = {}
        for source in sources:
            if source.resolve() == dst.resolve():
                result.skipped += [(name, source, "already in the destination (it is the destination)")
                                   for name in run_entry_names(source)]
                continue
            for name in run_entry_names(source):
                _merge_entry(runs_dir(source) / name, source, target, result, copied, include_running)
    return result


def run_problem(run: Path) -> str | None:
    """Why the run entry `run` of an untrusted campaign is not copied: a link, not a directory, no
    regular run.json, a trajectory that is a special file or leads out of the run; None to copy."""
    if run.is_symlink():
        return f"a link (to {os.path.realpath(run)}), not a run directory; links are not copied"
    if not run.is_dir():
        return "not a directory"
    if not os.path.lexists(run / RUN_JSON):
        return f"not a run: no {RUN_JSON}"
    for name in (RUN_JSON, TRAJECTORY):
        reason = confined.problem(run / name, [run]) if os.path.lexists(run / name) else None
        if reason is not None:
            return reason
    return None


def _merge_entry(run: Path, source: Path, target: Path, result: MergeResult, copied: dict[str, Path],
                 include_running: bool) -> None:
    """Merge one entry of a source's runs/: skipped with its reason unless it is a run to copy."""
    problem = run_problem(run)
    if problem is not None:
        result.skipped.append((run.name, source, problem))
        return
    live = has_live_writer(run)
    if live and not include_running:
        result.skipped.append((run.name, source, "a live process is writing it; merge again when it has ended, "
                               "or pass --include-running to copy it as it is now"))
        return
    try:
        kept_as = _merge_run(run, source, target, result, copied)
    except NameTooLong as exc:
        result.skipped.append((run.name, source, f"{exc.name!r} is longer than this file system takes for a name "
                               f"(with merge's temp prefix); rename the run's folder in {source} to a shorter name"))
        return
    if kept_as is not None and live:
        result.running.append((kept_as, source))


def _record(run: Path) -> RunRecord | None:
    try:
        return read_run_json(run)
    except StoreError:
        return None


def _standing(record: RunRecord | None) -> tuple[bool, int] | None:
    """How far a run got: (ended, epochs done); None when its run.json cannot be read."""
    return None if record is None else (record.status.finished, record.epochs_done)


def _merge_run(run: Path, source: Path, target: Path, result: MergeResult,
               copied: dict[str, Path]) -> str | None:
    """Add `run` under its id; skip it, or update the destination's run, when the destination has it
    under its id or its conflict id (see the module docstring); else keep it under the next free
    conflict id. Returns the id it was copied to (None: not copied)."""
    record = _record(run)
    for name in _names(run, record):
        final = target / name
        if len(os.fsencode(name)) > NAME_MAX:
            raise NameTooLong(name)
        if not os.path.lexists(final):
            left_out = _install(run, final, replace=False)
            if left_out is None:
                continue
            copied[name] = source
            if name == run.name:
                result.added.append((run.name, source))
            else:
                result.conflicts.append((run.name, source, name))
            result.left_out += [(name, source, what) for what in left_out]
            return name
        decision = _compare(run, record, final)
        if decision == "same":
            where = "" if name == run.name else f" as {name}"
            earlier = copied.get(name)
            reason = f"the same as the run from {earlier}" if earlier else "already in the destination"
            result.skipped.append((run.name, source, reason + where))
            return None
        if decision is not None and decision.startswith("update"):
            left_out = _install(run, final, replace=True)
            copied[name] = source
            result.updated.append((name, source, decision.removeprefix("update: ")))
            result.left_out += [(name, source, what) for what in left_out or []]
            return name
        if decision is not None:
            result.skipped.append((run.name, source, decision))
            return None
    raise AssertionError("unreachable: _names never ends")


def _compare(run: Path, record: RunRecord | None, final: Path) -> str | None:
    """What to do with `run` given the destination's `final` of the same id: 'same' (skip), 'update:
    <why>' (replace the destination's), another text (skip, the reason), or None (different results:
    try the next name)."""
    mine, theirs = _standing(record), _standing(_record(final))
    if record is None or mine is None or theirs is None:
        return "same" if same_contents(run, final) and mine == theirs else None
    if mine[0] and not theirs[0]:
        if has_live_writer(final):
            return "the destination's copy has not ended and a live process is writing it; merge again later"
        return f"update: it has ended ({record.status}), the destination's had not"
    if theirs[0] and not mine[0]:
        return (f"the destination's has ended; this one had not ({record.status}, epoch {mine[1]}): a run that "
                "ended beats one that had not")
    if not mine[0] and mine[1] != theirs[1]:
        if mine[1] < theirs[1]:
            return f"the destination's got further (epoch {theirs[1]} against {mine[1]})"
        if has_live_writer(final):
            return "the destination's copy has not ended and a live process is writing it; merge again later"
        return f"update: it got further (epoch {mine[1]} against {theirs[1]})"
    return "same" if same_contents(run, final) else None


class NameTooLong(Exception):
    """A run would be kept under a name (or copied through a temp name) the file system refuses."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _install(run: Path, final: Path, replace: bool) -> list[str] | None:
    try:
        return install(run, final, replace)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise NameTooLong(final.name) from None
        raise CampaignError(f"could not copy {run} to {final} ({exc.strerror or exc}); nothing of this run was "
                            "written") from None


def _names(run: Path, record: RunRecord | None) -> Iterator[str]:
    """The ids `run` may be kept under: its own, then `<run_id>~<campaign>@<host>`, `-2`, `-3`, ..."""
    yield run.name
    campaign, host = (record.campaign, record.host) if record is not None else (None, None)
    origin = f"{file_stem(campaign or run.parent.parent.name)}@{file_stem(host or 'unknown-host')}"
    yield f"{run.name}~{origin}"
    count = 2
    while True:
        yield f"{run.name}~{origin}-{count}"
        count += 1


def same_contents(a: Path, b: Path) -> bool:
    """Whether two run directories hold the same results: equal trajectories, row for row and value for
    value (NaN equal to NaN, row order and file bytes aside); runs without a readable trajectory on
    either side are the same only when their files are byte for byte. Only regular files are read."""
    files = [(a / TRAJECTORY, b / TRAJECTORY), (a / RUN_JSON, b / RUN_JSON)]
    try:
        if _bytes(a / TRAJECTORY) == _bytes(b / TRAJECTORY) is not None:
            return True
        left, right = (read_trajectory(d).to_pandas() for d in (a, b))
    except (OSError, StoreError):
        return all(_bytes(x) == _bytes(y) for x, y in files)
    left, right = (frame.astype({"context": str, "metric": str, "key": object}) for frame in (left, right))
    left, right = (frame.sort_values(TRAJECTORY_KEY, na_position="first", ignore_index=True) for frame in (left, right))
    return left.equals(right)


def _bytes(path: Path) -> bytes | None:
    """The bytes of `path` when it is a regular file inside its run (never a FIFO or a link out)."""
    if confined.problem(path, [path.parent]) is not None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None
