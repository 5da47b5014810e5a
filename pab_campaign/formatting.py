"""How a number, a duration or a group of runs reads, the same on the terminal, in figures and on
the HTML page (pure functions; imports nothing of the package)."""
from __future__ import annotations

import math
from collections.abc import Sequence


def number(value: object, digits: int = 4, none: str = "-", nan: str = "nan") -> str:
    """`value` as text: `none` for None, `nan` for NaN (pandas' NA too: `is_missing`), floats to
    `digits` significant digits, anything else as `str` gives it. `number(0.123456)` is `'0.1235'`."""
    if value is None:
        return none
    if isinstance(value, float):
        return nan if math.isnan(value) else f"{value:.{digits}g}"
    return nan if is_missing(value) else str(value)


def duration(seconds: float) -> str:
    """A duration in seconds, rounded up: `45 s`, `3 min 20 s`, `2 h 05 min`; `–` when not finite."""
    if not math.isfinite(seconds):
        return "–"
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


# A group's value of a hyper-parameter its runs lack, in legends and labels.
MISSING_VALUE = "missing"


def value_text(value: object) -> str:
    """A grouping hyper-parameter's value as a label shows it: MISSING_VALUE for None, NaN or
    pandas' NA (the missing value of a whole-number column)."""
    return MISSING_VALUE if is_missing(value) else str(value)


def is_missing(value: object) -> bool:
    """Whether `value` is None, a float NaN or pandas' NA (told by its type's name: this module
    imports no pandas)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ == "NAType"


def group_label(groupby: Sequence[str], key: Sequence[object]) -> str:
    """`name=value, ...` of one group of runs (`value_text`; 'all runs' without grouping)."""
    return ", ".join(f"{name}={value_text(value)}" for name, value in zip(groupby, key)) or "all runs"
