"""pabkit's API (`from pab import ProcessAwareBenchmark, track_learning_curve`) over our Tracker and
the process summary: `core` (the benchmark object and the one-call training), `visualization`
(pabkit's `pab.visualization` plots in our figure style)."""
from pab_campaign.compat.pabkit.core import (
    ProcessAwareBenchmark,
    compare_models,
    evaluate_trajectory,
    track_learning_curve,
)

__all__ = ["ProcessAwareBenchmark", "compare_models", "evaluate_trajectory", "track_learning_curve"]
