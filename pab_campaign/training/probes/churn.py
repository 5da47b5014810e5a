"""Prediction churn on the fixed probe set: the fraction of probe examples whose predicted class
changed since the previous measurement (row `probe/churn`, in [0, 1]; none at the first measurement)."""
from __future__ import annotations

from dataclasses import dataclass

from pab_campaign.metrics import CHURN, PROBE
from pab_campaign.training.probes import Probe, ProbeContext, Row


@dataclass
class ChurnProbe(Probe):
    name = "churn"
    metrics = (CHURN,)
    uses_probe_outputs = True

    def measure(self, ctx: ProbeContext) -> list[Row]:
        current = ctx.probe_outputs()[1].argmax(dim=1)
        previous = ctx.state.get("predictions")
        ctx.state["predictions"] = current
        if previous is None or len(previous) != len(current):
            return []
        return [(PROBE, CHURN.name, None, float((previous != current).double().mean()))]
