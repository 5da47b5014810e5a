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


# The largest picture (pixels) `compact_png` decodes: a figure is a few megapixels, a PNG from a
# campaign may claim anything.
MAX_COMPACTED_PIXELS = 40_000_000


def compact_png(data: bytes) -> bytes:
    """The PNG `data` with a palette of 256 colours (no dithering) where that is smaller: a figure's
    lines, text and antialiasing lose nothing to the eye, and the bytes fall by more than half (the
    demo's figures with every analysis: 2.3 MB, then 1.0 MB). Left as it is when it has transparent
    pixels, is larger than MAX_COMPACTED_PIXELS or cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_COMPACTED_PIXELS or image.format != "PNG":
                return data
            image.load()
            if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema()[0] < 255:
                return data
            palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buffer = io.BytesIO()
        palette.save(buffer, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        return data
    return min(data, buffer.getvalue(), key=len)


def png_data_uri(data: bytes) -> str:
    """PNG bytes as a `data:image/png;base64,...` URI, compacted (`compact_png`)."""
    return "data:image/png;base64," + base64.b64encode(compact_png(data)).decode("ascii")


def png_uri(figure) -> str:
    """A matplotlib Figure as a `data:image/png;base64,...` URI (`png_data_uri`); the figure is closed."""
    import matplotlib.pyplot as plt

    from pab_campaign.analysis.plots.style import write_png

    buffer = io.BytesIO()
    try:
        write_png(figure, buffer, PNG_DPI)
    finally:
        plt.close(figure)
    return png_data_uri(buffer.getvalue())
