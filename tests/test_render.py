"""The terminal rendering shared by the command line and the sweep status table: text is printed
literally (brackets are never markup), each run status has its one colour."""
from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from pab_campaign import render
from pab_campaign.launching.sweep_status import render_table
from pab_campaign.render import Column, status_text
from pab_campaign.store import RunStatus


def _text(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=200).print(renderable)
    return out.getvalue()


def test_titles_headers_and_cells_keep_their_brackets():
    table = render.table("given weights/erank[features.1]@3", ["weights/erank[features.1]@3", "x"],
                         [["val/class_acc[bold]", render.styled("[red]kept[/red]", "green")]])
    text = _text(table)
    for literal in ("given weights/erank[features.1]@3", "┃ weights/erank[features.1]@3", "val/class_acc[bold]",
                    "[red]kept[/red]"):
        assert literal in text, text


def test_every_run_status_has_its_colour():
    assert set(RunStatus) <= set(render.STATUS_STYLES)
    assert render.status_text("failed", " (x)").style == render.STATUS_STYLES["failed"]
    assert str(render.status_text("failed", " (x)")) == "failed (x)"
    assert render.status_text("unknown").style == ""


def test_sweep_status_table_prints_errors_literally(capsys):
    rows = [{"job": "0", "run_id": "abc", "status": "completed", "skipped": True, "epochs": 3,
             "overrides": "model=cnn", "error": ""},
            {"job": "1", "run_id": "-", "status": "failed", "skipped": False, "epochs": None,
             "overrides": "optimizer.lr=[0.1]", "error": "KeyError: [missing.key]"}]
    render_table(rows)
    out = capsys.readouterr().out
    assert "completed (skipped: done before)" in out
    assert "optimizer.lr=[0.1]" in out and "KeyError: [missing.key]" in out
    assert "sweep: 1 completed, 1 failed" in out


def test_fmt_cells():
    assert [render.fmt(v) for v in (None, float("nan"), 0.123456, 7, "a[b]")] == ["-", "nan", "0.1235", "7", "a[b]"]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_a_long_table_is_laid_out_exactly_as_rich_lays_it_out(monkeypatch):
    """The fast layout of long tables prints the same characters as rich's own
    layout, aligned columns and statuses included; a table too wide for the console is left to rich."""
    columns = ["run_id", Column("n", justify="right"), Column("c", justify="center"), Column("prop", style="bold"),
               "status"]
    rows = [[f"r{i}", str(i * 37), "x" * (i % 4), "wide—" * (i % 3) + "\a" * (i % 2),  # a bell rich drops
             status_text("completed" if i % 2 else "failed")] for i in range(render.FAST_TABLE_ROWS + 5)]
    for colours in ({}, {"force_terminal": True, "color_system": "truecolor"}):  # a pipe, then a colour terminal
        reference = Console(width=120, markup=False, file=io.StringIO(), **colours)
        reference.print(render.table("title — x", columns, rows))
        fast = Console(width=120, markup=False, file=io.StringIO(), **colours)
        monkeypatch.setattr(render, "console", fast)
        render.print_table("title — x", columns, rows)
        got, want = fast.file.getvalue(), reference.file.getvalue()
        assert ("\x1b[" in got) == ("\x1b[" in want) == bool(colours)
        assert ANSI.sub("", got) == ANSI.sub("", want)  # the same characters; a colour may span the padding
        by_columns = Console(width=120, markup=False, file=io.StringIO(), **colours)
        monkeypatch.setattr(render, "console", by_columns)
        render.print_columns("title — x", columns, [list(column) for column in zip(*rows)])
        assert by_columns.file.getvalue() == got  # the same table, given a column at a time
    monkeypatch.setattr(render, "console", Console(width=30, markup=False, file=io.StringIO()))
    assert render._layout("title — x", columns, list(zip(*rows))) is None


def test_a_short_table_given_by_columns_is_printed_as_its_rows_and_a_ragged_one_refused(monkeypatch):
    """Fewer rows than the fast layout takes go through print_table; columns of unequal length are a
    programming error, not a table cut to the shortest."""
    cells = [["a", "b"], ["1", "2"]]
    want, got = (Console(width=80, markup=False, file=io.StringIO()) for _ in range(2))
    monkeypatch.setattr(render, "console", want)
    render.print_table("t", ["x", "y"], list(zip(*cells)))
    monkeypatch.setattr(render, "console", got)
    render.print_columns("t", ["x", "y"], cells)
    assert got.file.getvalue() == want.file.getvalue()
    with pytest.raises(ValueError, match="equal length"):
        render.print_columns("t", ["x", "y"], [["a"] * render.FAST_TABLE_ROWS, ["1"]])


def test_control_characters_from_a_campaign_never_reach_the_terminal(monkeypatch):
    """An escape sequence in a run id, a hyper-parameter name or a title is shown as its code, the
    same by rich's layout and by the fast one; tab and newline-free text is left as it is."""
    hostile = "x\x1b]0;owned\x07\x1b[31m\x9b2J\u202egnp.exe"  # the last: a right-to-left override
    for count in (1, render.FAST_TABLE_ROWS + 1):  # rich's own layout, then the fast one
        for by_columns in (False, True):
            out = io.StringIO()
            monkeypatch.setattr(render, "console", Console(width=200, markup=False, file=out))
            if by_columns:
                render.print_columns(f"title {hostile}", [hostile, "status"], [[hostile] * count,
                                                                              [status_text(hostile)] * count])
            else:
                render.print_table(f"title {hostile}", [hostile, "status"], [[hostile, status_text(hostile)]] * count)
            render.print_line(f"note: {hostile}")
            shown = out.getvalue()
            assert not any(char in shown for char in "\x1b\x07\x9b\u202e"), repr(shown)
            assert shown.count("x\\x1b]0;owned\\x1b[31m\\x9b2J\\u202egnp.exe") == 2 * count + 3  # cells, title, header,
            # and the note
