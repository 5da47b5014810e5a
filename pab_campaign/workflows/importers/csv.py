"""Runs from a CSV file, in one of two layouts (one row per value, or one row per epoch):

- long: columns `run`, `epoch` (or `step`), `metric`, `value`, and any hyper-parameter columns;
- wide: columns `run`, `epoch` (or `step`), one column per metric, and hyper-parameter columns.

A file with `metric` and `value` columns is long, any other wide. In the wide layout a column is a
metric when its name is one by the tag rule (it has a `/`, starts with a split such as `val_`, or is
named by `--map`); every other column is a hyper-parameter. An optional `wall_time` column holds Unix
seconds, an optional `status` column the run's status (completed when absent); `run_id` may stand for
`run`. Hyper-parameter columns must hold one value per run (an empty cell: the run lacks it); a
hyper-parameter named as one of those columns is written `hparams.<name>` (`hparams.value`).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from pab_campaign.errors import CampaignError
from pab_campaign.store import RunStatus
from pab_campaign.workflows.importers.source import SPLIT_PREFIXES, Point, SourceRun, parse_scalar

FIXED = ("run", "run_id", "epoch", "step", "wall_time", "metric", "value", "status")
# A hyper-parameter named as a layout column (`value`, `status`, ...) is the column `hparams.<name>`
# (tcbench's spelling), and so is one whose name starts with it: `hparam_column`, `hparam_name`.
HPARAM_PREFIX = "hparams."
MAX_BYTES = 1 << 30


def hparam_column(name: str) -> str:
    """The column of the hyper-parameter `name` in a CSV file: `name`, or `hparams.<name>` where
    `name` is a layout column or starts with that prefix."""
    return f"{HPARAM_PREFIX}{name}" if name in FIXED or name.startswith(HPARAM_PREFIX) else name


def hparam_name(column: str) -> str:
    """The hyper-parameter a CSV column holds (`hparam_column`'s inverse)."""
    name = column.removeprefix(HPARAM_PREFIX)
    return name if column.startswith(HPARAM_PREFIX) and (name in FIXED or name.startswith(HPARAM_PREFIX)) else column


def _is_metric_column(name: str, mapping: dict[str, str]) -> bool:
    return name in mapping or "/" in name or (name.split("_", 1)[0] in SPLIT_PREFIXES and "_" in name)


def read_csv(path: Path, mapping: dict[str, str], steps_per_epoch: int | None = None) -> list[SourceRun]:
    """The runs of the CSV file `path` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        what = "not a regular file (a pipe, a folder)" if os.path.lexists(path) else "no such file"
        raise CampaignError(f"--from csv {path}: {what}; name a CSV file of runs")
    if path.stat().st_size > MAX_BYTES:
        raise CampaignError(f"--from csv {path}: larger than 1 GiB; split it by runs")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise CampaignError(f"--from csv {path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    run_column = "run" if "run" in frame.columns else "run_id" if "run_id" in frame.columns else None
    axis = "epoch" if "epoch" in frame.columns else "step" if "step" in frame.columns else None
    if run_column is None or axis is None:
        raise CampaignError(f"--from csv {path}: needs a `run` column and an `epoch` (or `step`) column; it has "
                            f"{_some(list(frame.columns))}")
    if axis == "epoch" and steps_per_epoch is not None:
        raise CampaignError(f"--from csv {path}: the file counts epochs (an `epoch` column); --steps-per-epoch is "
                            "for a `step` column, leave it out")
    long = "metric" in frame.columns and "value" in frame.columns
    metrics = [] if long else [c for c in frame.columns if c not in FIXED and _is_metric_column(c, mapping)]
    hparams = [c for c in frame.columns if c not in FIXED and c not in metrics]
    if not long and not metrics:
        raise CampaignError(f"--from csv {path}: no metric columns; name them context/metric (val/loss) or "
                            "split_metric (val_loss), use the long layout (run, epoch, metric, value), or --map")
    runs = []
    for name, rows in frame.groupby(run_column, sort=True):
        params = {}
        for column in hparams:
            values = rows[column].unique()
            if len(values) > 1:
                raise CampaignError(f"--from csv {path}: column '{column}' has several values in run '{name}'; a "
                                    "hyper-parameter column holds one value per run (a metric needs a / in its name "
                                    "or --map)")
            if values[0] != "":  # an empty cell: this run lacks the hyper-parameter
                params[hparam_name(column)] = parse_scalar(values[0])
        runs.append(SourceRun("csv", str(name), params, _points(path, rows, axis, metrics if not long else None),
                              _status(path, name, rows)))
    return runs


def _status(path: Path, run: str, rows: pd.DataFrame) -> RunStatus:
    """The run's `status` column (completed when there is none)."""
    values = rows["status"].unique() if "status" in rows.columns else ["completed"]
    try:
        return RunStatus(values[0] if len(values) == 1 else "")
    except ValueError:
        raise CampaignError(f"--from csv {path}: run '{run}' has status {list(values)}; give one of "
                            f"{[s.value for s in RunStatus]} per run") from None


def _number(path: Path, column: str, text: str, whole: bool) -> float:
    try:
        value = float(text) if text.strip() else float("nan")
    except ValueError:
        raise CampaignError(f"--from csv {path}: {column} '{text}' is not a number") from None
    if whole and not (value == value and value.is_integer() and value >= 0):
        raise CampaignError(f"--from csv {path}: {column} '{text}' must be a whole number >= 0")
    return value


def _points(path: Path, rows: pd.DataFrame, axis: str, metrics: list[str] | None) -> list[Point]:
    """Every value of one run: from `metric`/`value` (long) or from the `metrics` columns (wide)."""
    points = []
    for row in rows.to_dict("records"):
        step = int(_number(path, axis, row[axis], whole=True))
        wall = row.get("wall_time")
        wall_time = _number(path, "wall_time", wall, whole=False) if wall not in (None, "") else None
        if metrics is None:
            points.append(Point(row["metric"], step, _number(path, "value", row["value"], False), wall_time))
        else:
            points += [Point(m, step, _number(path, m, row[m], False), wall_time) for m in metrics if row[m] != ""]
    return points


def _some(columns: list[str], most: int = 8, width: int = 40) -> str:
    """The first `most` of `columns`, each cut to `width` characters, for a one-line error."""
    shown = [name if len(name) <= width else name[: width - 1] + "…" for name in columns[:most]]
    return ", ".join(shown) + (f" and {len(columns) - most} more" if len(columns) > most else "")
