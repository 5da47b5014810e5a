"""pabkit's API (`from pab import ProcessAwareBenchmark, track_learning_curve, ...`) over our Tracker and
the process summary: `core` (the benchmark object and the one-call training), `metrics` (pabkit's
metric functions on plain numbers), `visualization` (pabkit's `pab.visualization` plots in our
figure style)."""
from pab_campaign.compat.pabkit.core import (
    ProcessAwareBenchmark,
    compare_models,
    evaluate_trajectory,
    track_learning_curve,
)
from pab_campaign.compat.pabkit.metrics import (
    class_wise_progression,
    generalization_efficiency,
    learning_stability,
    robustness_evolution,
    rule_evolution,
)
from pab_campaign.compat.pabkit.visualization import (
    plot_class_progression,
    plot_generalization_gap,
    plot_learning_trajectory,
    plot_robustness_curve,
)

__all__ = ["ProcessAwareBenchmark", "class_wise_progression", "compare_models", "evaluate_trajectory",
           "generalization_efficiency", "learning_stability", "plot_class_progression", "plot_generalization_gap",
           "plot_learning_trajectory", "plot_robustness_curve", "robustness_evolution", "rule_evolution",
           "track_learning_curve"]
