"""The analyses' CSV files the page reads from a campaign's `summary/` (`audit`, `states`, `diff`
wrote them, or someone else did: a campaign's files are untrusted input): the columns the page
computes with, and what each must hold. A file that breaks its schema is left out with the reason,
before any value of it reaches a number format, an `int` or the page's JSON."""
from __future__ import annotations

import math

import pandas as pd

# What a column holds: a whole number from 0 up to 2**53 ("count"), a finite number ("finite"),
# or any number, NaN and ±inf included ("number").
COUNT, FINITE, NUMBER = "count", "finite", "number"
MAX_COUNT = 2**53

# Per file the page computes with (by its name without `.csv` and the campaign-id suffix): each
# column it needs, and its kind (None: any text). The other tables it only shows, cell by cell as text
# or number, whatever they hold.
SCHEMAS: dict[str, dict[str, str | None]] = {
    "audit": {"group": None, "metric": None, "n": COUNT, "raw_rho": NUMBER, "raw_ci_low": NUMBER,
              "raw_ci_high": NUMBER, "raw_p_adj": NUMBER, "stage1": None, "partial_rho": NUMBER,
              "partial_ci_low": NUMBER, "partial_ci_high": NUMBER, "partial_p_adj": NUMBER, "verdict": None,
              "is_loss_proxy": None, "effect_class": None, "correction": None, "family_size": COUNT,
              "alpha": FINITE, "diagnosis": None},
    "phases": {"state": COUNT, "occupancy": FINITE, "runs": COUNT, "epoch_from": NUMBER, "epoch_to": NUMBER,
               "description": None},
    "transitions": {"from_state": COUNT, "to_state": COUNT, "runs": COUNT, "probability": FINITE, "feature": None,
                    "smd": NUMBER},
    "directions": {"comparison": None, "direction": COUNT, "variance_a": FINITE, "variance_b": FINITE},
    "composition": {"comparison": None, "direction": COUNT, "subpopulation": None, "label": None, "share": FINITE},
}
# Columns a file may lack (written by an earlier version), and their kind where present.
OPTIONAL: dict[str, dict[str, str]] = {
    "audit": {"partial_family_size": COUNT},
    "directions": {"residual_variance": NUMBER},
    "transitions": {"rank": COUNT},
}


def checked(frame: pd.DataFrame, schema: str) -> tuple[pd.DataFrame | None, str | None]:
    """`frame` (a CSV read as written) with the numeric columns of `SCHEMAS[schema]` as float64, and
    None; or None and why it breaks the schema (a column missing, a value of the wrong kind)."""
    kinds = SCHEMAS[schema]
    missing = [name for name in kinds if name not in frame.columns]
    if missing:
        return None, f"it has no column {', '.join(repr(name) for name in missing[:4])}"
    frame = frame.copy()
    for name, kind in {**kinds, **{n: k for n, k in OPTIONAL.get(schema, {}).items() if n in frame.columns}}.items():
        if kind is None:
            continue
        values = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        for original, value in zip(frame[name], values):
            if not _holds(kind, original, value):
                shown = str(original)[:40]
                return None, f"column {name!r} holds {shown!r}, not {_KIND_TEXT[kind]}"
        frame[name] = values
    return frame, None


_KIND_TEXT = {COUNT: "a whole number from 0", FINITE: "a finite number", NUMBER: "a number"}


def _holds(kind: str, original: object, value: float) -> bool:
    """Whether a cell (`original` as read, `value` as a float, NaN where it is no number) is of `kind`."""
    if math.isnan(value):  # no number, or a NaN written as such (an empty cell, 'nan')
        return kind == NUMBER and (original is None or str(original).strip().lower() in ("", "nan"))
    if kind == COUNT:
        return math.isfinite(value) and value == int(value) and 0 <= value <= MAX_COUNT
    return kind == NUMBER or math.isfinite(value)
