"""The code and style the page carries inline, and the Content-Security-Policy that allows exactly
them: the pinned chart library (uPlot, MIT, vendored in `vendor/` with its licence), the page's own
script (`static/page.js`), the style sheet, and data blocks escaped so that no value ends a script."""
from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib.resources import files

UPLOT_VERSION = "1.6.32"  # npm `uplot`, dist/uPlot.iife.min.js and dist/uPlot.min.css, unmodified


@cache
def _read(folder: str, name: str) -> str:
    return files("pab_campaign.analysis.page").joinpath(folder).joinpath(name).read_text(encoding="utf-8")


def script() -> str:
    """The one inline script: uPlot, then the page's charts."""
    return _read("vendor", "uPlot.iife.min.js") + "\n" + _read("static", "page.js")


def style() -> str:
    """The one inline style sheet: uPlot's, then the page's own (`static/page.css`)."""
    return _read("vendor", "uPlot.min.css") + "\n" + _read("static", "page.css")


def source_hash(text: str) -> str:
    """`'sha256-…'` of an inline element's exact text, as a CSP source expression."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def csp(script_text: str, style_text: str) -> str:
    """Nothing may load: no default source, pictures only from data: URIs, and only the page's own
    script and style sheet, each allowed by the hash of its text."""
    return (f"default-src 'none'; img-src data:; script-src {source_hash(script_text)}; "
            f"style-src {source_hash(style_text)}; base-uri 'none'; form-action 'none'")


def json_block(value: object) -> str:
    """`value` as JSON safe inside `<script type="application/json">`: `<`, `>` and `&` written as
    \\u escapes (they occur only inside strings), so a campaign's text cannot close the element."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
