"""Files of an untrusted campaign, read or copied without leaving it.

A campaign may come from someone else, so a name in it may be a symbolic link to anywhere (`~/.ssh`,
`/dev/zero`) or a special file (a FIFO blocks the reader). What a command reads into a page or
copies must be a regular file whose real path lies inside one of the directories it trusts
(`problem` says why not); `is_png` checks a figure by its 8-byte signature, not by its name.
Imports nothing else of the package, like the data contract.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def kind(mode: int) -> str:
    """What a file of `mode` (st_mode) is, in words: 'a regular file', 'a FIFO', ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether the real path of `path` (every link followed) lies inside the real path of a root."""
    real = Path(os.path.realpath(path))
    return any(real == (top := Path(os.path.realpath(root))) or real.is_relative_to(top) for root in roots)


def problem(path: Path, roots: Sequence[Path], limit: int | None = None) -> str | None:
    """Why `path` must not be read as a file of the campaign under `roots`: missing, a link that
    leads outside every root, not a regular file, or larger than `limit` bytes; None when it may be
    read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"{path} is missing" + (" (a dangling link)" if os.path.islink(path) else "")
    except OSError as exc:
        return f"{path} cannot be reached ({exc.strerror or exc})"
    if not inside(path, roots):
        return f"{path} leads outside the campaign (to {os.path.realpath(path)}); links are not followed out of it"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is {kind(info.st_mode)}, not a regular file"
    if limit is not None and info.st_size > limit:
        return f"{path} holds {info.st_size:,} bytes, more than the {limit:,} a file of its kind may"
    return None


def is_png(path: Path) -> bool:
    """Whether the file at `path` starts with the PNG signature (False when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False
