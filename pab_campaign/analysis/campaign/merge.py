"""Coalesce campaigns: copy run directories from sources into a destination campaign.

Never moves, deletes or overwrites: each run is copied into a temp directory inside the destination
and renamed into place, so an interrupted merge leaves no half run (a leftover `.merge-*` temp
directory is ignored by every reader and removed by the next command on the campaign). A source run
whose run_id the destination already has is compared with it by trajectory contents (values, not
bytes): the same contents are skipped, so merging again adds nothing; different contents (a re-run
on another machine, a GPU replica) are a conflict, and both are kept: the incoming run under
`<run_id>~<campaign>@<host>`, the campaign and host its run.json names (`-2`, `-3`, ... when that is
taken too). A destination inside a source, or a source inside the destination, is refused. The
destination's index is rebuilt by the next analysis command.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pab_campaign.analysis.campaign.naming import file_stem
from pab_campaign.errors import CampaignError, StoreError
from pab_campaign.runlock import LOCK_FILE
from pab_campaign.store import (
    RUN_JSON,
    TRAJECTORY,
    is_campaign,
    iter_run_dirs,
    read_run_json,
    read_trajectory,
    remove_stale_temps,
    runs_dir,
    temp_path,
)

TRAJECTORY_KEY = ["epoch", "context", "metric", "key"]


@dataclass
class MergeResult:
    """Run ids added to the destination; (run_id, source, reason) of those skipped; and (run_id,
    source, kept_as) of the conflicts: runs whose id the destination has with other contents, kept
    under the id `kept_as`."""

    added: list[tuple[str, Path]] = field(default_factory=list)
    skipped: list[tuple[str, Path, str]] = field(default_factory=list)
    conflicts: list[tuple[str, Path, str]] = field(default_factory=list)


def check_destination(dst: Path) -> None:
    """A destination must be missing, empty, or a campaign; anything else is refused."""
    if dst.exists() and not dst.is_dir():
        raise CampaignError(f"--dst {dst} is a file; name a new directory or an existing campaign")
    if dst.is_dir() and not is_campaign(dst) and any(dst.iterdir()):
        raise CampaignError(f"--dst {dst} exists and is not a campaign (no runs/ directory); "
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


def merge(sources: list[Path], dst: Path) -> MergeResult:
    """Copy every run directory of `sources` into `dst/runs/` (see the module docstring)."""
    sources, dst = [Path(s) for s in sources], Path(dst)
    for source in sources:
        if not is_campaign(source):
            raise CampaignError(f"--src {source} is not a campaign (no runs/ directory); nothing was copied")
    check_not_nested(sources, dst)
    check_destination(dst)
    target = runs_dir(dst)
    target.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)  # `.merge-*` directories of a merge that was killed
    result = MergeResult()
    copied: dict[str, Path] = {}
    for source in sources:
        if source.resolve() == dst.resolve():
            result.skipped += [(run.name, source, "already in the destination (it is the destination)")
                               for run in iter_run_dirs(source)]
            continue
        for run in iter_run_dirs(source):
            _merge_run(run, source, target, result, copied)
    return result


def _merge_run(run: Path, source: Path, target: Path, result: MergeResult, copied: dict[str, Path]) -> None:
    """Add `run` under its id, skip it when the destination has the same contents under its id or
    its conflict id, else keep it under the next free conflict id."""
    for name in _names(run):
        final = target / name
        if final.exists() or final.is_symlink():
            if same_contents(run, final):
                where = "" if name == run.name else f" as {name}"
                earlier = copied.get(name)
                reason = f"the same as the run from {earlier}" if earlier else "already in the destination"
                result.skipped.append((run.name, source, reason + where))
                return
            continue
        if not _copy_run(run, final):
            continue
        copied[name] = source
        if name == run.name:
            result.added.append((run.name, source))
        else:
            result.conflicts.append((run.name, source, name))
        return


def _names(run: Path):
    """The ids `run` may be kept under: its own, then `<run_id>~<campaign>@<host>`, `-2`, `-3`, ..."""
    yield run.name
    try:
        record = read_run_json(run)
        campaign, host = record.campaign, record.host
    except StoreError:
        campaign, host = None, None
    origin = f"{file_stem(campaign or run.parent.parent.name)}@{file_stem(host or 'unknown-host')}"
    yield f"{run.name}~{origin}"
    count = 2
    while True:
        yield f"{run.name}~{origin}-{count}"
        count += 1


def same_contents(a: Path, b: Path) -> bool:
    """Whether two run directories hold the same results: equal trajectories, row for row and value for
    value (NaN equal to NaN, row order and file bytes aside); runs without a readable trajectory on
    either side are the same only when their files are byte for byte."""
    files = [(a / TRAJECTORY, b / TRAJECTORY), (a / RUN_JSON, b / RUN_JSON)]
    try:
        if (a / TRAJECTORY).read_bytes() == (b / TRAJECTORY).read_bytes():
            return True
        left, right = (read_trajectory(d).to_pandas() for d in (a, b))
    except (OSError, StoreError):
        return all(_bytes(x) == _bytes(y) for x, y in files)
    left, right = (frame.astype({"context": str, "metric": str, "key": object}) for frame in (left, right))
    left, right = (frame.sort_values(TRAJECTORY_KEY, na_position="first", ignore_index=True) for frame in (left, right))
    return left.equals(right)


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _ignored(_directory: str, names: list[str]) -> list[str]:
    """Not copied: the run's lock (its writer's, not the copy's) and temp files."""
    return [name for name in names if name == LOCK_FILE or name.startswith(".")]


def _copy_run(run: Path, final: Path) -> bool:
    """Copy `run` to a temp dir beside `final`, then rename it to `final`; False if `final` exists."""
    temp = temp_path(final.parent / f"merge-{run.name}", "")
    os.mkdir(temp)
    try:
        shutil.copytree(run, temp / run.name, symlinks=True, ignore=_ignored)
        os.rename(temp / run.name, final)
    except FileExistsError:
        return False
    except OSError as exc:
        if final.exists():
            return False
        raise CampaignError(f"could not copy {run} to {final} ({exc}); nothing of this run was written") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return True
