"""The Marginal Baseline Eval on plain arrays, like mbe-eval's API: `evaluate` makes one test of a
metric against a target beyond a baseline; `simulate` draws mbe-eval's synthetic demo."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pab_campaign.analysis.mbe.rule import ALPHA, check_alpha, decide, measure
from pab_campaign.errors import ConfigError


@dataclass(frozen=True)
class MBEReport:
    """The MBE of one metric, like mbe-eval's report: absolute (raw Spearman) r and p, partial r and
    p given the baseline (and controls), `is_loss_proxy`, stage 1, the effect class, the bootstrap
    95 % intervals of both ρ, the number of runs, α and a one-line diagnosis."""

    metric_name: str
    baseline_name: str
    target_name: str
    n: int
    absolute_r: float
    absolute_p: float
    absolute_ci: tuple[float, float]
    partial_r: float
    partial_p: float
    partial_ci: tuple[float, float]
    alpha: float
    stage1: str
    is_loss_proxy: bool | None
    effect_class: str
    diagnosis: str


def evaluate(metric: ArrayLike, *, target: ArrayLike, baseline: ArrayLike, alpha: float = ALPHA,
             controls: Sequence[ArrayLike] | None = None, categorical: Sequence[ArrayLike] = (),
             n_boot: int = 1000, seed: int = 0, metric_name: str = "metric", target_name: str = "target",
             baseline_name: str = "baseline") -> MBEReport:
    """The Marginal Baseline Eval of one metric over runs, without a campaign.

    `target` and `baseline` are keyword-only: mbe-eval passes (metric, baseline, target) by position,
    and that order read as ours would give the opposite verdict silently. mbe-eval's own signature is
    `pab_campaign.compat.mbe_eval.MBEEvaluator`.

    Parameters
    ----------
    metric, target, baseline : sequence of float, shape (n,)
        One value per run: the candidate (e.g. FIM_norm at epoch 20), the final result (e.g. test
        accuracy) and the trivial baseline (e.g. validation loss at epoch 20). No NaN.
    alpha : float
        Significance level in (0, 1).
    controls : sequence of sequences of float, each shape (n,), optional
        Further numeric controls besides the baseline (ranked, like the baseline).
    categorical : sequence of sequences, each shape (n,)
        Categorical controls (one-hot, first level dropped), e.g. the architecture.
    n_boot, seed : int
        Resamples and seed of the bootstrap intervals.
    metric_name, target_name, baseline_name : str
        Names used in the diagnosis.

    Returns
    -------
    MBEReport
        Stage 1 passes when the raw Spearman p < alpha; ``is_loss_proxy`` when the partial Spearman p
        given the baseline (and controls) > alpha; the effect class of `stats.effect_class`.

    Raises
    ------
    ConfigError
        When alpha is not in (0, 1), the arrays differ in length, or a value is NaN or infinite.

    Notes
    -----
    mbe-eval's rule (``MBEEvaluator.evaluate``: ``spearmanr`` for stage 1,
    ``pingouin.partial_corr(method="spearman")`` and ``p > alpha`` for stage 4) on the same arrays,
    which the tests check; the partial ρ is `stats.partial_spearman`. One metric is one test, so no
    p-value is adjusted (an audit of several adjusts them over the family).

    Examples
    --------
    mbe-eval's demo: a metric built from the early loss, and one with a signal of its own.

    >>> runs = simulate()
    >>> proxy = evaluate(runs.loss_proxy, target=runs.final_acc, baseline=runs.early_loss, n_boot=200)
    >>> proxy.stage1, proxy.is_loss_proxy, round(proxy.partial_p, 2)
    ('PASS', True, 0.68)
    >>> evaluate(runs.independent, target=runs.final_acc, baseline=runs.early_loss, n_boot=200).is_loss_proxy
    False
    """
    alpha = check_alpha(alpha)
    arrays = [np.asarray(a, float) for a in (metric, target, baseline, *(controls or ()))]
    if len({len(a) for a in arrays} | {len(np.asarray(c)) for c in categorical}) != 1:
        raise ConfigError("metric, target, baseline and controls must have one value per run each (equal lengths)")
    if not all(np.isfinite(a).all() for a in arrays):
        raise ConfigError("metric, target, baseline and controls must be finite numbers (no NaN or inf); "
                          "drop the runs that lack a value")
    association = measure(arrays[0], arrays[1], arrays[2:], categorical, n_boot, seed)
    names = ", ".join([baseline_name, *(f"control {i + 1}" for i in range(len(arrays) - 3 + len(categorical)))])
    verdict = decide(association, association.absolute_p, association.partial_p, alpha, metric_name, target_name,
                     names)
    return MBEReport(metric_name, baseline_name, target_name, association.n, association.absolute_r,
                     association.absolute_p, association.absolute_ci, association.partial_r, association.partial_p,
                     association.partial_ci, alpha, verdict.stage1, verdict.is_loss_proxy, verdict.effect_class,
                     verdict.diagnosis)


@dataclass(frozen=True)
class Simulation:
    """Synthetic runs, one value per run (shape (n,)): the unobserved capability, the early
    validation loss (the baseline), the final accuracy (the target), a loss proxy (the early loss
    plus noise) and an independent signal (a second reading of the capability, whose error is
    independent of the loss's)."""

    capability: np.ndarray
    early_loss: np.ndarray
    final_acc: np.ndarray
    loss_proxy: np.ndarray
    independent: np.ndarray


def simulate(n_runs: int = 30, seed: int = 42) -> Simulation:
    """mbe-eval's synthetic demo (``simulate_mbe_evaluation``), drawn the same way.

    With numpy's legacy generator seeded with `seed`: capability c ~ N(0, 1); early loss
    ``-c + 0.2·ε₁``; final accuracy ``c + 0.1·ε₂``; the loss proxy ``early loss + 0.3·ε₃`` (the
    demo's "proposed metric"); then, beyond the demo, an independent signal ``c + 0.1·ε₄``. With the
    defaults the first four arrays are the demo's own (Pearson r of proxy and accuracy −0.938,
    p 1.872e-14, as it prints).
    """
    rng = np.random.RandomState(seed)
    capability = rng.randn(n_runs)
    early_loss = -capability + rng.randn(n_runs) * 0.2
    final_acc = capability + rng.randn(n_runs) * 0.1
    loss_proxy = early_loss + rng.randn(n_runs) * 0.3
    independent = capability + rng.randn(n_runs) * 0.1
    return Simulation(capability, early_loss, final_acc, loss_proxy, independent)
