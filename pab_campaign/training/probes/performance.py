"""Loss, accuracy and macro precision, recall and F1 per split, and the generalization gaps.

`precision`, `recall` and `f1` are macro averages over the classes (`evaluate.macro_scores`,
scikit-learn's `average="macro", zero_division=0`); they need the split's predictions, so a Tracker
given only losses and accuracies records loss and acc alone.

Signs (positive = overfitting): `gen_gap = train_acc - split_acc`, `loss_gap = split_loss - train_loss`,
recorded under the held-out split's context (`val/gen_gap`, `test/gen_gap`).
"""
from __future__ import annotations

from dataclasses import dataclass

from pab_campaign.metrics import ACC, F1, GEN_GAP, HELD_OUT, LOSS, LOSS_GAP, PRECISION, RECALL
from pab_campaign.training.evaluate import Evaluation
from pab_campaign.training.probes import Probe, ProbeContext, Row


def performance_rows(evaluations: dict[str, Evaluation], gaps: bool = True) -> list[Row]:
    """Rows of loss, acc, precision, recall and f1 (macro; only where the split's predictions are there)
    for every split, and (if `gaps` and the train split is there) gen_gap / loss_gap for each held-out split."""
    rows: list[Row] = []
    for split, result in evaluations.items():
        rows += [(split, LOSS.name, None, result.loss), (split, ACC.name, None, result.acc)]
        scores = result.macro_scores()
        if scores is not None:
            rows += [(split, metric.name, None, value) for metric, value in zip((PRECISION, RECALL, F1), scores)]
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
    # precision, recall and f1 only where a split's predictions are there, which a user's own loop
    # does not give: its own val/f1 is its to record
    metrics = (LOSS, ACC, GEN_GAP, LOSS_GAP)

    def measure(self, ctx: ProbeContext) -> list[Row]:
        return performance_rows(ctx.evaluations, self.gaps)
