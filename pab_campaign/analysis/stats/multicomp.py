"""P-value adjustment over one family of tests (Holm, Benjamini–Hochberg), written out and tested
against statsmodels."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
