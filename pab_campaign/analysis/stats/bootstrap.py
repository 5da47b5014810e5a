"""Percentile bootstrap over resampled runs (seeded): intervals of Spearman and partial Spearman ρ."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """`n_boot` resamples of n runs with replacement (n_boot × n integer indices), seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


# Elements of one block of per-resample value counts (2 MiB of int64): small enough to stay in the
# processor's cache while its ranks are gathered (one block over every resample took 4x longer at
# 50,000 runs).
_COUNTS_BLOCK = 1 << 18
# The largest share of resamples whose ρ may be undefined for an interval to be given.
MAX_UNDEFINED_SHARE = 0.05
# Resample × run elements of one block of resamples (8 MiB per float64 array): the ranks, the design
# and the residuals of a block stay small, so memory does not grow with the number of runs.
_RESAMPLE_BLOCK = 1 << 20


def _codes(values: ArrayLike) -> tuple[np.ndarray, int]:
    """Each value's position among the distinct values (n,), and how many distinct values there are."""
    _, codes = np.unique(np.asarray(values, float), return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1


def _ranks_of(codes: np.ndarray, levels: int, index: np.ndarray) -> np.ndarray:
    """Average ranks within each resample of the values coded `codes` (`_codes`): row b ranks
    `values[index[b]]` (B × n). A value's average rank in a resample is the number of drawn values
    below it plus half of its own count plus one half; counted per distinct value, a block of
    resamples at a time."""
    ranks = np.empty(index.shape)
    block = max(1, _COUNTS_BLOCK // levels)
    for start in range(0, len(index), block):
        drawn = codes[index[start:start + block]]
        rows = np.arange(len(drawn))[:, None]
        counts = np.bincount((rows * levels + drawn).ravel(), minlength=len(drawn) * levels).reshape(-1, levels)
        ranks[start:start + len(drawn)] = np.take_along_axis(np.cumsum(counts, axis=1) - (counts - 1) / 2.0, drawn,
                                                             axis=1)
    return ranks


def _resampled_ranks(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Average ranks within each resample: row b of the result ranks `values[index[b]]` (B × n)."""
    return _ranks_of(*_codes(values), index)


def resampled_partial_spearman(
    x: ArrayLike, y: ArrayLike, index: np.ndarray,
    controls: Sequence[ArrayLike] = (), categorical: Sequence[ArrayLike] = (),
) -> np.ndarray:
    """`partial_spearman(...)[0]` on each resample `index[b]` at once (B,); NaN where undefined.

    Equals calling `partial_spearman` on `x[index[b]]`, `y[index[b]]`, ... for every b: ranks are
    recomputed within each resample, residuals are projections on [1, controls] (pseudo-inverse,
    so a categorical level missing from a resample changes nothing).
    """
    raw, partial = resampled_rhos(x, y, index, controls, categorical)
    return partial if len(controls) or len(categorical) else raw


def resampled_rhos(
    x: ArrayLike, y: ArrayLike, index: np.ndarray,
    controls: Sequence[ArrayLike] = (), categorical: Sequence[ArrayLike] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """The raw ρ(x, y) and the partial ρ given the controls on each resample `index[b]` (B,) each,
    from one ranking of every variable per resample; NaN where undefined (the partial ρ everywhere
    without controls). Resamples go through in blocks of about _RESAMPLE_BLOCK elements."""
    index = np.asarray(index)
    n_boot, n = index.shape
    dummies = []
    for column in categorical:
        labels = np.asarray(column)
        levels = sorted(set(labels.tolist()), key=str)
        dummies += [(labels == level).astype(float) for level in levels[1:]]
    k = len(controls) + len(dummies)
    if n - 2 < 1:
        return np.full(n_boot, math.nan), np.full(n_boot, math.nan)
    coded = [_codes(values) for values in (x, y, *controls)]
    block = max(1, _RESAMPLE_BLOCK // n)
    parts = [_block_rhos(coded, dummies, index[start:start + block], partial=bool(k) and n - 2 - k >= 1)
             for start in range(0, n_boot, block)]
    return np.concatenate([raw for raw, _ in parts]), np.concatenate([partial for _, partial in parts])


def _block_rhos(coded: list[tuple[np.ndarray, int]], dummies: list[np.ndarray], index: np.ndarray,
                partial: bool) -> tuple[np.ndarray, np.ndarray]:
    """(raw ρ, partial ρ) of the resamples `index` (b × n): x, y and the numeric controls coded in
    `coded` (ranked within each resample), the one-hot categorical columns in `dummies`; the partial
    ρ is NaN unless `partial`."""
    rx, ry, *ranked = (_ranks_of(codes, levels, index) for codes, levels in coded)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    total_x, total_y = np.einsum("bn,bn->b", rx, rx), np.einsum("bn,bn->b", ry, ry)
    raw = _correlation(rx, ry, total_x, total_y)
    if not partial:
        return raw, np.full(len(index), math.nan)
    columns = [*ranked, *(dummy[index] for dummy in dummies)]
    design = np.stack([c - c.mean(axis=1, keepdims=True) for c in columns], axis=2)
    pinv = np.linalg.pinv(design)
    for r in (rx, ry):
        r -= np.einsum("bnk,bk->bn", design, np.einsum("bkn,bn->bk", pinv, r))
    return raw, _correlation(rx, ry, total_x, total_y)


def _correlation(rx: np.ndarray, ry: np.ndarray, total_x: np.ndarray, total_y: np.ndarray) -> np.ndarray:
    """Pearson correlation of centred rows (b,), NaN where a row's sum of squares is rounding error
    of its ranks' own (`total_*`, before any residualising) or of n."""
    n = rx.shape[1]
    ssx, ssy = np.einsum("bn,bn->b", rx, rx), np.einsum("bn,bn->b", ry, ry)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(np.einsum("bn,bn->b", rx, ry) / np.sqrt(ssx * ssy), -1.0, 1.0)
    r[(ssx <= 1e-12 * np.maximum(total_x, n)) | (ssy <= 1e-12 * np.maximum(total_y, n))] = math.nan
    return r


def percentile_ci(draws: np.ndarray) -> tuple[float, float]:
    """Percentile 2.5 / 97.5 interval of the `draws` (B,); (NaN, NaN) when more than
    MAX_UNDEFINED_SHARE of them are undefined (NaN): the defined ones are then a selection of the
    resamples (at 7 runs, the 13 % where the baseline did not rank the target entirely), and their
    percentiles would claim a precision the runs do not have."""
    draws = np.asarray(draws, float)
    finite = draws[np.isfinite(draws)]
    if not len(finite) or len(draws) - len(finite) > MAX_UNDEFINED_SHARE * len(draws):
        return math.nan, math.nan
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_rho_cis(
    x: ArrayLike, y: ArrayLike, controls: Sequence[ArrayLike] = (),
    categorical: Sequence[ArrayLike] = (), n_boot: int = 1000, seed: int = 0,
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
    undefined are left out, and where they are more than 5 % of them the interval is (NaN, NaN):
    `percentile_ci`); the interval is the 2.5th and 97.5th percentile of the draws. Each
    resample's ρ is tested against ``scipy.stats.spearmanr`` and a loop of `partial_spearman` over
    the same indices.

    Examples
    --------
    >>> from pab_campaign.analysis.stats.correlation import partial_spearman
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
    raw, partial = resampled_rhos(x, y, index, controls, categorical)
    if not len(controls) and not len(categorical):
        return percentile_ci(raw), (math.nan, math.nan)
    return percentile_ci(raw), percentile_ci(partial)
