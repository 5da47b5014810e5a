"""What a campaign page is made of (sections, tables, figures, what is missing), independent of how it is rendered."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

PNG_DPI = 96


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, and a CSS class (numbers right-aligned, statuses coloured)."""

    text: str
    css: str = ""


@dataclass
class HtmlTable:
    key: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]]


@dataclass
class PageFigure:
    """A figure inline as a PNG data URI (the title its alternative text; '' when the figure is only
    a chart), and optionally the data of an interactive chart that replaces the picture when the
    page's script runs (`charts`)."""

    key: str
    title: str
    caption: str
    uri: str
    chart: dict | None = None

    @property
    def chart_json(self) -> str:
        """The chart's data as a JSON block's safe text."""
        from pab_campaign.analysis.page.assets import json_block

        return json_block(self.chart)


@dataclass(frozen=True)
class Missing:
    """Why a section is empty and the command that fills it."""

    text: str
    command: str = ""


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list[HtmlTable] = field(default_factory=list)
    figures: list[PageFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: Missing | None = None


@dataclass
class Page:
    title: str
    subtitle: list[str]
    sections: list[Section]


def png_uri(figure) -> str:
    """A matplotlib Figure as a `data:image/png;base64,...` URI; the figure is closed."""
    import matplotlib.pyplot as plt

    from pab_campaign.analysis.plots.style import write_png

    buffer = io.BytesIO()
    try:
        write_png(figure, buffer, PNG_DPI)
    finally:
        plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
