"""What every importer reads a foreign run into, and the rules that turn the foreign names into ours:

- A tag becomes a metric name `context/metric[key]` by one rule: `--map TAG=NAME` first; else
  a tag that is already a metric name is kept (`val/class_acc[3]`, as `export` writes it); else a
  tag with slashes is split at them (`val/loss` → val/loss, `weights/norm/fc1` → weights/norm[fc1]);
  else a tag starting with a split (`train`, `val`, `valid`, `validation`, `test`, `eval`) and `_`,
  `.`, `-`, `:` or a space is split there (`val_loss` → val/loss, `eval_accuracy` → eval/accuracy,
  `test:acc` → test/acc, `val acc` → val/acc); else the tag is a
  training metric (`lr` → train/lr). Characters a name may not hold become `_`. Names are otherwise
  kept as they are (no case change, `eval` stays eval: `--map eval/accuracy=val/acc` renames).
- Text hyper-parameters become numbers, booleans or None where they read as such (`0.1`, `3`, `true`,
  `None`), as the tools store them as text.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from pab_campaign.errors import CampaignError
from pab_campaign.metrics import NAME_RULE, recorded_name
from pab_campaign.store import RunStatus, Scalar

SPLIT_PREFIXES = ("train", "val", "valid", "validation", "test", "eval")
DEFAULT_CONTEXT = "train"
_SPLIT_TAG = re.compile(rf"^(?P<context>{'|'.join(SPLIT_PREFIXES)})[_.\-: ](?P<metric>.+)\Z")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
_NOT_KEY = re.compile(r"[\[\]@,]")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")


@dataclass
class Point:
    """One recorded value: `step` as the tool counts them, `wall_time` Unix seconds (None: unknown)."""

    tag: str
    step: int
    value: float
    wall_time: float | None = None


@dataclass
class SourceRun:
    """One run as another tool recorded it: `name` is its identity there (a directory, a run id),
    `hparams` flat keys → scalars, `points` every scalar value, `started`/`ended` Unix seconds."""

    tool: str
    name: str
    hparams: dict[str, Scalar] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    status: RunStatus = RunStatus.COMPLETED
    started: float | None = None
    ended: float | None = None
    error: str | None = None


def parse_map(items: list[str] | None) -> dict[str, str]:
    """`--map TAG=NAME ...` as {tag: name}; CampaignError naming an item that is not TAG=NAME or whose
    NAME breaks the metric-name rule."""
    mapping: dict[str, str] = {}
    for item in items or []:
        tag, sep, name = item.rpartition("=")
        if not sep or not tag or not name:
            raise CampaignError(f"--map '{item}' is not TAG=NAME; e.g. --map 'eval/accuracy=val/acc'")
        try:
            recorded_name(name)
        except CampaignError:
            raise CampaignError(f"--map '{item}': '{name}' is not a metric name; {NAME_RULE}") from None
        mapping[tag] = name
    return mapping


def metric_for_tag(tag: str, mapping: dict[str, str]) -> tuple[str, str, str | None]:
    """(context, metric, key) of a tool's tag by the module's rule."""
    if tag in mapping:
        return recorded_name(mapping[tag])
    try:
        return recorded_name(tag.strip())
    except CampaignError:
        pass
    parts = [part for part in tag.strip().split("/") if part]
    split = _SPLIT_TAG.match(tag.strip()) if len(parts) == 1 else None
    if split:
        parts = [split.group("context"), split.group("metric")]
    elif len(parts) == 1:
        parts = [DEFAULT_CONTEXT, parts[0]]
    if not parts:
        raise CampaignError(f"tag '{tag}' is empty; name it with --map '{tag}=context/metric'")
    context, metric = (_NOT_NAME.sub("_", part) for part in parts[:2])
    context, metric = (f"_{part}" if part.startswith((".", "-")) else part for part in (context, metric))
    key = _NOT_KEY.sub("_", "/".join(parts[2:])) if len(parts) > 2 else None
    try:
        return recorded_name(f"{context}/{metric}" + (f"[{key}]" if key else ""))
    except CampaignError as exc:
        raise CampaignError(f"tag '{tag}': {exc}; or name it with --map '{tag}=context/metric'") from None


def parse_scalar(text: object) -> Scalar:
    """A hyper-parameter value as a scalar: numbers, booleans and None from their text; finite floats
    that are whole stay floats (`0.0` is not `0`); digits with a leading zero or an underscore
    (`007`, `1_000`) and 'nan' or 'inf' stay text."""
    if text is None or isinstance(text, (bool, int)):
        return text
    if isinstance(text, float):
        return None if math.isnan(text) else text
    value = str(text).strip()
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", ""):
        return None
    if _LEADING_ZERO.match(value) or "_" in value:
        return value  # an identifier such as '007', a date '0912' or 'v1_000', not the number 7 or 1000
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value  # 'nan', 'inf' stay text: run.json holds no such number


def hparams_from_name(name: str) -> dict[str, Scalar]:
    """`key=value` parts of a directory name (split at `,`, `_` before a key, or spaces):
    `lr=0.1,seed=3` and `lr=0.1_seed=3` → {lr: 0.1, seed: 3}; {} when it has none."""
    pairs = re.findall(r"([A-Za-z][\w.\-]*?)=([^,\s=]+?)(?=(?:[,\s]|_[A-Za-z][\w.\-]*?=|$))", name)
    return {key: parse_scalar(value) for key, value in pairs}
