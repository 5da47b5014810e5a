"""`campaign.objective`: the float a sweep's task function returns, computed from the run's
trajectory exactly as the campaign index (`report`) computes `<context>/<metric>@last|@best`:
the value at the run's last epoch of that metric, or at the epoch of minimal finite val/loss
(the earliest on a tie)."""
from __future__ import annotations

import math
import re
from pathlib import Path

from pab_campaign.errors import ConfigError, StoreError, did_you_mean
from pab_campaign.store import RunStatus, read_trajectory

_OBJECTIVE = re.compile(r"^(?P<context>[^/@\[\]]+)/(?P<metric>[^/@\[\]]+)@(?P<at>last|best)\Z")


def parse_objective(text: str) -> tuple[str, str, str]:
    """(context, metric, 'last'|'best') of `campaign.objective`; ConfigError naming the form otherwise."""
    match = _OBJECTIVE.match(str(text).strip())
    if not match:
        raise ConfigError(f"campaign.objective='{text}' is not a metric at @last or @best; "
                          "write context/metric@last|@best, e.g. campaign.objective=val/loss@best")
    return match.group("context"), match.group("metric"), match.group("at")


def objective_value(run_directory: Path, objective: str) -> float:
    """The value of `objective` in the run at `run_directory`; NaN when the run has no finite value
    there (no finite val/loss for @best, a diverged run's non-finite loss). ConfigError when the run
    never recorded that metric: every run of the sweep would return NaN, and a study would read its
    runs as failed."""
    context, metric, at = parse_objective(objective)
    table = read_trajectory(run_directory)
    columns = [table.column(name).to_pylist() for name in ("epoch", "context", "metric", "value", "key")]
    rows = [(e, c, m, v) for e, c, m, v, k in zip(*columns) if k is None]
    wanted = {e: v for e, c, m, v in rows if c == context and m == metric}
    if not wanted:
        recorded = sorted({f"{c}/{m}" for _, c, m, _ in rows}, key=lambda name: (not name.startswith("val/"), name))
        raise ConfigError(f"campaign.objective={objective}: run {run_directory.name} did not record {context}/{metric}"
                          f"{did_you_mean(f'{context}/{metric}', recorded)}; it records {', '.join(recorded[:12])}"
                          f"{', ...' if len(recorded) > 12 else ''} (name one of those, e.g. val/loss@best)")
    if at == "last":
        value = wanted[max(wanted)]
    else:
        losses = [(v, e) for e, c, m, v in rows if c == "val" and m == "loss" and v is not None and math.isfinite(v)]
        if not losses:
            return math.nan
        value = wanted.get(min(losses)[1])
    return float(value) if value is not None and math.isfinite(value) else math.nan


def job_objective(status: RunStatus, run_directory: Path, objective: str) -> float:
    """What a sweep's job returns: the run's `objective` when it completed (also when skipped as
    completed before), else NaN (failed, diverged, preempted, or written by another process)."""
    if status != RunStatus.COMPLETED:
        return math.nan
    try:
        return objective_value(run_directory, objective)
    except StoreError:
        return math.nan
