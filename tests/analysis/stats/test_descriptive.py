"""The plain-Python Student-t quantile and `describe` against scipy and numpy (independent
implementations); scipy never enters the report's import path."""
from __future__ import annotations

import math
import statistics
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pab_campaign.analysis.stats.descriptive import ci95_halfwidths, ci95_of, describe, student_t_quantile
from tests.helpers import command_env

LARGE_DF = [1500, 2000, 5000, 12_345, 1e5, 1e6, 1e8, 2.5, 7.3]


@pytest.mark.parametrize("p", [0.975, 0.6, 0.9, 0.995, 1 - 1e-10, 0.025, 0.3, 1e-10])
def test_student_t_quantile_matches_scipy(p):
    dfs = [*range(1, 1001), *LARGE_DF]
    ours = np.array([student_t_quantile(p, df) for df in dfs])
    reference = scipy_stats.t.ppf(p, dfs)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=0)


def test_student_t_quantile_edges():
    assert student_t_quantile(0.5, 3) == 0.0
    assert student_t_quantile(1.0, 3) == math.inf and student_t_quantile(0.0, 3) == -math.inf
    assert math.isnan(student_t_quantile(0.9, 0)) and math.isnan(student_t_quantile(1.5, 3))
    assert student_t_quantile(0.25, 5) == -student_t_quantile(0.75, 5)


def test_describe_matches_numpy_and_the_vector_form():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 10, 200):
        x = rng.normal(0.8, 0.05, size=n) * 10 ** rng.uniform(-6, 6)
        one = describe([*x, math.nan])
        assert one.n == n and one.mean == pytest.approx(x.mean(), rel=1e-14)
        if n >= 2:
            assert one.std == pytest.approx(x.std(ddof=1), rel=1e-12)
            assert one.ci95 == pytest.approx(scipy_stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n), rel=1e-12)
            assert ci95_halfwidths(np.array([n]), np.array([one.std]))[0] == one.ci95 == ci95_of(n, one.std)
        else:
            assert math.isnan(one.std) and math.isnan(one.ci95)
    assert describe([0.1] * 3)[1:] == (0.1, 0.0, 0.0)  # equal values: their value, no spread
    assert describe([1.0, math.inf]).mean == math.inf and math.isnan(describe([1.0, math.inf]).std)
    assert describe([]).n == 0 and math.isnan(describe([]).mean)
    spread = describe([1e200, -1e200, 3e200])  # squares past the float range (numpy's std is inf there)
    assert spread.std == pytest.approx(2e200, rel=1e-15) and spread.mean == pytest.approx(1e200)


def test_the_std_past_the_float_range_of_its_squares_matches_exact_arithmetic():
    """`statistics.stdev` (exact rational arithmetic, correctly rounded root) is the reference: the
    squares of values near ±1.8e308 pass the float range, their standard deviation does not."""
    rng = np.random.default_rng(5)
    samples = [[1e308, 1e308, -1e308, 5.0], [1e154, 1e154, -1e154, 3.0], [1.7e308] * 5 + [-1.7e308],
               [1e300, 1.0, -1e300, 2.0, 3e-300], [-1.6e308, -1.6e308, 5.0]]
    for _ in range(100):
        size = int(rng.integers(2, 30))
        signs = rng.choice([-1.0, 1.0], size=size)
        samples.append(list(signs * rng.random(size) * 10.0 ** rng.integers(150, 308, size)))
    for x in samples:
        assert describe(x).std == pytest.approx(statistics.stdev(x), rel=1e-14), x
    assert describe([1.7e308, -1.7e308]).std == math.inf  # the std itself is past the float range


def test_the_mean_is_within_an_ulp_of_the_exact_one_whatever_the_magnitudes():
    """`statistics.mean` (exact rational arithmetic, then rounded) is the reference: values far
    larger than their mean cancel exactly, and a sum past the float range still has its mean."""
    rng = np.random.default_rng(11)
    samples = [[1e308, -1e308, 1.0], [1.7e308] * 5 + [-1.7e308], [1e308, 1e308], [0.1] * 7,
               [1e300, 1.0, -1e300, 2.0, 3e-300], [-1.6e308, -1.6e308, 5.0]]
    for _ in range(300):
        size = int(rng.integers(1, 40))
        exponents = rng.integers(-300, 308, size=size) if rng.random() < 0.5 else rng.integers(-3, 3, size=size)
        samples.append(list(rng.choice([-1.0, 1.0], size=size) * rng.random(size) * 10.0 ** exponents))
    for x in samples:
        exact = statistics.mean(x)
        ours = describe(x).mean
        assert abs(ours - exact) <= math.ulp(exact), (x, ours, exact)
    assert describe([1e308, -1e308, 1.0]).mean == 1 / 3  # the naive correction made it 0.56
    assert describe([1e308, 1e308])[1:] == (1e308, 0.0, 0.0)  # fsum raised OverflowError


def test_scipy_and_numpy_stay_out_of_the_report_statistics():
    code = ("import sys; import pab_campaign.analysis.stats.descriptive as d; d.ci95_of(5, 1.0); "
            "print(sorted(m for m in ('scipy', 'numpy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=command_env(), check=True)
    assert out.stdout.strip() == "[]"


def test_the_upper_tail_at_a_t_whose_square_underflows_is_the_median():
    """t = 0 (or t² below the smallest float) has upper tail ½, as scipy says, not a log(0) error."""
    from pab_campaign.analysis.stats import descriptive

    for t in (0.0, 1e-200):
        for df in (3.0, 7.5, 1e6):
            tail = descriptive._upper_tail(t, df, descriptive._log_density_norm(df))
            assert tail == pytest.approx(scipy_stats.t.sf(t, df), rel=1e-15) == 0.5
