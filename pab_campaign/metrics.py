"""Metric names both halves share: `context/metric[key]@epoch`, as runs record them and commands take them."""
from __future__ import annotations

import re
from dataclasses import dataclass

from pab_campaign.errors import CampaignError

_SPEC = re.compile(r"^(?P<context>[^/@\[\]]+)/(?P<metric>[^/@\[\]]+)(\[(?P<key>[^\]]+)\])?(@(?P<epoch>\d+))?$")


@dataclass(frozen=True)
class MetricSpec:
    """`context/metric[key]@epoch` as typed on the command line (key and epoch optional)."""

    context: str
    metric: str
    key: str | None = None
    epoch: int | None = None

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        match = _SPEC.match(text.strip())
        if not match:
            raise CampaignError(
                f"'{text}' is not a metric name; write context/metric[key]@epoch, e.g. val/loss@3 or weights/erank"
            )
        epoch = match.group("epoch")
        return cls(match.group("context"), match.group("metric"), match.group("key"),
                   None if epoch is None else int(epoch))

    @property
    def label(self) -> str:
        key = f"[{self.key}]" if self.key else ""
        at = f"@{self.epoch}" if self.epoch is not None else ""
        return f"{self.context}/{self.metric}{key}{at}"


# What a run may record: `context/metric` or `context/metric[key]`. Context and metric are letters,
# digits, `_`, `.` and `-` (so every command can name them, `@epoch` and lists included); a key is any
# text without brackets, `@` or commas.
_PART = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_RECORDED = re.compile(rf"^(?P<context>{_PART})/(?P<metric>{_PART})(\[(?P<key>[^\[\]@,]+)\])?$")
# Contexts the commands give their own meaning (`summary/<name>`: a whole-run process summary).
RESERVED_CONTEXTS = frozenset({"summary"})
NAME_RULE = ("write context/metric or context/metric[key] with letters, digits, _ . - (e.g. val/f1, "
             "probe/sharpness, weights/norm[fc1]), so that commands can name it (audit --metric val/f1)")


def recorded_name(text: str) -> tuple[str, str, str | None]:
    """(context, metric, key) of a metric name a run records; CampaignError saying the rule otherwise."""
    match = _RECORDED.match(text) if isinstance(text, str) else None
    if not match:
        raise CampaignError(f"'{text}' is not a metric name to record; {NAME_RULE}")
    if match.group("context") in RESERVED_CONTEXTS:
        raise CampaignError(f"'{text}': the context '{match.group('context')}' is reserved for whole-run summaries "
                            "(report --metrics summary/<name>); choose another context, e.g. val or probe")
    return match.group("context"), match.group("metric"), match.group("key")


def label(context: str, metric: str, key: str | None = None) -> str:
    """`context/metric[key]`, the name commands take."""
    return f"{context}/{metric}" + (f"[{key}]" if key is not None else "")
