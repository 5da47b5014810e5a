"""`--where KEY=VALUE`: keep the runs whose KEY compares to VALUE, before any grouping.

KEY is a hyper-parameter (`optimizer.lr`, its index column `optimizer.lr@hparam` too), a run field
(`status`, `campaign`, `host`, ...) or a metric column (`val/acc@last`). Operators: `=`, `!=`, `>`,
`>=`, `<`, `<=`, and `KEY in [a,b]`. A numeric column compares numbers; any other compares text
(`null` matches a missing value)."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from pab_campaign.analysis.campaign.index import hparam_key
from pab_campaign.analysis.campaign.index_layout import TCBENCH_PREFIX
from pab_campaign.errors import CampaignError, did_you_mean

_CONDITION = re.compile(r"^\s*(?P<key>[^=!<>\s]+)\s*(?P<op>!=|>=|<=|=|>|<|\sin\s)\s*(?P<value>.*?)\s*$")
_FORM = "write KEY=VALUE, KEY!=VALUE, KEY>VALUE (>=, <, <=) or 'KEY in [a,b]', e.g. --where optimizer.lr=0.1"


@dataclass(frozen=True)
class Condition:
    """One `--where`: `key`, `op` (=, !=, >, >=, <, <=, in) and its values (one, or several for `in`)."""

    key: str
    op: str
    values: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.match(text)
        if not match or not match.group("key"):
            raise CampaignError(f"--where '{text}' is not a condition; {_FORM}")
        op = match.group("op").strip()
        value = match.group("value")
        if op == "in":
            if not (value.startswith("[") and value.endswith("]")):
                raise CampaignError(f"--where '{text}': 'in' takes a list, e.g. 'model.name in [mlp,cnn]'")
            values = tuple(v.strip() for v in value[1:-1].split(",") if v.strip())
        else:
            values = (value,)
        return cls(match.group("key"), op, values)


def _column(runs: pd.DataFrame, key: str) -> str:
    bare = key.removeprefix(TCBENCH_PREFIX)  # tcbench's `hparams.<name>`, where no column has the whole name
    for name in (hparam_key(key), key, hparam_key(bare)):
        if name in runs.columns:
            return name
    hparams = sorted(c[: -len("@hparam")] for c in runs.columns if c.endswith("@hparam"))
    known = [*hparams, *(c for c in runs.columns if not c.endswith("@hparam"))]
    raise CampaignError(f"--where: no hyper-parameter, run field or metric '{key}'{did_you_mean(key, known)}; "
                        f"hyper-parameters here: {', '.join(hparams) or 'none'} (or status, campaign, val/acc@last, "
                        "...)")


def _mask(column: pd.Series, condition: Condition) -> pd.Series:
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric:
        numbers: list[float] = []
        for value in condition.values:
            try:
                numbers.append(float(value))
            except ValueError:
                raise CampaignError(f"--where {condition.key}: '{value}' is not a number, and {condition.key} is "
                                    "numeric") from None
        values: list[float] | list[str] = numbers
        left = column.astype(float)
    else:
        if condition.op not in ("=", "!=", "in"):
            raise CampaignError(f"--where {condition.key}{condition.op}...: {condition.key} is not numeric; "
                                "use =, != or in")
        values = list(condition.values)
        left = column.map(lambda v: "null" if v is None or (isinstance(v, float) and pd.isna(v)) else
                          str(v).lower() if isinstance(v, bool) else str(v))
        present = sorted(set(left))
        unknown = next((v for v in values if v not in present), None)
        if unknown is not None and condition.op in ("=", "in") and not left.isin(values).any():
            raise CampaignError(f"--where {condition.key}: no run has the value '{unknown}'"
                                f"{did_you_mean(unknown, present)}; its values: {', '.join(present[:12])}"
                                f"{', ...' if len(present) > 12 else ''}")
    if condition.op in ("=", "in"):
        return left.isin(values)
    if condition.op == "!=":
        return ~left.isin(values)
    compare = {">": left.gt, ">=": left.ge, "<": left.lt, "<=": left.le}[condition.op]
    return compare(values[0])


def filter_runs(runs: pd.DataFrame, conditions: list[str]) -> pd.DataFrame:
    """The rows of `runs` (the index) meeting every condition; CampaignError when none does."""
    if not conditions:
        return runs
    keep = pd.Series(True, index=runs.index)
    for text in conditions:
        condition = Condition.parse(text)
        keep &= _mask(runs[_column(runs, condition.key)], condition)
    if not keep.any():
        raise CampaignError(f"no run matches --where {' --where '.join(conditions)}; "
                            "see the values with `pab-campaign ls <campaign>`")
    return runs[keep]
