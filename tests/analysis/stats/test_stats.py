import math

import numpy as np
import pandas as pd
import pingouin
import pytest
import statsmodels.api as sm
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import DescrStatsW

from pab_campaign.analysis.mbe.rule import effect_class
from pab_campaign.analysis.stats.bootstrap import (
    bootstrap_indices,
    bootstrap_rho_cis,
    percentile_ci,
    resampled_partial_spearman,
)
from pab_campaign.analysis.stats.correlation import average_ranks, explained_by_controls, partial_spearman
from pab_campaign.analysis.stats.descriptive import ci95_halfwidth
from pab_campaign.analysis.stats.multicomp import adjust_pvalues


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_ci95_equals_statsmodels_tconfint(n):
    x = np.random.default_rng(n).normal(0.8, 0.05, size=n)
    low, high = DescrStatsW(x).tconfint_mean()
    assert ci95_halfwidth(x) == pytest.approx(high - x.mean(), abs=1e-12)
    assert ci95_halfwidth(x) == pytest.approx(high - x.mean(), rel=1e-9)
    assert (high - low) / 2 == pytest.approx(ci95_halfwidth(x), rel=1e-9)


def test_ci95_single_value_and_nan():
    assert math.isnan(ci95_halfwidth([0.5]))
    assert math.isnan(ci95_halfwidth([]))
    assert ci95_halfwidth([1.0, np.nan, 2.0, 3.0]) == pytest.approx(
        ci95_halfwidth([1.0, 2.0, 3.0]), rel=1e-12)


def test_average_ranks_match_scipy_with_ties():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    np.testing.assert_allclose(average_ranks(x), scipy_stats.rankdata(x))


def test_no_control_equals_scipy_spearman():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=40)
    y = y + 0.5 * x
    r, p, dof = partial_spearman(x, y)
    reference = scipy_stats.spearmanr(x, y)
    assert r == pytest.approx(reference.statistic, abs=1e-12)
    assert p == pytest.approx(reference.pvalue, rel=1e-9)
    assert dof == 38


def test_one_control_equals_pingouin_partial_spearman():
    rng = np.random.default_rng(7)
    z = rng.normal(size=50)
    x = z + 0.3 * rng.normal(size=50)
    y = -z + 0.4 * x + 0.3 * rng.normal(size=50)
    r, p, _ = partial_spearman(x, y, controls=[z])
    reference = pingouin.partial_corr(pd.DataFrame({"x": x, "y": y, "z": z}), x="x", y="y", covar="z",
                                      method="spearman")
    assert r == pytest.approx(reference["r"].iloc[0], abs=1e-9)
    assert p == pytest.approx(reference["p_val"].iloc[0] if "p_val" in reference else reference["p-val"].iloc[0],
                              rel=1e-9)


SIGNIFICANT, NOT = True, False
NARROW, WIDE = (-0.08, 0.09), (-0.3, 0.35)


@pytest.mark.parametrize(
    ("raw", "partial", "n", "significant", "ci", "expected"),
    [
        (0.6, 0.05, 20, NOT, NARROW, "washout"),
        (-0.6, -0.05, 20, NOT, NARROW, "washout"),
        (0.6, 0.05, 20, NOT, WIDE, "inconclusive"),  # small partial, but the interval reaches past ±0.1
        (-0.6, 0.4, 20, SIGNIFICANT, WIDE, "sign-inversion"),
        (-0.6, 0.4, 20, NOT, WIDE, "inconclusive"),
        (0.6, -0.4, 20, SIGNIFICANT, WIDE, "reverse-inversion"),
        (0.6, -0.4, 20, NOT, WIDE, "inconclusive"),
        (-0.6, -0.5, 20, SIGNIFICANT, WIDE, "survives"),
        (0.6, 0.5, 20, NOT, WIDE, "inconclusive"),  # the old rule's `survives` on effect size alone
        (-0.1, -0.5, 20, SIGNIFICANT, WIDE, "hidden-after-control"),
        (0.1, 0.5, 20, NOT, WIDE, "inconclusive"),
        (0.1, 0.15, 20, SIGNIFICANT, WIDE, "inconclusive"),
        (0.6, 0.15, 20, NOT, WIDE, "inconclusive"),
        (0.6, 0.5, 4, SIGNIFICANT, WIDE, "insufficient-data"),
        (math.nan, 0.5, 20, SIGNIFICANT, WIDE, "insufficient-data"),
    ],
)
def test_effect_classes_are_gated_on_the_uncertainty_of_the_partial(raw, partial, n, significant, ci, expected):
    assert effect_class(raw, partial, n, significant, ci) == expected


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
@pytest.mark.parametrize("seed", range(6))
def test_adjusted_pvalues_equal_statsmodels_multipletests(method, seed):
    rng = np.random.default_rng(seed)
    m = [1, 2, 5, 17, 60, 200][seed]
    p = np.concatenate([rng.uniform(size=m - m // 3), rng.uniform(0, 1e-3, size=m // 3)])
    if m > 4:
        p[:3] = p[3]  # ties
    rng.shuffle(p)
    expected = multipletests(p, alpha=0.05, method=method)[1]
    np.testing.assert_allclose(adjust_pvalues(p, method), expected, rtol=0, atol=1e-12)


def test_adjustment_leaves_nan_out_of_the_family_and_none_changes_nothing():
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan])
    finite = ~np.isnan(p)
    for method in ("holm", "fdr_bh"):
        adjusted = adjust_pvalues(p, method)
        assert np.isnan(adjusted[~finite]).all()
        np.testing.assert_allclose(adjusted[finite], multipletests(p[finite], method=method)[1], atol=1e-12)
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)
    assert adjust_pvalues([], "holm").shape == (0,)
    with pytest.raises(ValueError, match="unknown correction 'bonferroni'"):
        adjust_pvalues(p, "bonferroni")


def test_explained_by_controls_finds_a_copy_of_the_baseline():
    z = np.arange(12.0) ** 2
    assert explained_by_controls(2 * z + 1, [z])
    assert explained_by_controls(np.ones(12), [z])
    assert not explained_by_controls(np.random.default_rng(0).normal(size=12), [z])


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)

    def rho(a, b):
        return partial_spearman(a, b)[0]

    (low, high), _ = bootstrap_rho_cis(x, y, n_boot=300, seed=5)
    assert low < rho(x, y) < high
    assert (low, high) == bootstrap_rho_cis(x, y, n_boot=300, seed=5)[0]


def _ols_residuals(target, design):
    return sm.OLS(target, sm.add_constant(design, has_constant="add")).fit().resid


def test_two_controls_equal_direct_ols_residuals_on_ranks():
    rng = np.random.default_rng(11)
    z1, z2 = rng.normal(size=45), rng.exponential(size=45)
    x = z1 - z2 + 0.5 * rng.normal(size=45)
    y = 0.3 * x + z2 + rng.normal(size=45)
    rank = scipy_stats.rankdata
    design = np.column_stack([rank(z1), rank(z2)])
    ex, ey = _ols_residuals(rank(x), design), _ols_residuals(rank(y), design)
    expected = scipy_stats.pearsonr(ex, ey).statistic
    dof = 45 - 2 - 2
    t = expected * math.sqrt(dof / (1 - expected**2))
    r, p, got_dof = partial_spearman(x, y, controls=[z1, z2])
    assert r == pytest.approx(expected, abs=1e-9)
    assert p == pytest.approx(2 * scipy_stats.t.sf(abs(t), dof), rel=1e-9)
    assert got_dof == dof


def test_categorical_control_equals_ols_on_one_hot_dummies():
    rng = np.random.default_rng(12)
    arch = rng.choice(["cnn", "mlp", "resnet"], size=40)
    shift = pd.Series(arch).map({"cnn": 0.0, "mlp": 2.0, "resnet": -1.5}).to_numpy()
    z = rng.normal(size=40)
    x, y = shift + z + rng.normal(size=40), shift + rng.normal(size=40)
    dummies = pd.get_dummies(arch, drop_first=True, dtype=float).to_numpy()
    design = np.column_stack([scipy_stats.rankdata(z), dummies])
    ex = _ols_residuals(scipy_stats.rankdata(x), design)
    ey = _ols_residuals(scipy_stats.rankdata(y), design)
    r, _, dof = partial_spearman(x, y, controls=[z], categorical=[arch])
    assert r == pytest.approx(scipy_stats.pearsonr(ex, ey).statistic, abs=1e-9)
    assert dof == 40 - 2 - 3
    # The architecture explains the raw association away.
    assert abs(r) < abs(partial_spearman(x, y)[0])


def test_partial_spearman_of_a_constant_is_nan_not_a_crash():
    r, p, _ = partial_spearman(np.ones(10), np.arange(10.0), controls=[np.arange(10.0) ** 2])
    assert math.isnan(r) and math.isnan(p)


@pytest.mark.parametrize("block_resamples", [None, 7])
def test_resampled_partial_spearman_equals_the_loop_on_every_resample(monkeypatch, block_resamples):
    """Also in blocks of 7 resamples, as 50,000 runs are taken (a few resamples per block)."""
    from pab_campaign.analysis.stats import bootstrap

    if block_resamples:
        monkeypatch.setattr(bootstrap, "_RESAMPLE_BLOCK", 25 * block_resamples)
    rng = np.random.default_rng(13)
    z = rng.normal(size=25)
    x = np.round(z + rng.normal(size=25), 1)  # ties, which every resample multiplies
    y = z + 0.5 * x + rng.normal(size=25)
    arch = rng.choice(["a", "b", "c"], size=25)
    index = bootstrap_indices(25, 150, seed=2)
    batched = resampled_partial_spearman(x, y, index, controls=[z], categorical=[arch])
    looped = [partial_spearman(x[i], y[i], controls=[z[i]], categorical=[arch[i]])[0] for i in index]
    np.testing.assert_allclose(batched, looped, atol=1e-9)
    raw = resampled_partial_spearman(x, y, index)
    np.testing.assert_array_equal(bootstrap.resampled_rhos(x, y, index, [z], [arch]), [raw, batched])  # one pass
    np.testing.assert_allclose(raw, [scipy_stats.spearmanr(x[i], y[i]).statistic for i in index], atol=1e-9)


def test_resampled_ranks_in_blocks_equal_scipy_on_every_resample(monkeypatch):
    """Ranks counted a few resamples at a time (blocks of 2 here, as at 50,000 runs) are scipy's."""
    from pab_campaign.analysis.stats import bootstrap

    x = np.round(np.random.default_rng(4).normal(size=40), 1)
    index = bootstrap_indices(40, 9, seed=1)
    monkeypatch.setattr(bootstrap, "_COUNTS_BLOCK", 2 * len(np.unique(x)))
    ranks = bootstrap._resampled_ranks(x, index)
    np.testing.assert_array_equal(ranks, [scipy_stats.rankdata(x[i]) for i in index])


def test_bootstrap_rho_cis_bracket_the_estimates_and_are_seeded():
    rng = np.random.default_rng(14)
    z = rng.normal(size=50)
    x = z + 0.5 * rng.normal(size=50)
    y = z + rng.normal(size=50)
    raw_ci, partial_ci = bootstrap_rho_cis(x, y, controls=[z], n_boot=400, seed=3)
    assert raw_ci[0] < partial_spearman(x, y)[0] < raw_ci[1]
    assert partial_ci[0] < partial_spearman(x, y, controls=[z])[0] < partial_ci[1]
    assert (raw_ci, partial_ci) == bootstrap_rho_cis(x, y, controls=[z], n_boot=400, seed=3)
    assert bootstrap_rho_cis(x, y, n_boot=50)[1] == (pytest.approx(math.nan, nan_ok=True),) * 2


def test_bootstrap_interval_is_left_empty_where_the_partial_is_mostly_undefined():
    # 7 runs: in most resamples the baseline ranks the target entirely, so the partial ρ is undefined;
    # the few resamples where it is defined gave an interval inside ±0.1, read as a washout.
    metric = np.array([0.552, -0.585, 1.11, 1.065, -0.171, 1.404, -1.014])
    target = np.array([0.268, -0.766, 0.51, -0.584, -0.919, 0.928, -0.921])
    baseline = np.array([0.574, 0.756, 0.01, 0.589, 0.709, -0.878, 0.831])
    index = bootstrap_indices(len(metric), 1000, 0)
    undefined = np.isnan(resampled_partial_spearman(metric, target, index, controls=[baseline]))
    assert undefined.mean() > 0.5
    raw_ci, partial_ci = bootstrap_rho_cis(metric, target, controls=[baseline], n_boot=1000, seed=0)
    assert np.isnan(partial_ci).all()
    assert np.isfinite(raw_ci).all()
    partial = partial_spearman(metric, target, controls=[baseline])[0]
    raw = partial_spearman(metric, target)[0]
    assert abs(raw) >= 0.2 > 0.1 > abs(partial)
    assert effect_class(raw, partial, len(metric), False, partial_ci) == "inconclusive"


def test_bootstrap_interval_keeps_a_few_undefined_resamples_out():
    draws = np.linspace(-1.0, 1.0, 1000)
    few, many = draws.copy(), draws.copy()
    few[:50] = math.nan  # 5 %: left out, the interval comes from the rest
    many[:51] = math.nan
    assert percentile_ci(few) == tuple(np.percentile(draws[50:], [2.5, 97.5]))
    assert np.isnan(percentile_ci(many)).all()
