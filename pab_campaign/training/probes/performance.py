"""Loss and accuracy per split, and the generalization gaps.

Signs (positive = overfitting): `gen_gap = train_acc - split_acc`, `loss_gap = split_loss - train_loss`,
recorded under the held-out split's context (`val/gen_gap`, `test/gen_gap`).
"""
from __future__ import annotations

from dataclasses import dataclass

from pab_campaign.metrics import ACC, GEN_GAP, HELD_OUT, LOSS, LOSS_GAP
from pab_campaign.training.evaluate import Evaluation
from pab_campaign.training.probes import Probe, ProbeContext, Row


def performance_rows(evaluations: dict[str, Evaluation], gaps: bool = True) -> list[Row]:
    """Rows of loss and acc for every split, and (if `gaps` and the train split is there) gen_gap /
    loss_gap for each held-out split."""
    rows: list[Row] = []
    for split, result in evaluations.items():
        rows += [(split, LOSS.name, None, result.loss), (split, ACC.name, None, result.acc)]
    if not gaps or "train" not in evaluations:
        return rows
    train = evaluations["train"]
    for split in HELD_OUT:
        if split in evaluations:
            held = evaluations[split]
            rows += [(split, GEN_GAP.name, None, train.acc - held.acc),
                     (split, LOSS_GAP.name, None, held.loss - train.loss)]
    return rows


@dataclass
class PerformanceProbe(Probe):
    gaps: bool = True
    name = "performance"

    def measure(self, ctx: ProbeContext) -> list[Row]:
        return performance_rows(ctx.evaluations, self.gaps)
