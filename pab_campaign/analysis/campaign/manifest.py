"""The manifest of a campaign's run files as they are now, without pandas (warm commands compare
it with the index's): per run entry, size and mtime (ns) of run.json and trajectory.parquet, -1
when the file is missing or may not be read (`store.check_run_file`)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pab_campaign.errors import StoreError
from pab_campaign.store import RUN_JSON, TRAJECTORY, check_run_file, run_entry_names, runs_dir

MANIFEST_COLUMNS = ("run_json_size", "run_json_mtime_ns", "trajectory_size", "trajectory_mtime_ns")
_MISSING = (-1, -1)


def file_stat(path: Path, boundary: Path) -> tuple[int, int]:
    """(size, mtime ns) of the run file `path`; (-1, -1) when it is missing or may not be read (not
    a regular file, a link out of `boundary`: `trajectory_problem` then says why)."""
    try:
        info = check_run_file(path, boundary)
    except (OSError, StoreError):
        return -1, -1
    return info.st_size, info.st_mtime_ns


def scan_rows(campaign_dir: Path) -> list[tuple[str, int, int, int, int]]:
    """(run_id, *MANIFEST_COLUMNS) of every run entry, sorted by run_id.

    A run directory that is no link is listed once (`os.scandir`): a file in it that is no link
    either lies inside the campaign, so its own `lstat` decides (a regular file, or -1). Anything
    else (a link on the way, an entry that vanished) takes `check_run_file`'s full path: the same
    answer as `file_stat` for every file, in a fraction of the system calls."""
    root = runs_dir(campaign_dir)
    boundary = Path(campaign_dir)
    names = run_entry_names(campaign_dir)
    direct = not os.path.islink(root)
    rows: list[tuple[str, int, int, int, int]] = []
    for name in names:
        found = _listed(f"{root}/{name}") if direct else None
        stats: list[int] = []
        for file in (RUN_JSON, TRAJECTORY):
            entry = found.get(file, _MISSING) if found is not None else None
            stats.extend(file_stat(root / name / file, boundary) if entry is None else entry)
        rows.append((name, stats[0], stats[1], stats[2], stats[3]))
    return rows



def _listed(directory: str) -> dict[str, tuple[int, int] | None] | None:
    """{file name: (size, mtime ns) of a regular file that is no link, else None (check it fully)} of
    the run files in `directory`; None when `directory` is a link or cannot be listed."""
    try:
        if os.path.islink(directory):
            return None
        found: dict[str, tuple[int, int] | None] = {}
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name in (RUN_JSON, TRAJECTORY):
                    info = None if entry.is_symlink() else entry.stat(follow_symlinks=False)
                    found[entry.name] = ((info.st_size, info.st_mtime_ns)
                                         if info is not None and stat.S_ISREG(info.st_mode) else None)
        return found
    except OSError:
        return None
