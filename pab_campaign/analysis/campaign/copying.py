"""Copy one run directory of an untrusted campaign into another campaign, all or nothing.

Only what is inside the run is copied: regular files and directories, and links that stay inside
the run (as links). A link leading out of the run is never followed, and a special file (FIFO,
socket, device) is never opened; each is left out with its reason. The run's lock (its writer's,
not the copy's) and temp files are not copied. The copy is built in a temp directory beside its
destination and renamed into place, or exchanged with the run it replaces in one atomic step
(`renameat2(RENAME_EXCHANGE)` where the system has it), so a reader or a killed merge never sees a
half run or no run.
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
from pathlib import Path

from pab_campaign import confined
from pab_campaign.runlock import LOCK_FILE
from pab_campaign.store import temp_path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# Bytes copied per read (shutil's own buffer size).
COPY_CHUNK = 1024 * 1024


def _skipped(name: str) -> bool:
    return name == LOCK_FILE or name.startswith(".")


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each stretch of data in the open file of `size` bytes, its holes left out;
    the whole file where the system cannot tell."""
    if not hasattr(os, "SEEK_DATA"):
        return [(0, size)]
    extents, position = [], 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            return [(0, size)]
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        extents.append((start, end))
        position = end
    return extents


def _copy_file(source: Path, target: Path) -> None:
    """Copy the regular file `source` (opened without following a link) with its mode and times; its
    holes stay holes (a sparse file of a terabyte in a run would otherwise fill the disk)."""
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as reader, open(target, "xb") as writer:
        info = os.fstat(reader.fileno())
        for start, end in _data_extents(reader.fileno(), info.st_size):
            reader.seek(start)
            writer.seek(start)
            left = end - start
            while left > 0:
                chunk = reader.read(min(COPY_CHUNK, left))
                if not chunk:
                    break
                writer.write(chunk)
                left -= len(chunk)
        writer.truncate(info.st_size)
    os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def copy_tree(run: Path, target: Path) -> list[str]:
    """Copy the run directory `run` to the new directory `target` (see the module docstring);
    returns a reason for each entry left out (`<path>: <why>`)."""
    left_out: list[str] = []
    os.mkdir(target)
    for entry in sorted(os.scandir(run), key=lambda e: e.name):
        if _skipped(entry.name):
            continue
        source, copy = Path(entry.path), target / entry.name
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            if os.path.exists(source) and confined.inside(source, [run]):
                os.symlink(os.readlink(source), copy)
            else:
                where = os.path.realpath(source)
                left_out.append(f"{source}: a link leading out of the run (to {where}), not followed")
        elif stat.S_ISDIR(mode):
            left_out += copy_tree(source, copy)
        elif stat.S_ISREG(mode):
            _copy_file(source, copy)
        else:
            left_out.append(f"{source}: {confined.kind(mode)}, not a regular file")
    return left_out


def _exchange(a: Path, b: Path) -> bool:
    """Swap the directories `a` and `b` in one step; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def install(run: Path, final: Path, replace: bool = False) -> list[str] | None:
    """Copy `run` to `final`: a new run (None when `final` appeared meanwhile), or, with `replace`,
    in place of the run there. Returns the entries left out (`copy_tree`). OSError when the copy
    fails; nothing of it is left behind then."""
    temp = temp_path(final.parent / f"merge-{final.name}", "")
    os.mkdir(temp)
    try:
        left_out = copy_tree(run, temp / "new")
        if not replace:
            try:
                os.rename(temp / "new", final)
            except FileExistsError:
                return None
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY:
                    return None
                raise
        elif not _exchange(temp / "new", final):
            os.rename(final, temp / "old")  # no atomic exchange here: the shortest window instead
            os.rename(temp / "new", final)
        return left_out
    finally:
        shutil.rmtree(temp, ignore_errors=True)
