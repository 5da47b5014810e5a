"""Rank correlation over runs: average ranks, and Spearman's ρ partialled on controls (MBE's test).

Only `scipy.special` is imported (the Student-t CDF), which keeps the analysis command line fast
to start.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import stdtr


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `values`, ties given the mean of the ranks they span (like scipy's rankdata)."""
    x = np.asarray(values, dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True, equal_nan=False)
    ends = np.cumsum(counts)
    return ((2 * ends - counts + 1) / 2.0)[inverse.ravel()]


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
    x: ArrayLike, y: ArrayLike,
    controls: Sequence[ArrayLike] = (), categorical: Sequence[ArrayLike] = (),
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
    design = _design([np.asarray(c, float) for c in controls], [np.asarray(c) for c in categorical], n)
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


def explained_by_controls(values: ArrayLike, controls: Sequence[ArrayLike] = (),
                          categorical: Sequence[ArrayLike] = ()) -> bool:
    """Whether the controls rank `values` (shape (n,)) entirely: the residual of its ranks on
    ``[1, ranked controls, one-hot categorical controls]`` vanishes, so no partial ρ of it exists
    (a copy of the baseline, or a constant)."""
    ranks = average_ranks(np.asarray(values, float))
    design = _design([np.asarray(c, float) for c in controls], [np.asarray(c) for c in categorical], len(ranks))
    beta, *_ = np.linalg.lstsq(design, ranks, rcond=None)
    return _vanishes(ranks - design @ beta, ranks)
