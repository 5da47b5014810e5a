"""The Marginal Baseline Eval's rule: does a metric predict a target beyond a baseline?

The verdict follows mbe-eval (0.1.0), the tool this audit reproduces: stage 1 passes when the
Spearman p of the metric with the target is < α; stage 4 passes when the partial Spearman p, the
baseline (and any further controls) partialled out, is ≤ α, and otherwise the metric is a **loss
proxy**, α = 0.05 by default. The effect class (`effect_class`) comes beside it. `arrays.evaluate`
makes one such test (no adjustment); `audit.run_audit` makes many and hands `decide` the p-values
adjusted over the family.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pab_campaign.analysis.stats.bootstrap import bootstrap_rho_cis
from pab_campaign.analysis.stats.correlation import explained_by_controls, partial_spearman
from pab_campaign.analysis.stats.multicomp import CORRECTIONS
from pab_campaign.errors import ConfigError, did_you_mean

ALPHA = 0.05


PASS, FAIL, LOSS_PROXY = "PASS", "FAIL", "loss proxy"


def check_alpha(alpha: float) -> float:
    """`alpha` when it is a significance level in (0, 1), else a ConfigError naming the fix."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not 0 < alpha < 1:  # numpy's too
        raise ConfigError(f"alpha {alpha} is not a significance level in (0, 1); use e.g. 0.05")
    return float(alpha)


def check_correction(correction: str) -> str:
    """`correction` when it is one of CORRECTIONS, else a ConfigError listing them."""
    if correction not in CORRECTIONS:
        raise ConfigError(f"unknown correction '{correction}'{did_you_mean(correction, CORRECTIONS)}; choose one of "
                          f"{', '.join(CORRECTIONS)}")
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


def measure(metric: ArrayLike, target: ArrayLike, controls: Sequence[ArrayLike] = (),
            categorical: Sequence[ArrayLike] = (), n_boot: int = 1000, seed: int = 0) -> Association:
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


EFFECT = 0.20


WASHOUT = 0.10


MIN_RUNS = 5


def effect_class(raw: float, partial: float, n: int, partial_significant: bool,
                 partial_ci: tuple[float, float]) -> str:
    """The MBE effect class of a candidate with raw ρ and partial ρ (after the controls) over n runs,
    gated on the uncertainty of the partial ρ.

    Parameters
    ----------
    raw, partial : float
        Spearman ρ with the target, and the partial ρ given the baseline (and further controls).
    n : int
        Runs the two were measured over.
    partial_significant : bool
        Whether the partial ρ is significant: its p-value, adjusted over the audit's family of
        tests, is ≤ α (the same test as the primary verdict).
    partial_ci : (float, float)
        Bootstrap 95 % interval (low, high) of the partial ρ.

    Returns
    -------
    str
        With effect = 0.20 and washout = 0.10, the first rule that matches:
        ``insufficient-data`` (n < 5, or either ρ undefined); ``washout`` (|raw| ≥ .2, |partial| < .1
        and the whole interval of the partial inside ±0.1: the metric only restated the baseline);
        when the partial is significant, ``sign-inversion`` (raw ≤ −.2, partial ≥ +.2),
        ``reverse-inversion`` (raw ≥ +.2, partial ≤ −.2), ``hidden-after-control`` (|raw| < .2,
        |partial| ≥ .2: the baseline masked a signal) and ``survives`` (both ≥ .2, same sign);
        ``inconclusive`` for anything else (e.g. a pattern whose partial is not significant, a small
        partial whose interval still reaches past ±0.1).

    Notes
    -----
    The effect sizes alone over-read small samples: over 12 runs a metric of pure noise reaches
    |partial| ≥ .2 in about a third of audits. Requiring the significance of the partial, and an
    interval inside the washout band for a washout, keeps each class to what the data can show.

    Examples
    --------
    >>> effect_class(-0.51, -0.13, 64, partial_significant=False, partial_ci=(-0.38, 0.14))
    'inconclusive'
    >>> effect_class(0.83, 0.62, 64, partial_significant=True, partial_ci=(0.45, 0.76))
    'survives'
    >>> effect_class(-0.66, -0.03, 64, partial_significant=False, partial_ci=(-0.09, 0.08))
    'washout'
    """
    if n < MIN_RUNS or math.isnan(raw) or math.isnan(partial):
        return "insufficient-data"
    low, high = partial_ci
    if abs(raw) >= EFFECT and abs(partial) < WASHOUT:
        return "washout" if low >= -WASHOUT and high <= WASHOUT else "inconclusive"
    if not partial_significant:
        return "inconclusive"
    if raw <= -EFFECT and partial >= EFFECT:
        return "sign-inversion"
    if raw >= EFFECT and partial <= -EFFECT:
        return "reverse-inversion"
    if abs(raw) < EFFECT and abs(partial) >= EFFECT:
        return "hidden-after-control"
    if abs(raw) >= EFFECT and abs(partial) >= EFFECT:
        return "survives"
    return "inconclusive"
