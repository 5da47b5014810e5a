"""Terminal output of the command lines (rich): tables, one-line messages and the run-status colours.

Every title, header, cell and message is printed literally, so a metric name such as
`weights/erank[features.1]@3` keeps its brackets: text becomes a `rich.text.Text` and styles are
given beside it, never as markup inside it. The console itself has markup off, so a stray string
cannot be read as markup either. The command line and the sweep status table of `launching` both
use it; of the package it imports only the run statuses and the number format.
"""
from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from rich.console import Console, JustifyMethod, OverflowMethod
from rich.table import Table
from rich.text import Text

from pab_campaign.formatting import number
from pab_campaign.store import RunStatus

# The colour of each run status, wherever a status is shown.
STATUS_STYLES: dict[str, str] = {
    RunStatus.RUNNING: "cyan", RunStatus.COMPLETED: "green", RunStatus.FAILED: "bold red",
    RunStatus.DIVERGED: "yellow", RunStatus.PREEMPTED: "magenta",
}

Cell = str | Text

console = Console(width=None if sys.stdout.isatty() else 160, markup=False)


def fmt(value: object, digits: int = 4) -> str:
    """A table cell for `value`: '-' for None, 'nan' for NaN, floats to `digits` significant digits
    (`formatting.number`, as the HTML page writes numbers)."""
    return number(value, digits)


def styled(text: str, style: str | None) -> Text:
    """`text` printed literally in `style` (None: unstyled)."""
    return Text(text, style=style or "")


def status_text(status: str, suffix: str = "") -> Text:
    """A run status (plus `suffix`) in its colour from STATUS_STYLES; unknown statuses unstyled."""
    return styled(status + suffix, STATUS_STYLES.get(status))


@dataclass(frozen=True)
class Column:
    """A table column: its header, alignment, style, and how a too-long cell wraps."""

    header: str
    justify: JustifyMethod = "left"
    style: str | None = None
    overflow: OverflowMethod = "fold"


def table(title: str, columns: Sequence[str | Column], rows: Iterable[Sequence[Cell]],
          section_ends: Collection[int] = ()) -> Table:
    """A table with `columns` (a header, or a Column) and `rows` of cells (str printed literally, or
    Text); a line is drawn below each row whose position is in `section_ends`."""
    result = Table(title=Text(title))
    for column in columns:
        spec = column if isinstance(column, Column) else Column(column)
        result.add_column(Text(spec.header), justify=spec.justify, style=spec.style or "", overflow=spec.overflow)
    for position, row in enumerate(rows):
        result.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row),
                       end_section=position in section_ends)
    return result


def print_table(title: str, columns: Sequence[str | Column], rows: Iterable[Sequence[Cell]],
                section_ends: Collection[int] = ()) -> None:
    """Print `table(title, columns, rows, section_ends)`."""
    console.print(table(title, columns, rows, section_ends))


def print_line(message: str, style: str | None = None) -> None:
    """Print one message literally, in `style`."""
    console.print(styled(message, style))
