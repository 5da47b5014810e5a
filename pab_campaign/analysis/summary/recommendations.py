"""pabkit's three recommendations for one run (pure: a process summary in, sentences with numbers out).

From a `trajectory_summary` dict: **overfitting** when the loss gap grows (pabkit's rule: its
trend is positive, any growth) or the val loss rises for good (`overfit_onset`); a **robustness trade-off** when
a robustness metric ends more than 10 % below its peak (relative degradation); **instability**
when the learning stability's std exceeds 0.1. Each recommendation quotes the numbers that
triggered it, and `Rules` holds the thresholds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recommendation:
    """One recommendation: its `topic` (overfitting, robustness or instability), a sentence with the
    numbers that triggered it, and those numbers by summary name."""

    topic: str
    message: str
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    """pabkit's thresholds: a loss gap growing by more than `loss_gap_growth` (last − first, nats;
    pabkit: any growth); a robustness metric ending more than `robustness_degradation_pct` % below its
    peak; a learning-stability std above `instability_std`."""

    loss_gap_growth: float = 0.0
    robustness_degradation_pct: float = 10.0
    instability_std: float = 0.1


PABKIT_RULES = Rules()

def _epoch(value: float) -> str:
    return f"{value:g}"


def _finite(summary: dict[str, float], name: str) -> bool:
    return math.isfinite(summary.get(name, math.nan))


def _overfitting(summary: dict[str, float], rules: Rules) -> list[Recommendation]:
    trend = summary.get("loss_gap_trend", math.nan)
    growing, onset = trend > rules.loss_gap_growth, _finite(summary, "overfit_onset")
    if not (growing or onset):
        return []
    parts = []
    if growing:
        parts.append(f"the loss gap (val − train loss) grew by {trend:.3g} to {summary['loss_gap_final']:.3g} "
                     f"(max {summary['loss_gap_max']:.3g})")
    stop = (f"epoch {_epoch(summary['early_stop_epoch'])} (val loss {summary['early_stop_val_loss']:.3g})"
            if _finite(summary, "early_stop_epoch") else "the epoch of lowest val loss")
    if onset:
        parts.append(f"val loss rose for good from epoch {_epoch(summary['overfit_onset'])}")
        advice = f"consider early stopping at {stop} or more regularisation"
    else:
        advice = (f"val loss has not risen for good yet (lowest at {stop}); consider more regularisation, or early "
                  "stopping if the gap keeps growing")
    names = ("loss_gap_trend", "loss_gap_final", "loss_gap_max", "overfit_onset", "early_stop_epoch",
             "early_stop_val_loss")
    return [Recommendation("overfitting", f"overfitting: {', and '.join(parts)}; {advice}",
                           {name: summary[name] for name in names if _finite(summary, name)})]


def _robustness(summary: dict[str, float], rules: Rules) -> list[Recommendation]:
    found = []
    suffix = "_degradation_pct"
    for name in sorted(n for n in summary if n.endswith(suffix)):
        if not summary[name] > rules.robustness_degradation_pct:
            continue
        metric = name[: -len(suffix)]
        peak, epoch, final = (summary[f"{metric}_{part}"] for part in ("peak", "peak_epoch", "final"))
        found.append(Recommendation(
            "robustness",
            f"robustness trade-off: {metric} peaked at {peak:.3g} at epoch {_epoch(epoch)} and ended at {final:.3g}, "
            f"{summary[name]:.1f} % below its peak (threshold {rules.robustness_degradation_pct:g} %); consider the "
            f"model of epoch {_epoch(epoch)} or adversarial training",
            {f"{metric}_peak": peak, f"{metric}_peak_epoch": epoch, f"{metric}_final": final, name: summary[name]}))
    return found


def _instability(summary: dict[str, float], rules: Rules) -> list[Recommendation]:
    std = summary.get("stability_std", math.nan)
    if not std > rules.instability_std:
        return []
    return [Recommendation(
        "instability",
        f"instability: learning stability |ΔL_val|/L_val has std {std:.3g} (threshold {rules.instability_std:g}), "
        f"max {summary['stability_max']:.3g} at epoch {_epoch(summary['stability_max_epoch'])}; consider a lower "
        "learning rate, a warm-up or gradient clipping",
        {name: summary[name] for name in ("stability_std", "stability_max", "stability_max_epoch")})]


def recommend(summary: dict[str, float], rules: Rules = PABKIT_RULES) -> list[Recommendation]:
    """The recommendations a run's summary triggers, in the order overfitting, robustness, instability.

    >>> summary = {"stability_std": 0.25, "stability_max": 0.9, "stability_max_epoch": 3.0}
    >>> [r.topic for r in recommend(summary)], recommend(summary)[0].evidence["stability_std"]
    (['instability'], 0.25)
    >>> recommend({"stability_std": 0.05})
    []
    """
    return [*_overfitting(summary, rules), *_robustness(summary, rules), *_instability(summary, rules)]
