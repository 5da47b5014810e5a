"""Whether the caches in an output folder (a campaign's `summary/`) were made here.

A command reuses what an earlier one kept (the runs index, the compacted trajectories, the curve
aggregates, ModelDiff's scores) when the run files it was made from have not changed (size and
mtime). A campaign from someone else may ship those caches forged, with matching sizes and mtimes,
and `cp -a` or `tar` keep mtimes. So a folder holds a marker naming the folder itself by its
device and inode, which no one can know before the folder exists on this file system: a folder
copied, unpacked or mounted from elsewhere (or written by an earlier version) has no marker that
names it, and its caches are removed before anything reads them (they are made again from the
runs). The command's other outputs (tables, figures) stay: they are shown, never reused.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pab_campaign.store import atomic_write_bytes

MARKER = ".pab_campaign.folder"
# What commands reuse instead of reading the runs (checked by the tests against their modules' names).
CACHES = ("runs.parquet", "trajectories.parquet", "curve_aggregates.parquet")
# ModelDiff keeps its scores in `diff/<name>/scores_<side>.npy`, reused only through their sidecars.
DIFF_FOLDER, SIDECAR_PREFIX, SIDECAR_SUFFIX = "diff", "scores_", ".json"
_MARKER_BYTES = 64


def _identity(folder: Path) -> str | None:
    """'<device>:<inode>' of the directory `folder` (not followed if a link); None otherwise."""
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    return f"{info.st_dev}:{info.st_ino}" if stat.S_ISDIR(info.st_mode) else None


def made_here(folder: Path) -> bool:
    """Whether `folder` holds the marker that names it (its caches were made on this file system)."""
    identity = _identity(folder)
    if identity is None:
        return False
    try:
        fd = os.open(folder / MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, _MARKER_BYTES).decode("ascii", "replace") == identity
    finally:
        os.close(fd)


def _sidecars(diff: Path) -> list[Path]:
    """The score sidecars in the folders of `diff`, neither it nor they followed if links."""
    if _identity(diff) is None:
        return []
    found = []
    with os.scandir(diff) as folders:
        for entry in folders:
            if entry.is_dir(follow_symlinks=False):
                with os.scandir(entry.path) as files:
                    found += [Path(f.path) for f in files
                              if f.name.startswith(SIDECAR_PREFIX) and f.name.endswith(SIDECAR_SUFFIX)]
    return found


def claim(folder: Path) -> list[Path]:
    """Make the writable directory `folder` this file system's own: remove the caches of CACHES and
    the ModelDiff score sidecars it holds (made elsewhere), then write the marker; returns what was
    removed.
    Nothing is done where `made_here` already holds."""
    if made_here(folder):
        return []
    removed = []
    for path in [*(folder / name for name in CACHES), *_sidecars(folder / DIFF_FOLDER)]:
        if os.path.lexists(path):
            path.unlink()  # a link itself, never what it leads to
            removed.append(path)
    identity = _identity(folder)
    if identity is not None:
        atomic_write_bytes(folder / MARKER, identity.encode("ascii"))
    return removed
