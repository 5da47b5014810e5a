"""The manifest of a campaign's run files as they are now, without pandas (warm commands compare
it with the index's): per run entry, size and mtime (ns) of run.json and trajectory.parquet, -1
when the file is missing or may not be read (`store.check_run_file`)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pab_campaign.errors import StoreError
from pab_campaign.store import RUN_JSON, TRAJECTORY, check_run_file, run_entries, runs_dir

MANIFEST_COLUMNS = ("run_json_size", "run_json_mtime_ns", "trajectory_size", "trajectory_mtime_ns")
ScanRow = tuple[str, int, int, int, int]
# `scan_rows` of campaign directories, made moments ago by the same command (a warm answer that
# found its index stale hands its scan to the full path, which then does not scan again).
Scans = dict[Path, list[ScanRow]]
_MISSING = (-1, -1)


def file_stat(path: Path, boundary: Path) -> tuple[int, int]:
    """(size, mtime ns) of the run file `path`; (-1, -1) when it is missing or may not be read (not
    a regular file, a link out of `boundary`: `trajectory_problem` then says why)."""
    try:
        info = check_run_file(path, boundary)
    except (OSError, StoreError):
        return -1, -1
    return info.st_size, info.st_mtime_ns


def scan_rows(campaign_dir: Path) -> list[ScanRow]:
    """(run_id, *MANIFEST_COLUMNS) of every run entry, sorted by run_id.

    Where `runs/` and the run's entry are no links (the listing of `runs/` says so), a run file that
    `lstat` finds to be a regular file lies inside the campaign: its size and mtime are read with that
    one system call, relative to a descriptor of `runs/` (the kernel then walks two names, not the
    whole path). Anything else (a link on the way, a file that is a link or no regular file) takes
    `check_run_file`'s full path: the same answer as `file_stat` for every file."""
    root = runs_dir(campaign_dir)
    boundary = Path(campaign_dir)
    entries = run_entries(campaign_dir)
    try:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        folder = -1  # a link, or gone: every file takes the full check
    rows: list[ScanRow] = []
    try:
        for name, plain in entries:
            if plain and folder >= 0:
                # the common case, written out: at 50,000 runs the scan is most of a warm command
                run_json = _plain_stat(f"{name}/{RUN_JSON}", folder)
                trajectory = _plain_stat(f"{name}/{TRAJECTORY}", folder)
                if run_json is not None and trajectory is not None:
                    rows.append((name, *run_json, *trajectory))
                    continue
            stats = [*file_stat(root / name / RUN_JSON, boundary), *file_stat(root / name / TRAJECTORY, boundary)]
            rows.append((name, stats[0], stats[1], stats[2], stats[3]))
    finally:
        if folder >= 0:
            os.close(folder)
    return rows


def _plain_stat(path: str, folder: int) -> tuple[int, int] | None:
    """(size, mtime ns) of `path` (relative to the directory descriptor `folder`) when it is a
    regular file, (-1, -1) when it is missing, None when it is anything else (a link, a special
    file) or cannot be looked at (check it fully)."""
    try:
        info = os.lstat(path, dir_fd=folder)
    except FileNotFoundError:
        return _MISSING
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None
