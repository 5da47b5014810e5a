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
