"""DuckDB under the trust rule: nothing a campaign holds is read as SQL or as a path pattern.

- Names a campaign holds (hyper-parameters, metrics, run ids) never become SQL text: values go as
  parameters, and a frame whose columns are such names is registered with positional column names
  (`positional`).
- The only literals are paths this process chose, quoted with `sql_text`.
- `read_parquet` expands `*`, `?` and `[...]` and reads `key=value/` folders as extra columns; every
  path handed to it goes through `literal_paths` (absolute; a path with a pattern character is
  opened here and passed as `/proc/self/fd/N`, so it names that one file) and `READ_OPTIONS`.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pab_campaign.errors import CampaignError, StoreError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

# Characters DuckDB's file globbing (or its escaping) gives a meaning in a path.
PATTERN_CHARS = frozenset("*?[]{}\\")
# Options of every read_parquet: no hive partitions taken from folder names like `value=7/`.
READ_OPTIONS = "hive_partitioning = false"
_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection (imported lazily: the CLI starts without it)."""
    import duckdb

    return duckdb.connect()


def sql_text(text: str) -> str:
    """`text` as a SQL string literal (single quotes doubled); ValueError for a NUL character."""
    if "\0" in text:
        raise ValueError("a SQL literal cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def sql_name(name: str) -> str:
    """`name` as a quoted SQL identifier (double quotes doubled); ValueError for a NUL character."""
    if "\0" in name:
        raise ValueError("a SQL identifier cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def positional(frame: pd.DataFrame, names: Sequence[str], prefix: str = "c") -> tuple[pd.DataFrame, list[str]]:
    """`frame` with its columns `names` renamed `<prefix>0`, `<prefix>1`, ... (so that a name of any
    content never reaches SQL) and the new names, in order."""
    aliases = [f"{prefix}{i}" for i in range(len(names))]
    renamed = frame.rename(columns=dict(zip(names, aliases)))
    return renamed, aliases


def _open_regular(path: str) -> int:
    """A read-only descriptor of the regular file `path` (opened without blocking on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise CampaignError(f"too many run files with pattern characters ({''.join(sorted(PATTERN_CHARS))}) in "
                                "their paths to read at once; rename those run directories") from None
        raise StoreError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{path}: not a regular file")
    return fd


def pinned_file(path: str | Path) -> tuple[int, str]:
    """A descriptor of the regular file `path` and the path DuckDB reads it by: every read through it
    sees this one file, whatever replaces `path` later (close the descriptor when done). StoreError
    when it cannot be opened or is not a regular file."""
    fd = _open_regular(os.path.abspath(path))
    return fd, f"{_FD_DIR}/{fd}"


@contextmanager
def literal_paths(paths: Sequence[str | Path]) -> Iterator[list[str]]:
    """`paths` as read_parquet reads them literally, valid until the block ends: absolute, and one
    with a pattern character replaced by a descriptor of the file it names (StoreError when that
    file cannot be opened or is not a regular file; CampaignError when too many are open)."""
    with ExitStack() as stack:
        out = []
        for path in paths:
            text = os.path.abspath(path)
            if PATTERN_CHARS.isdisjoint(text):
                out.append(text)
                continue
            fd = _open_regular(text)
            stack.callback(os.close, fd)
            out.append(f"{_FD_DIR}/{fd}")
        yield out


def rows_past(con: duckdb.DuckDBPyConnection, files: Sequence[str], limit: int) -> dict[int, int]:
    """{position in `files`: rows} of the Parquet files (literal paths) whose footer declares more than
    `limit` rows: a few kB of Parquet can declare hundreds of millions of equal rows, which a query
    would hold in memory. A file whose footer cannot be read is left to the query that reads it,
    which says why."""
    import duckdb

    if not files:
        return {}
    try:
        counts = con.execute("SELECT file_name, num_rows FROM parquet_file_metadata(?)", [list(files)]).fetchall()
    except duckdb.Error:
        if len(files) == 1:
            return {}
        half = len(files) // 2
        right = rows_past(con, files[half:], limit)
        return {**rows_past(con, files[:half], limit), **{k + half: rows for k, rows in right.items()}}
    position = {name: k for k, name in enumerate(files)}
    return {position[name]: rows for name, rows in counts if rows > limit}
