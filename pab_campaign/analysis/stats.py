"""Statistics of campaigns, as pure functions of arrays.

Only `scipy.special` is imported (the Student-t quantile and CDF), which keeps the analysis
command line fast to start; scipy.stats and statsmodels are not needed (the multiple-comparison
adjustments are written out here, and tested against statsmodels).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import stdtr, stdtrit

EFFECT = 0.20
WASHOUT = 0.10
MIN_RUNS = 5


def ci95_halfwidth(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the Student-t 95 % confidence interval of the mean, ignoring NaN.

    Parameters
    ----------
    values : sequence of float, shape (n,)
        One sample, e.g. a metric over the seeds of one group; NaN values are left out.

    Returns
    -------
    float
        The half-width h, in the values' own unit: the interval is mean ± h. NaN when fewer than
        two values are left (never an error).

    Notes
    -----
    ``h = t_{0.975, n-1} · s / √n`` with ``s`` the sample standard deviation (ddof=1) and
    ``t_{0.975, n-1}`` the 97.5 % quantile of Student's t with n - 1 degrees of freedom, as tcbench
    reports it. Tested against statsmodels: ``DescrStatsW(x).tconfint_mean()`` gives
    (mean - h, mean + h).

    Examples
    --------
    >>> round(ci95_halfwidth([0.70, 0.72, 0.75, 0.71]), 4)
    0.0344
    >>> ci95_halfwidth([0.70, float("nan")])
    nan
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    std = x.std(ddof=1) if len(x) >= 2 else math.nan
    return float(ci95_halfwidths(np.array([len(x)]), np.array([std]))[0])


def ci95_halfwidths(n: np.ndarray, std: np.ndarray) -> np.ndarray:
    """`ci95_halfwidth` for many samples at once, from their sizes `n` and ddof=1 standard
    deviations `std` (same shape); NaN where n < 2."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stdtrit(np.maximum(n - 1, 1), 0.975) * np.asarray(std, dtype=float) / np.sqrt(n)
    return np.where(n >= 2, half, np.nan)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `values`, ties given the mean of the ranks they span (like scipy's rankdata)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x) != 0) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x))
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def _design(controls: Sequence[np.ndarray], categorical: Sequence[np.ndarray], n: int) -> np.ndarray:
    """[1, ranked numeric controls, one-hot categorical controls (first level dropped)] (n × (1+k))."""
    columns = [np.ones(n)]
    columns += [average_ranks(c) for c in controls]
    for labels in categorical:
        levels = sorted(set(np.asarray(labels).tolist()), key=str)
        columns += [(np.asarray(labels) == level).astype(float) for level in levels[1:]]
    return np.column_stack(columns)


def _vanishes(residual: np.ndarray, ranks: np.ndarray) -> bool:
    """Whether the controls explain `ranks` entirely (a constant, or a copy of a control): the
    residual's sum of squares is rounding error, ≤ 1e-12 of max(n, the ranks' own), and ρ undefined."""
    centred = ranks - ranks.mean()
    return float(residual @ residual) <= 1e-12 * max(float(centred @ centred), len(ranks))


def partial_spearman(
    x: Sequence[float], y: Sequence[float],
    controls: Sequence[Sequence[float]] = (), categorical: Sequence[Sequence[object]] = (),
) -> tuple[float, float, int]:
    """Partial rank correlation of `x` and `y` given controls (Spearman's ρ when there are none).

    Parameters
    ----------
    x, y : sequence of float, shape (n,)
        The two variables, one value per run (no NaN: drop incomplete runs first).
    controls : sequence of sequences of float, each shape (n,)
        Numeric controls, e.g. the baseline metric; they enter as ranks.
    categorical : sequence of sequences, each shape (n,)
        Categorical controls, e.g. a model name; they enter one-hot (first level dropped).

    Returns
    -------
    r : float
        The partial rank correlation in [-1, 1]; NaN when undefined (dof < 1, or the controls
        explain x or y entirely, e.g. a constant).
    p : float
        Two-sided p-value of r from Student's t; NaN when r is.
    dof : int
        Degrees of freedom, ``n - 2 - k``.

    Notes
    -----
    Rank x and y (average ranks for ties), rank the numeric controls, one-hot encode the
    categorical ones; regress both ranks on ``[1, controls]`` by least squares and take the
    Pearson correlation r of the two residuals. With k control columns,
    ``t = r·√(dof / (1 - r²))``, ``dof = n - 2 - k``, and ``p = 2·P(T_dof > |t|)``.
    Tested against ``scipy.stats.spearmanr`` (no control), ``pingouin.partial_corr(method="spearman")``
    (one numeric control), and statsmodels OLS residuals on scipy ranks (several numeric controls,
    categorical dummies).

    Examples
    --------
    >>> x = [1, 2, 3, 4, 5, 6]
    >>> y = [2, 1, 4, 3, 6, 5]
    >>> r, p, dof = partial_spearman(x, y)
    >>> round(r, 4), round(p, 4), dof
    (0.8286, 0.0416, 4)
    >>> from scipy.stats import spearmanr
    >>> round(float(spearmanr(x, y).statistic), 4)
    0.8286

    Both of these follow the trend ``z``; given ``z``, what is left of them runs the other way:

    >>> x, y, z = [1, 3, 2, 5, 4, 6], [2, 1, 4, 3, 6, 5], [1, 2, 3, 4, 5, 6]
    >>> round(partial_spearman(x, y)[0], 4)
    0.4857
    >>> r, p, dof = partial_spearman(x, y, controls=[z])
    >>> round(r, 4), round(p, 4), dof
    (-0.9548, 0.0115, 3)
    """
    rx, ry = average_ranks(np.asarray(x, float)), average_ranks(np.asarray(y, float))
    n = len(rx)
    design = _design([np.asarray(c, float) for c in controls], list(categorical), n)
    k = design.shape[1] - 1
    dof = n - 2 - k
    if dof < 1:
        return math.nan, math.nan, dof
    beta_x, *_ = np.linalg.lstsq(design, rx, rcond=None)
    beta_y, *_ = np.linalg.lstsq(design, ry, rcond=None)
    ex, ey = rx - design @ beta_x, ry - design @ beta_y
    if _vanishes(ex, rx) or _vanishes(ey, ry):
        return math.nan, math.nan, dof
    denominator = math.sqrt(float(ex @ ex) * float(ey @ ey))
    r = float(np.clip(ex @ ey / denominator, -1.0, 1.0))
    if abs(r) == 1.0:
        return r, 0.0, dof
    t = r * math.sqrt(dof / (1 - r * r))
    return r, float(2 * stdtr(dof, -abs(t))), dof


def explained_by_controls(values: Sequence[float], controls: Sequence[Sequence[float]] = (),
                          categorical: Sequence[Sequence[object]] = ()) -> bool:
    """Whether the controls rank `values` (shape (n,)) entirely: the residual of its ranks on
    ``[1, ranked controls, one-hot categorical controls]`` vanishes, so no partial ρ of it exists
    (a copy of the baseline, or a constant)."""
    ranks = average_ranks(np.asarray(values, float))
    design = _design([np.asarray(c, float) for c in controls], list(categorical), len(ranks))
    beta, *_ = np.linalg.lstsq(design, ranks, rcond=None)
    return _vanishes(ranks - design @ beta, ranks)


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


CORRECTIONS = ("holm", "fdr_bh", "none")


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """P-values adjusted for multiple comparisons over one family of tests.

    Parameters
    ----------
    pvalues : sequence of float, shape (m,)
        One p-value per test; NaN (a test that could not be made) is left out of the family and
        stays NaN.
    method : {"holm", "fdr_bh", "none"}
        Holm's step-down adjustment (controls the family-wise error rate), Benjamini–Hochberg's
        step-up adjustment (controls the false discovery rate), or none.

    Returns
    -------
    numpy.ndarray, shape (m,)
        The adjusted p-values, in the order given, each in [p, 1]; reject a test when its adjusted
        p ≤ α.

    Notes
    -----
    With the m finite p-values sorted, p₍₁₎ ≤ … ≤ p₍ₘ₎: Holm gives
    ``p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1)·p₍ⱼ₎)``; Benjamini–Hochberg gives
    ``p̃₍ᵢ₎ = min_{j ≥ i} min(1, m·p₍ⱼ₎ / j)``. Tested against statsmodels'
    ``multipletests(p, method="holm" | "fdr_bh")`` to 1e-12.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, 0.03, float("nan")], "holm").round(4).tolist()
    [0.03, 0.06, 0.06, nan]
    >>> adjust_pvalues([0.01, 0.04, 0.03], "fdr_bh").round(4).tolist()
    [0.03, 0.04, 0.04]
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=float)
    adjusted = p.copy()
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if method == "none" or m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="mergesort")]
    ranked = p[order]
    if method == "holm":
        stepped = np.maximum.accumulate(ranked * np.arange(m, 0, -1))
    else:
        stepped = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """`n_boot` resamples of n runs with replacement (n_boot × n integer indices), seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _resampled_ranks(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Average ranks within each resample: row b of the result ranks `values[index[b]]` (B × n)."""
    _, codes = np.unique(np.asarray(values, float), return_inverse=True)
    levels = int(codes.max()) + 1
    drawn = codes[index]
    rows = np.arange(len(index))[:, None]
    counts = np.bincount((rows * levels + drawn).ravel(), minlength=len(index) * levels).reshape(len(index), levels)
    below = np.cumsum(counts, axis=1) - counts
    return np.take_along_axis(below + (counts + 1) / 2.0, drawn, axis=1)


def resampled_partial_spearman(
    x: Sequence[float], y: Sequence[float], index: np.ndarray,
    controls: Sequence[Sequence[float]] = (), categorical: Sequence[Sequence[object]] = (),
    chunk: int = 256,
) -> np.ndarray:
    """`partial_spearman(...)[0]` on each resample `index[b]` at once (B,); NaN where undefined.

    Equals calling `partial_spearman` on `x[index[b]]`, `y[index[b]]`, ... for every b: ranks are
    recomputed within each resample, residuals are projections on [1, controls] (pseudo-inverse,
    so a categorical level missing from a resample changes nothing).
    """
    index = np.asarray(index)
    n_boot, n = index.shape
    k = len(controls) + sum(max(len(set(np.asarray(c).tolist())) - 1, 0) for c in categorical)
    if n - 2 - k < 1:
        return np.full(n_boot, math.nan)
    rx, ry = _resampled_ranks(np.asarray(x, float), index), _resampled_ranks(np.asarray(y, float), index)
    columns = [_resampled_ranks(np.asarray(c, float), index) for c in controls]
    for labels in categorical:
        labels = np.asarray(labels)
        levels = sorted(set(labels.tolist()), key=str)
        columns += [(labels == level).astype(float)[index] for level in levels[1:]]
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    total_x, total_y = np.einsum("bn,bn->b", rx, rx), np.einsum("bn,bn->b", ry, ry)
    if columns:
        design = np.stack([c - c.mean(axis=1, keepdims=True) for c in columns], axis=2)
        for start in range(0, n_boot, chunk):
            part = slice(start, start + chunk)
            pinv = np.linalg.pinv(design[part])
            for r in (rx, ry):
                r[part] -= np.einsum("bnk,bk->bn", design[part], np.einsum("bkn,bn->bk", pinv, r[part]))
    ssx, ssy = np.einsum("bn,bn->b", rx, rx), np.einsum("bn,bn->b", ry, ry)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(np.einsum("bn,bn->b", rx, ry) / np.sqrt(ssx * ssy), -1.0, 1.0)
    r[(ssx <= 1e-12 * np.maximum(total_x, n)) | (ssy <= 1e-12 * np.maximum(total_y, n))] = math.nan
    return r


def percentile_ci(draws: np.ndarray) -> tuple[float, float]:
    """Percentile 2.5 / 97.5 interval of the finite `draws`; (NaN, NaN) when there are none."""
    finite = np.asarray(draws, float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_rho_cis(
    x: Sequence[float], y: Sequence[float], controls: Sequence[Sequence[float]] = (),
    categorical: Sequence[Sequence[object]] = (), n_boot: int = 1000, seed: int = 0,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile 95 % bootstrap intervals of the raw Spearman ρ(x, y) and of the partial ρ given the
    controls, both over the same resamples of runs.

    Parameters
    ----------
    x, y, controls, categorical
        As in `partial_spearman`: one value per run, shape (n,) each.
    n_boot : int
        Number of resamples of the n runs (drawn with replacement).
    seed : int
        Seed of the resampling; the same seed gives the same intervals.

    Returns
    -------
    raw : (float, float)
        (low, high) of the raw ρ.
    partial : (float, float)
        (low, high) of the partial ρ; (NaN, NaN) without controls.

    Notes
    -----
    Draw ``n_boot`` index vectors of n runs with replacement (``numpy.random.default_rng(seed)``);
    on each resample, rank again and compute ρ as `partial_spearman` does (resamples where it is
    undefined are left out); the interval is the 2.5th and 97.5th percentile of the draws. Each
    resample's ρ is tested against ``scipy.stats.spearmanr`` and a loop of `partial_spearman` over
    the same indices.

    Examples
    --------
    >>> x = [1, 2, 3, 4, 5, 6, 7, 8]
    >>> y = [2, 1, 4, 3, 6, 5, 8, 7]
    >>> raw, partial = bootstrap_rho_cis(x, y, n_boot=200, seed=0)
    >>> raw[0] < partial_spearman(x, y)[0] < raw[1]
    True
    >>> raw == bootstrap_rho_cis(x, y, n_boot=200, seed=0)[0]
    True
    >>> partial
    (nan, nan)
    """
    index = bootstrap_indices(len(np.asarray(x)), n_boot, seed)
    raw = percentile_ci(resampled_partial_spearman(x, y, index))
    if not len(controls) and not len(categorical):
        return raw, (math.nan, math.nan)
    return raw, percentile_ci(resampled_partial_spearman(x, y, index, controls, categorical))


def welch_test(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's two-sided t-test of mean(a) = mean(b), and Cohen's d.

    Parameters
    ----------
    a, b : sequence of float
        The two samples (NaN values left out).

    Returns
    -------
    dict
        ``t = (mean_a − mean_b) / √(s_a²/n_a + s_b²/n_b)``; ``dof`` by Welch–Satterthwaite,
        ``(s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1))``;
        ``p = 2 · P(T_dof ≥ |t|)``; ``cohen_d = (mean_a − mean_b) / s_pooled`` (ddof 1); and the
        sizes and means. NaN (never an error) with fewer than two values on a side or no spread.

    Notes
    -----
    p is two-sided for either sign of t (the latent-state reference code's p is wrong when t is
    negative). Tested against ``scipy.stats.ttest_ind(equal_var=False)`` for both signs and against
    pingouin's Welch test and Cohen's d.

    Examples
    --------
    >>> result = welch_test([12, 14, 15, 13, 16], [9, 10, 12, 8])
    >>> round(result["t"], 3), round(result["dof"], 2), round(result["p"], 4)
    (3.833, 6.3, 0.0079)
    >>> round(welch_test([9, 10, 12, 8], [12, 14, 15, 13, 16])["p"], 4)
    0.0079
    """
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    out = {"n_a": len(x), "n_b": len(y), "mean_a": float(x.mean()) if len(x) else math.nan,
           "mean_b": float(y.mean()) if len(y) else math.nan, "t": math.nan, "dof": math.nan, "p": math.nan,
           "cohen_d": math.nan}
    if len(x) < 2 or len(y) < 2:
        return out
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    if va + vb <= 0:
        return out
    t = (x.mean() - y.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
    pooled = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2))
    out.update(t=float(t), dof=float(dof), p=float(2 * stdtr(dof, -abs(t))),
               cohen_d=float((x.mean() - y.mean()) / pooled))
    return out
