"""Descriptive statistics of campaign values: mean, standard deviation and the Student-t CI95
half-width (what tcbench reports), in plain Python: no numpy or scipy at import, so that a warm
`report` answers without them and computes the very same numbers as the full path."""
from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from functools import lru_cache
from itertools import chain, repeat
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

# Newton steps of `student_t_quantile` (it converges in 3-6 from its start).
_MAX_STEPS = 100
# Continued-fraction terms of the incomplete beta function (about √(df) are needed).
_MAX_TERMS = 1_000_000
_EPS = 1e-16
# The Cornish-Fisher expansion is used where its last term is below this fraction of the quantile
# (the terms after it are then below rounding; the continued fraction converges slowly there).
_EXPANSION_TAIL = 1e-13


class Description(NamedTuple):
    """One sample's statistics: `n` values (NaN left out), their mean, ddof=1 standard deviation
    (NaN below two values or when some value is ±inf) and CI95 half-width, in the values' unit."""

    n: int
    mean: float
    std: float
    ci95: float


def describe(values: Iterable[float]) -> Description:
    """Mean, std (ddof=1) and CI95 half-width of `values`, NaN left out.

    The mean is within an ulp of the exact one (`mean_of`: n equal values have that value as mean);
    s² = Σ(x - mean)² / (n - 1), summed with `math.fsum`; ci95 = `ci95_of(n, s)`. With a ±inf value
    the mean is the IEEE sum's (inf, -inf or NaN) over n and s is NaN.

    >>> n, mean, std, ci95 = describe([1.0, float("nan"), 3.0])
    >>> n, mean, std, round(ci95, 10)
    (2, 2.0, 1.4142135623730951, 12.7062047362)
    """
    x = [v for v in map(float, values) if v == v]  # NaN is the one value unequal to itself
    n = len(x)
    if not n:
        return Description(0, math.nan, math.nan, math.nan)
    if not all(map(math.isfinite, x)):
        return Description(n, sum(x) / n, math.nan, math.nan)
    mean = mean_of(x)
    if n < 2:
        return Description(n, mean, math.nan, math.nan)
    std = _std(x, mean)
    return Description(n, mean, std, ci95_of(n, std))


def _std(x: list[float], mean: float) -> float:
    """The ddof=1 standard deviation of the finite values `x` (n ≥ 2) about their `mean`. Where the
    squares pass the float range, that of the values scaled by a power of two, scaled back (inf
    only where the std itself is past the float range)."""
    # squares as products (correctly rounded; inf past the float range, where ** raised OverflowError),
    # every loop in C: a group of 50,000 values was a tenth of a second
    residuals = list(map(operator.sub, x, repeat(mean)))
    try:
        total = math.fsum(map(operator.mul, residuals, residuals))
    except OverflowError:  # a partial sum past the float range
        total = math.inf
    if math.isfinite(total):
        return math.sqrt(total / (len(x) - 1))
    shift = max(math.frexp(v)[1] for v in x)  # every scaled value is then below 1 in size
    scaled = [math.ldexp(v, -shift) for v in x]
    try:
        return math.ldexp(_std(scaled, mean_of(scaled)), shift)
    except OverflowError:
        return math.inf


def mean_of(x: list[float]) -> float:
    """The mean of the finite values `x` (n ≥ 1), within an ulp of the exact mean: the correctly
    rounded sum (`math.fsum`) over n, corrected by the correctly rounded Σx - n·mean over n (summed
    exactly, so values far larger than the mean cannot cancel it away). A sum past the float range
    is taken of the values scaled by a power of two (exact but for parts far below the mean's ulp)."""
    n = len(x)
    try:
        mean = math.fsum(x) / n
        return mean + math.fsum(chain(x, repeat(-mean, n))) / n
    except OverflowError:  # Σx, not the mean, past the float range
        shift = n.bit_length() + 1
        return math.ldexp(mean_of([math.ldexp(v, -shift) for v in x]), shift)


def ci95_of(n: int, std: float) -> float:
    """CI95 half-width ``t_{0.975, n-1} · std / √n`` of a sample of `n` values with ddof=1 standard
    deviation `std`; NaN when n < 2."""
    if n < 2:
        return math.nan
    return student_t_quantile(0.975, n - 1) * std / math.sqrt(n)


def ci95_halfwidth(values: Iterable[float]) -> float:
    """Half-width of the Student-t 95 % confidence interval of the mean, ignoring NaN.

    Parameters
    ----------
    values : iterable of float, shape (n,)
        One sample, e.g. a metric over the seeds of one group; NaN values are left out.

    Returns
    -------
    float
        The half-width h, in the values' own unit: the interval is mean ± h. NaN when fewer than
        two values are left (never an error).

    Notes
    -----
    ``h = t_{0.975, n-1} · s / √n`` with ``s`` the sample standard deviation (ddof=1) and
    ``t_{0.975, n-1}`` the 97.5 % quantile of Student's t with n - 1 degrees of freedom
    (`student_t_quantile`), as tcbench reports it. Tested against statsmodels:
    ``DescrStatsW(x).tconfint_mean()`` gives (mean - h, mean + h).

    Examples
    --------
    >>> round(ci95_halfwidth([0.70, 0.72, 0.75, 0.71]), 4)
    0.0344
    >>> ci95_halfwidth([0.70, float("nan")])
    nan
    """
    return describe(values).ci95


def ci95_halfwidths(n: np.ndarray, std: np.ndarray) -> np.ndarray:
    """`ci95_of` for many samples at once, from their sizes `n` and ddof=1 standard deviations
    `std` (same shape); NaN where n < 2."""
    import numpy as np

    sizes, stds = np.asarray(n, dtype=float), np.asarray(std, dtype=float)
    half = [ci95_of(int(k), float(s)) if k >= 2 else math.nan for k, s in zip(sizes.ravel(), stds.ravel())]
    return np.array(half, dtype=float).reshape(sizes.shape)


@lru_cache(maxsize=4096)
def student_t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t distribution with `df` > 0 degrees of freedom.

    Closed forms for df = 1 and 2; otherwise Newton's method on the upper tail
    ``P(T > t) = ½ · I_{df/(df+t²)}(df/2, ½)`` (regularised incomplete beta function, by its
    continued fraction), from the Cornish-Fisher expansion around the normal quantile, kept inside
    a bracket; where that expansion's fourth term is below 1e-13 of the quantile (large df), the
    expansion itself. Relative error below 3e-14 against `scipy.stats.t.ppf` for df ≥ 1 and
    1e-10 ≤ p ≤ 1 - 1e-10 away from ½ (tested for df 1..1000 and up to 1e8).

    >>> round(student_t_quantile(0.975, 4), 10)
    2.7764451052
    """
    if not 0.0 < p < 1.0 or not df > 0.0:
        if p in (0.0, 1.0) and df > 0.0:
            return math.copysign(math.inf, p - 0.5)
        return math.nan
    if p == 0.5:
        return 0.0
    q, sign = (p, -1.0) if p < 0.5 else (1.0 - p, 1.0)  # 1 - p is exact for p ≥ ½ (Sterbenz)
    if df == 1.0:
        return sign / math.tan(math.pi * q)
    if df == 2.0:
        return sign * ((1.0 - q) - q) / math.sqrt(2.0 * q * (1.0 - q))
    z = _normal_upper(q)
    if abs(_cornish_fisher(z, df, terms=4) - _cornish_fisher(z, df, terms=3)) <= _EXPANSION_TAIL * z:
        return sign * _cornish_fisher(z, df)
    return sign * _newton(q, df, max(_cornish_fisher(z, df, terms=2), 1e-300))


def _cornish_fisher(z: float, df: float, terms: int = 4) -> float:
    """t's quantile from the normal quantile `z` by the Cornish-Fisher expansion in 1/df
    (Abramowitz & Stegun 26.7.5), to its first `terms` terms."""
    z2 = z * z
    g = [(z2 + 1) * z / 4, ((5 * z2 + 16) * z2 + 3) * z / 96, (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384,
         ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160]
    return z + sum(g[k] / df ** (k + 1) for k in reversed(range(terms)))


def _newton(q: float, df: float, t: float) -> float:
    """The t > 0 whose upper tail is `q` (< ½), from the start `t` > 0."""
    low, high = 0.0, math.inf
    log_norm = _log_density_norm(df)
    for _ in range(_MAX_STEPS):
        excess = _upper_tail(t, df, log_norm) - q  # > 0: t too small
        if excess == 0:
            return t
        if excess > 0:
            low = max(low, t)
        else:
            high = min(high, t)
        density = math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))
        guess = t + excess / density
        if not low < guess < high:
            guess = (low + high) / 2 if math.isfinite(high) else 2 * max(t, 1.0)
        if abs(guess - t) <= 4 * _EPS * t:
            return guess
        t = guess
    return t


def _normal_upper(q: float) -> float:
    """The standard normal's upper `q` quantile (0 < q < ½): a rational start (error < 5e-4,
    Abramowitz & Stegun 26.2.23), then Newton's method on ½ erfc(z/√2)."""
    s = math.sqrt(-2.0 * math.log(q))
    z = s - (2.515517 + 0.802853 * s + 0.010328 * s * s) / (1 + 1.432788 * s + 0.189269 * s * s
                                                            + 0.001308 * s ** 3)
    for _ in range(_MAX_STEPS):
        step = (0.5 * math.erfc(z / math.sqrt(2.0)) - q) / math.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi))
        z += step
        if abs(step) <= _EPS * abs(z):
            break
    return z


def _log_half_ratio(a: float) -> float:
    """ln Γ(a + ½) - ln Γ(a), accurate for every a > 0 (Stirling's series where lgamma cancels)."""
    if a < 20.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)

    def series(z: float) -> float:
        z2 = z * z
        return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * z2)) / z2) / z2) / z2) / z

    return a * math.log1p(0.5 / a) - 0.5 + 0.5 * math.log(a) + series(a + 0.5) - series(a)


def _log_density_norm(df: float) -> float:
    """ln of t's density at 0: ln Γ((df+1)/2) - ln Γ(df/2) - ½ ln(df π)."""
    return _log_half_ratio(df / 2) - 0.5 * math.log(df * math.pi)


def _upper_tail(t: float, df: float, log_norm: float) -> float:
    """P(T > t) for t ≥ 0: ½ I_x(df/2, ½) with x = df/(df+t²), 1 - x = t²/(df+t²)."""
    a, b = df / 2, 0.5
    ratio = t * t / df
    x, y = 1.0 / (1.0 + ratio), ratio / (1.0 + ratio)
    if y == 0.0:  # t² below the smallest float: the median
        return 0.5
    # ln of x^a y^b / B(a, b), with 1/B(a, ½) = Γ(a+½) / (Γ(a) √π)
    log_front = -a * math.log1p(ratio) + b * math.log(y) + _log_half_ratio(a) - 0.5 * math.log(math.pi)
    if x < (a + 1) / (a + b + 2):
        return 0.5 * math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 0.5 * (1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, _MAX_TERMS):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for numerator in (even, odd):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h
