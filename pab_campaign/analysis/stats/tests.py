"""Two-sample tests over runs: Welch's t-test (two-sided)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import stdtr


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
