"""The page's pictures as 256-colour PNGs: smaller, the same to the eye, and a picture that is
transparent, not a PNG, or claims more pixels than a figure has left as it is (never decoded)."""
from __future__ import annotations

import io
import struct
import zlib

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from pab_campaign.analysis.page.model import compact_png


def _figure_png(transparent: bool = False) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    x = np.linspace(0, 10, 200)
    for shift in range(5):
        axes.plot(x, np.sin(x + shift), label=f"group {shift}")
        axes.fill_between(x, np.sin(x + shift) - 0.2, np.sin(x + shift) + 0.2, alpha=0.15)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", transparent=transparent)
    plt.close(figure)
    return buffer.getvalue()


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=float)


def test_a_figure_gets_smaller_and_looks_the_same():
    original = _figure_png()
    compacted = compact_png(original)
    assert len(compacted) < 0.6 * len(original)
    difference = np.abs(_pixels(compacted) - _pixels(original))
    assert difference.mean() < 1.0 and np.quantile(difference, 0.99) < 16  # of 255


def test_what_it_must_not_touch_is_left_as_it_is():
    transparent = _figure_png(transparent=True)
    assert compact_png(transparent) == transparent
    assert compact_png(b"not a png at all") == b"not a png at all"
    # a PNG header claiming 100,000 x 100,000 pixels: refused on its size, never decoded
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    claimed = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    assert compact_png(claimed) == claimed
