"""Tracking observes training without changing it."""
import pandas as pd

from pab_campaign.metrics import lookup
from pab_campaign.store import read_trajectory
from pab_campaign.training.run import execute
from tests.helpers import compose_config


def _run(root, tracking):
    cfg = compose_config([f"campaign.root={root}", "train.epochs=2", "dataset.train_fraction=0.3",
                          "model=mlp", "model.dropout=0.3", "runtime.verbose=false", f"tracking={tracking}",
                          "tracking.probes.robustness.every=1", "tracking.probes.fim.samples=16"]
                         if tracking == "full" else
                         [f"campaign.root={root}", "train.epochs=2", "dataset.train_fraction=0.3",
                          "model=mlp", "model.dropout=0.3", "runtime.verbose=false", f"tracking={tracking}"])
    outcome = execute(cfg)
    assert outcome.status == "completed"
    return read_trajectory(outcome.directory).to_pandas()


def test_full_tracking_leaves_training_bit_identical(tmp_path):
    minimal, full = _run(tmp_path / "a", "minimal"), _run(tmp_path / "b", "full")
    columns = ["epoch", "context", "metric", "value"]

    def core(frame: pd.DataFrame) -> pd.DataFrame:
        chosen = frame[frame.context.isin(["train", "val", "test"]) & frame.metric.isin(["loss", "acc", "batch_loss"])]
        return chosen[columns].astype({"context": str, "metric": str}).reset_index(drop=True)

    pd.testing.assert_frame_equal(core(minimal), core(full), check_exact=True)
    assert {"fgsm_acc", "pgd_acc", "fim_norm", "cka_prev", "churn", "class_acc", "erank"} <= set(full.metric)
    recorded = full[["context", "metric"]].astype(str).drop_duplicates().itertuples(index=False)
    assert [(c, m) for c, m in recorded if lookup(m, c) is None] == []  # the metric registry knows every row
