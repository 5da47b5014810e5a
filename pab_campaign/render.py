"""Terminal output of the command lines (rich): tables, one-line messages and the run-status colours.

Every title, header, cell and message is printed literally, so a metric name such as
`weights/erank[features.1]@3` keeps its brackets: text becomes a `rich.text.Text` and styles are
given beside it, never as markup inside it. The console itself has markup off, so a stray string
cannot be read as markup either. Names come from campaigns, which strangers may write: every text
goes through `literal`, which shows a control character (an escape sequence's ESC, say) as its
code instead of handing it to the terminal. The command line and the sweep status table of
`launching` both use it; of the package it imports only the run statuses and the number format.
"""
from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

from rich.cells import cell_len
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
# From this many rows on, `print_columns` (and `print_table` through it) lays a table out itself when
# it can (`_layout`).
FAST_TABLE_ROWS = 50

console = Console(width=None if sys.stdout.isatty() else 160, markup=False)


# What `literal` does to each control character: dropped where rich drops it anyway (bell,
# backspace, vertical tab, form feed, carriage return), else shown as its code; tab and newline stay.
_CONTROL_SHOWN = {code: ("" if code in (7, 8, 11, 12, 13) else f"\\x{code:02x}")
                  for code in (*range(0x20), *range(0x7F, 0xA0)) if code not in (9, 10)}
# The bidirectional controls, shown as `\uNNNN`: a right-to-left override in a run id would show the
# rest of the line backwards (a name that reads as another).
_CONTROL_SHOWN |= {code: f"\\u{code:04x}" for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                                          *range(0x2066, 0x206A))}


def literal(text: str) -> str:
    r"""`text` as it is shown: its control characters other than tab and newline dropped or written
    as `\xNN`, its bidirectional controls as `\uNNNN` (`_CONTROL_SHOWN`), so that no campaign name
    can move the cursor, recolour the terminal or turn the rest of a line around.

    >>> literal("a\x1b[31mb\a")
    'a\\x1b[31mb'
    >>> literal("run\u202egnp.exe")
    'run\\u202egnp.exe'
    """
    return text if text.isprintable() else text.translate(_CONTROL_SHOWN)


# A cell of what is not there: a hyper-parameter a run lacks, a value not known yet (a running run's
# duration), a summary value the run did not record what it needs for.
MISSING = "-"


def fmt(value: object, digits: int = 4) -> str:
    """A table cell for `value`: '-' for None, 'nan' for NaN, floats to `digits` significant digits
    (`formatting.number`, as the HTML page writes numbers)."""
    return number(value, digits)


def styled(text: str, style: str | None) -> Text:
    """`text` printed literally (`literal`) in `style` (None: unstyled)."""
    return Text(literal(text), style=style or "")


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
    result = Table(title=styled(title, None))
    for column in columns:
        spec = column if isinstance(column, Column) else Column(column)
        result.add_column(styled(spec.header, None), justify=spec.justify, style=spec.style or "",
                          overflow=spec.overflow)
    for position, row in enumerate(rows):
        result.add_row(*(styled(cell, None) if isinstance(cell, str) else cell for cell in row),
                       end_section=position in section_ends)
    return result


def print_table(title: str, columns: Sequence[str | Column], rows: Iterable[Sequence[Cell]],
                section_ends: Collection[int] = ()) -> None:
    """Print `table(title, columns, rows, section_ends)`; a long table without sections is printed
    by `print_columns`, which lays it out itself."""
    rows = list(rows)
    if len(rows) >= FAST_TABLE_ROWS and not section_ends and all(len(row) == len(columns) for row in rows):
        print_columns(title, columns, [list(column) for column in zip(*rows)])
    else:
        console.print(table(title, columns, rows, section_ends))


def print_columns(title: str, columns: Sequence[str | Column], cells: Sequence[Sequence[Cell]]) -> None:
    """`print_table` of a table given a column at a time (`cells[j][i]`: row i of column j, every
    column as long; ValueError otherwise). A long table whose cells all fit on one line is laid out
    here as rich would lay it out (`_layout`), 20-50x faster than rich's general layout (seconds at
    thousands of rows); where the console shows no styles (a pipe, a file, NO_COLOR) its lines are
    joined as plain text, faster again."""
    count = len(cells[0]) if cells else 0
    if len(cells) != len(columns) or any(len(column) != count for column in cells):
        raise ValueError(f"{len(columns)} columns of equal length expected, got lengths {[len(c) for c in cells]}")
    layout = _layout(title, columns, cells) if count >= FAST_TABLE_ROWS else None
    if layout is None:
        console.print(table(title, columns, list(zip(*cells))))
    elif console.color_system is None:
        console.file.write(_plain_lines(layout) + "\n")
    else:
        console.print(_styled_lines(layout, cells), no_wrap=True, overflow="ignore", crop=False)


@dataclass(frozen=True)
class _Layout:
    """A table laid out here (heavy head box, one space of padding, the title centred above, as rich
    lays it out): its title, column specs and headers, the characters of each column's cells as
    shown (`literal`), and the width of each column."""

    title: str
    specs: list[Column]
    headers: list[str]
    columns: list[list[str]]
    widths: list[int]


def _width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _shown(cell: Cell) -> str:
    """The characters shown of a cell: `literal` of a str, the text of a Text (`styled` made it)."""
    return literal(cell) if isinstance(cell, str) else cell.plain


def _column_width(texts: list[str]) -> int:
    """The widest of `texts` in terminal cells (one pass in C where all are ASCII)."""
    if not texts:
        return 0
    return max(map(len, texts)) if "".join(texts).isascii() else max(map(_width, texts))


def _column_texts(column: Sequence[Cell]) -> list[str]:
    """The characters shown of each cell of a column (`_shown`), in one pass in C where every cell
    is printable text already."""
    plain = [cell for cell in column if cell.__class__ is str]
    if len(plain) == len(column) and "".join(plain).isprintable():
        return plain
    return [cell if cell.__class__ is str and cell.isprintable() else _shown(cell) for cell in column]


def _layout(title: str, columns: Sequence[str | Column], cells: Sequence[Sequence[Cell]]) -> _Layout | None:
    """The layout of a table given a column at a time (`cells[j][i]`: row i of column j) that can be
    laid out here (every cell one line, the table as wide as the console at most), else None (rich's
    own layout then wraps or shrinks columns). Works a column at a time: at 50,000 rows, a call per
    cell was most of `ls`."""
    specs = [column if isinstance(column, Column) else Column(column) for column in columns]
    headers = [literal(spec.header) for spec in specs]
    texts = [_column_texts(column) for column in cells]
    if any("\n" in "".join(column) for column in texts):
        return None
    widths = [max(_width(header), _column_width(column)) for header, column in zip(headers, texts)]
    title = literal(title)
    total = sum(widths) + 3 * len(widths) + 1
    if total > console.width or _width(title) > total or any("\n" in text for text in (title, *headers)):
        return None
    return _Layout(title, specs, headers, texts, widths)


def _title_line(layout: _Layout) -> str:
    total = sum(layout.widths) + 3 * len(layout.widths) + 1
    left = (total - _width(layout.title)) // 2
    return " " * left + layout.title + " " * (total - left - _width(layout.title))


def _padding(width: int, used: int, justify: str) -> tuple[int, int]:
    """Spaces before and after a cell `used` columns wide in a column `width` wide."""
    gap = width - used
    before = gap if justify == "right" else gap // 2 if justify == "center" else 0
    return before, gap - before


def _plain_lines(layout: _Layout) -> str:
    """The table's characters, without styles."""
    widths = layout.widths
    justify = [spec.justify for spec in layout.specs]

    def padded(text: str, width: int, how: str) -> str:
        if how == "left" and text.isascii():
            return text.ljust(width)
        if how == "right" and text.isascii():
            return text.rjust(width)
        before, after = _padding(width, _width(text), how)
        return " " * before + text + " " * after

    def column(texts: list[str], width: int, how: str) -> list[str]:
        if how in ("left", "right") and "".join(texts).isascii():
            return list(map(str.ljust if how == "left" else str.rjust, texts, repeat(width)))
        return [padded(text, width, how) for text in texts]

    lines = [_title_line(layout), "┏" + "┳".join("━" * (w + 2) for w in widths) + "┓",
             "┃ " + " ┃ ".join(map(padded, layout.headers, widths, justify)) + " ┃",
             "┡" + "╇".join("━" * (w + 2) for w in widths) + "┩"]
    lines += ["│ " + " │ ".join(cells) + " │" for cells in zip(*map(column, layout.columns, widths, justify))]
    lines.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
    return "\n".join(lines)


def _styled_lines(layout: _Layout, cells: Sequence[Sequence[Cell]]) -> Text:
    """The table of `cells` (a column at a time, laid out as `layout`) as one Text, with the
    header's, the columns' and the cells' styles."""
    specs, widths = layout.specs, layout.widths
    out = Text()
    out.append(_title_line(layout) + "\n")
    out.append("┏" + "┳".join("━" * (w + 2) for w in widths) + "┓\n")
    _row(out, [Text(header, "table.header") for header in layout.headers], specs, widths, "┃")
    out.append("┡" + "╇".join("━" * (w + 2) for w in widths) + "┩\n")
    for row, texts in zip(zip(*cells), zip(*layout.columns)):
        _row(out, [cell if isinstance(cell, Text) else Text(text) for cell, text in zip(row, texts)], specs, widths,
             "│")
    out.append("└" + "┴".join("─" * (w + 2) for w in widths) + "┘")
    return out


def _row(out: Text, cells: Sequence[Text], specs: Sequence[Column], widths: Sequence[int], edge: str) -> None:
    """Append one table line: each cell padded to its column's width and aligned as the column says
    (a header too, as rich aligns headers by the column's justify)."""
    for cell, spec, width in zip(cells, specs, widths):
        out.append(edge + " ")
        before, after = _padding(width, _width(cell.plain), spec.justify)
        style = spec.style or ""
        out.append(" " * before, style)
        start = len(out)
        out.append_text(cell)
        if style:
            out.stylize(style, start, len(out))
        out.append(" " * after + " ", style)
    out.append(edge + "\n")


def print_line(message: str, style: str | None = None) -> None:
    """Print one message literally, in `style`."""
    console.print(styled(message, style))
