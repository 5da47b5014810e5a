"""The Marginal Baseline Eval on plain arrays: does a metric predict a target beyond a baseline?

The verdict follows mbe-eval (0.1.0), the tool this audit reproduces: stage 1 passes when the
Spearman p of the metric with the target is < α; stage 4 passes when the partial Spearman p, the
baseline (and any further controls) partialled out, is ≤ α, and otherwise the metric is a **loss
proxy**, α = 0.05 by default. The effect class of `stats.effect_class` comes beside it. `evaluate`
makes one such test (no adjustment); `audit.run_audit` makes many and hands `decide` the p-values
adjusted over the family. `simulate` draws mbe-eval's synthetic demo.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pab_campaign.analysis.stats import (
    CORRECTIONS,
    MIN_RUNS,
    bootstrap_rho_cis,
    effect_class,
    explained_by_controls,
    partial_spearman,
)
from pab_campaign.errors import ConfigError

ALPHA = 0.05
PASS, FAIL, LOSS_PROXY = "PASS", "FAIL", "loss proxy"


def check_alpha(alpha: float) -> float:
    """`alpha` when it is a significance level in (0, 1), else a ConfigError naming the fix."""
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"alpha {alpha} is not a significance level in (0, 1); use e.g. 0.05")
    return float(alpha)


def check_correction(correction: str) -> str:
    """`correction` when it is one of CORRECTIONS, else a ConfigError listing them."""
    if correction not in CORRECTIONS:
        raise ConfigError(f"unknown correction '{correction}'; choose one of {', '.join(CORRECTIONS)}")
    return correction


@dataclass(frozen=True)
class Association:
    """What one metric's test measured over n runs: raw Spearman ρ with the target and its p, the
    partial ρ given the controls and its p, their bootstrap 95 % intervals, the partial's degrees of
    freedom, and whether the controls rank the metric or the target entirely (no partial ρ then)."""

    n: int
    absolute_r: float
    absolute_p: float
    absolute_ci: tuple[float, float]
    partial_r: float
    partial_p: float
    partial_ci: tuple[float, float]
    dof: int
    metric_explained: bool = False
    target_explained: bool = False


def measure(metric: Sequence[float], target: Sequence[float], controls: Sequence[Sequence[float]] = (),
            categorical: Sequence[Sequence[object]] = (), n_boot: int = 1000, seed: int = 0) -> Association:
    """Raw and partial Spearman ρ of `metric` with `target` (shape (n,) each, no NaN) given the
    numeric `controls` (ranked) and `categorical` ones (one-hot), with bootstrap intervals."""
    x, y = np.asarray(metric, float), np.asarray(target, float)
    raw_r, raw_p, _ = partial_spearman(x, y)
    partial_r, partial_p, dof = partial_spearman(x, y, controls, categorical)
    raw_ci, partial_ci = bootstrap_rho_cis(x, y, controls, categorical, n_boot, seed)
    undefined = math.isnan(partial_r) and dof >= 1 and len(x) >= MIN_RUNS
    return Association(len(x), raw_r, raw_p, raw_ci, partial_r, partial_p, partial_ci, dof,
                       undefined and explained_by_controls(x, controls, categorical),
                       undefined and explained_by_controls(y, controls, categorical))


@dataclass(frozen=True)
class Verdict:
    """The decision on one metric: stage 1 (PASS / FAIL, '' when untested), stage 4 (PASS /
    loss proxy / insufficient-data), `is_loss_proxy` (None when untested), the effect class, and a
    one-line diagnosis."""

    stage1: str
    stage4: str
    is_loss_proxy: bool | None
    effect_class: str
    diagnosis: str


def _rho(r: float, p: float, adjusted: float) -> str:
    """'ρ -0.51, p 1.7e-05' (and ', adjusted 3.4e-05' when the adjusted p differs)."""
    text = f"ρ {r:+.2f}, p {p:.2g}"
    return text if adjusted == p or math.isnan(adjusted) else f"{text}, adjusted {adjusted:.2g}"


def decide(association: Association, absolute_p_adj: float, partial_p_adj: float, alpha: float = ALPHA,
           metric_name: str = "metric", target_name: str = "target", baseline_name: str = "baseline") -> Verdict:
    """mbe-eval's verdict and the gated effect class of one metric, on p-values adjusted over the
    family of tests (pass the raw ones for a single test).

    Stage 1 passes when ``absolute_p_adj < alpha``; the metric is a loss proxy when
    ``partial_p_adj > alpha`` (a partial ρ that does not exist because the controls rank the metric
    or the target entirely is a loss proxy too: nothing is left for the metric to add). Fewer than 5
    runs, or more control columns than the runs allow, is `insufficient-data`.
    """
    a = association
    if a.n < MIN_RUNS:
        reason = f"too few runs ({a.n}, at least {MIN_RUNS} needed); launch more runs"
    elif math.isnan(a.absolute_r):
        reason = f"{metric_name} or {target_name} is constant across the runs: nothing to rank"
    elif math.isnan(a.partial_r) and not (a.metric_explained or a.target_explained):
        reason = f"more control columns than {a.n} runs allow (dof {a.dof}); launch more runs or drop controls"
    else:
        reason = ""
    if reason:
        return Verdict("", "insufficient-data", None, "insufficient-data", f"{metric_name}: {reason}")
    stage1 = PASS if absolute_p_adj < alpha else FAIL
    raw = _rho(a.absolute_r, a.absolute_p, absolute_p_adj)
    if a.metric_explained or a.target_explained:
        which = metric_name if a.metric_explained else target_name
        kind = "washout" if a.metric_explained else "inconclusive"
        return Verdict(stage1, LOSS_PROXY, True, kind,
                       f"{metric_name} is a loss proxy: {baseline_name} ranks {which} entirely ({raw} with "
                       f"{target_name}), so nothing is left for it to add")
    significant = partial_p_adj <= alpha
    kind = effect_class(a.absolute_r, a.partial_r, a.n, significant, a.partial_ci)
    partial = _rho(a.partial_r, a.partial_p, partial_p_adj)
    if not significant:
        lead = (f"predicts {target_name} ({raw}) but" if stage1 == PASS
                else f"shows no significant association with {target_name} ({raw}) and")
        diagnosis = (f"{metric_name} is a loss proxy: it {lead} no signal beyond {baseline_name} "
                     f"(partial {partial} > α {alpha:g})")
    elif stage1 == PASS:
        diagnosis = (f"{metric_name} carries signal beyond {baseline_name}: partial {partial} ≤ α {alpha:g}, "
                     f"raw {raw}")
    else:
        diagnosis = (f"{metric_name} carries signal beyond {baseline_name} that only shows once it is controlled "
                     f"for: partial {partial} ≤ α {alpha:g}, raw {raw}")
    return Verdict(stage1, LOSS_PROXY if not significant else PASS, not significant, kind, diagnosis)


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


def evaluate(metric: Sequence[float], target: Sequence[float], baseline: Sequence[float], alpha: float = ALPHA,
             controls: Sequence[Sequence[float]] | None = None, *, categorical: Sequence[Sequence[object]] = (),
             n_boot: int = 1000, seed: int = 0, metric_name: str = "metric", target_name: str = "target",
             baseline_name: str = "baseline") -> MBEReport:
    """The Marginal Baseline Eval of one metric over runs, without a campaign.

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
    >>> proxy = evaluate(runs.loss_proxy, runs.final_acc, runs.early_loss, n_boot=200)
    >>> proxy.stage1, proxy.is_loss_proxy, round(proxy.partial_p, 2)
    ('PASS', True, 0.68)
    >>> evaluate(runs.independent, runs.final_acc, runs.early_loss, n_boot=200).is_loss_proxy
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
