"""Descriptive statistics of campaign values: the Student-t CI95 half-width (what tcbench reports)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import stdtrit


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
