"""The MBE verdict on arrays (`analysis.mbe.arrays`, `.rule`): mbe-eval's own rule as the reference, its synthetic demo,
and verdicts on constructed data (a loss proxy, an independent signal, pure noise)."""
from __future__ import annotations

import contextlib
import math
import re

import numpy as np
import pandas as pd
import pingouin
import pytest
from mbe_eval import MBEEvaluator, simulate_mbe_evaluation
from scipy import stats as scipy_stats

from pab_campaign.analysis.mbe.arrays import evaluate, simulate
from pab_campaign.analysis.mbe.rule import Association, check_correction, decide, measure
from pab_campaign.analysis.stats.multicomp import adjust_pvalues
from pab_campaign.errors import ConfigError


def _arrays(seed: int, n: int, beyond: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(metric, target, baseline): the target follows the baseline; the metric restates the baseline
    and carries `beyond` of a signal of its own that the target also follows."""
    rng = np.random.default_rng(seed)
    baseline, own = rng.normal(size=n), rng.normal(size=n)
    target = -baseline + 0.6 * own + 0.5 * rng.normal(size=n)
    metric = baseline + beyond * own + 0.5 * rng.normal(size=n)
    return metric, target, baseline


def _evaluate_arrays(metric, target, baseline, alpha):
    return evaluate(metric, target=target, baseline=baseline, alpha=alpha, n_boot=20)


def test_target_and_baseline_are_keyword_only_so_mbe_evals_order_cannot_swap_them():
    """mbe-eval passes (metric, baseline, target) by position; read as ours that order flips the verdict
    on the demo. It is refused, and the keyword call (in either keyword order) gives mbe-eval's answer."""
    runs = simulate()
    with pytest.raises(TypeError, match="positional argument"):
        evaluate(runs.loss_proxy, runs.early_loss, runs.final_acc)  # mbe-eval's positional order
    by_keyword = evaluate(runs.loss_proxy, baseline=runs.early_loss, target=runs.final_acc, n_boot=20)
    other_order = evaluate(runs.loss_proxy, target=runs.final_acc, baseline=runs.early_loss, n_boot=20)
    assert by_keyword == other_order
    assert by_keyword.is_loss_proxy is True and by_keyword.absolute_r < -0.9
    swapped = evaluate(runs.loss_proxy, target=runs.early_loss, baseline=runs.final_acc, n_boot=20)
    assert swapped.is_loss_proxy is False and swapped.absolute_r > 0.9  # what the silent swap used to return


@pytest.mark.parametrize(("seed", "n", "beyond", "alpha"), [
    (0, 30, 0.0, 0.05), (1, 30, 0.3, 0.05), (2, 40, 0.25, 0.05), (3, 64, 0.8, 0.05), (4, 20, 0.4, 0.2),
    (5, 50, 0.2, 0.01), (6, 12, 0.6, 0.05), (7, 25, 0.35, 0.1),
])
def test_is_loss_proxy_equals_mbe_evals_own_rule_on_the_same_arrays(tmp_path, seed, n, beyond, alpha):
    metric, target, baseline = _arrays(seed, n, beyond)
    reference = MBEEvaluator("metric", "baseline").evaluate(metric, baseline, target, alpha=alpha,
                                                            output_dir=str(tmp_path))
    ours = evaluate(metric, target=target, baseline=baseline, alpha=alpha, n_boot=50)
    assert ours.is_loss_proxy == bool(reference.is_loss_proxy)
    assert ours.absolute_r == pytest.approx(reference.absolute_r, abs=1e-12)
    assert ours.absolute_p == pytest.approx(reference.absolute_p, rel=1e-9)
    assert ours.partial_r == pytest.approx(reference.partial_r, abs=1e-9)
    assert ours.partial_p == pytest.approx(reference.partial_p, rel=1e-9)
    assert ours.stage1 == ("PASS" if reference.absolute_p < alpha else "FAIL")


def test_the_cases_span_both_sides_of_the_rule():
    """The arrays above are not all one verdict: some loss proxies, some passes."""
    verdicts = {_evaluate_arrays(*_arrays(seed, n, beyond), alpha=alpha).is_loss_proxy
                for seed, n, beyond, alpha in [(0, 30, 0.0, 0.05), (3, 64, 0.8, 0.05)]}
    assert verdicts == {True, False}


def test_further_controls_equal_pingouin_with_several_covariates():
    rng = np.random.default_rng(21)
    baseline, lr = rng.normal(size=45), rng.uniform(size=45)
    target = -baseline + lr + 0.5 * rng.normal(size=45)
    metric = baseline + 0.8 * lr + 0.4 * rng.normal(size=45)
    report = evaluate(metric, target=target, baseline=baseline, controls=[lr], n_boot=50)
    frame = pd.DataFrame({"m": metric, "t": target, "b": baseline, "lr": lr})
    reference = pingouin.partial_corr(frame, x="m", y="t", covar=["b", "lr"], method="spearman")
    assert report.partial_r == pytest.approx(reference["r"].iloc[0], abs=1e-9)
    assert report.partial_p == pytest.approx(reference["p_val"].iloc[0], rel=1e-9)


def test_simulate_draws_mbe_evals_demo(capsys):
    # mbe-eval 0.1.0's demo prints its stage 1 (Pearson r of the proxy with final accuracy), then reads
    # pingouin's old 'p-val' column, which pingouin >= 0.7 renamed: what it printed up to there is the reference.
    with contextlib.suppress(KeyError):
        simulate_mbe_evaluation()
    printed = capsys.readouterr().out
    r_text, p_text = re.search(r"Final Accuracy: r = (\S+) \(p = (\S+)\)", printed).groups()
    runs = simulate()
    pearson = scipy_stats.pearsonr(runs.loss_proxy, runs.final_acc)
    assert (f"{pearson.statistic:.3f}", f"{pearson.pvalue:.3e}") == (r_text, p_text)
    assert all(len(a) == 30 for a in (runs.capability, runs.early_loss, runs.final_acc, runs.loss_proxy,
                                      runs.independent))


def test_the_demos_loss_proxy_is_flagged_and_an_independent_signal_passes():
    runs = simulate()
    proxy = evaluate(runs.loss_proxy, target=runs.final_acc, baseline=runs.early_loss, n_boot=200)
    assert (proxy.stage1, proxy.is_loss_proxy) == ("PASS", True)
    assert "is a loss proxy" in proxy.diagnosis and "\n" not in proxy.diagnosis
    independent = evaluate(runs.independent, target=runs.final_acc, baseline=runs.early_loss, n_boot=200)
    assert (independent.stage1, independent.is_loss_proxy, independent.effect_class) == ("PASS", False, "survives")
    assert "carries signal beyond baseline" in independent.diagnosis


def test_a_pure_loss_proxy_is_a_loss_proxy():
    runs = simulate(n_runs=64, seed=7)
    proxy = evaluate(runs.loss_proxy, target=runs.final_acc, baseline=runs.early_loss, n_boot=200)
    assert proxy.stage1 == "PASS" and proxy.is_loss_proxy
    same_ranks = 2 * runs.early_loss + 1
    exact_copy = evaluate(same_ranks, target=runs.final_acc, baseline=runs.early_loss, n_boot=50)
    assert exact_copy.is_loss_proxy and exact_copy.effect_class == "washout"
    assert math.isnan(exact_copy.partial_r) and "ranks metric entirely" in exact_copy.diagnosis


def test_how_often_a_loss_proxy_passes_by_chance():
    """The rank partial is a conditional-independence test only approximately: the target is linear in
    the capability, not in the baseline's ranks, so a metric built from the early loss passes at about
    twice the nominal 5 % (mbe-eval's demo design over 200 audits of 30 runs; README's caveat)."""
    passes = []
    for seed in range(200):
        runs = simulate(n_runs=30, seed=1000 + seed)
        association = measure(runs.loss_proxy, runs.final_acc, [runs.early_loss], n_boot=10)
        passes.append(not decide(association, association.absolute_p, association.partial_p).is_loss_proxy)
    assert 0.03 <= np.mean(passes) <= 0.16


def test_an_independent_signal_over_64_runs_passes_and_survives():
    rng = np.random.default_rng(4)
    loss, signal = rng.normal(size=64), rng.normal(size=64)
    target = -loss + 0.8 * signal + 0.3 * rng.normal(size=64)
    report = evaluate(signal, target=target, baseline=loss, n_boot=500)
    assert (report.stage1, report.is_loss_proxy, report.effect_class) == ("PASS", False, "survives")
    assert report.n == 64 and report.partial_ci[0] < report.partial_r < report.partial_ci[1]


def test_a_washout_needs_an_interval_inside_the_washout_band():
    """The demo's loss proxy washes out once the runs pin its partial ρ inside ±0.1 (1500 runs), and is
    inconclusive (though still a loss proxy) over 30."""
    big = simulate(n_runs=1500, seed=3)
    washout = evaluate(big.loss_proxy, target=big.final_acc, baseline=big.early_loss, n_boot=300)
    assert washout.effect_class == "washout" and washout.is_loss_proxy
    assert washout.partial_ci[0] >= -0.1 and washout.partial_ci[1] <= 0.1
    small = simulate(n_runs=30, seed=3)
    wide = evaluate(small.loss_proxy, target=small.final_acc, baseline=small.early_loss, n_boot=300)
    assert wide.effect_class == "inconclusive" and wide.is_loss_proxy
    assert wide.partial_ci[1] - wide.partial_ci[0] > 0.2


def _noise_audits(audits: int, runs: int, metrics: int, seed: int) -> list[list[Association]]:
    """`audits` audits of `metrics` metrics of pure noise over `runs` runs whose target follows the baseline."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(audits):
        loss = rng.normal(size=runs)
        target = -loss + 0.5 * rng.normal(size=runs)
        result.append([measure(rng.normal(size=runs), target, [loss], n_boot=20) for _ in range(metrics)])
    return result


def test_pure_noise_rarely_survives_over_200_twelve_run_audits():
    audits = _noise_audits(200, 12, 1, seed=11)
    reports = [decide(a, a.absolute_p, a.partial_p) for (a,) in audits]
    survives = np.mean([r.effect_class == "survives" for r in reports])
    passes = np.mean([r.stage4 == "PASS" for r in reports])
    assert survives <= 0.08
    assert 0.01 <= passes <= 0.08  # the nominal rate is α = 5 %
    # The effect sizes alone (|raw| and |partial| ≥ 0.2, same sign) would call many of them `survives`.
    by_size = np.mean([abs(a.absolute_r) >= 0.2 and abs(a.partial_r) >= 0.2 and a.absolute_r * a.partial_r > 0
                       for (a,) in audits])
    assert by_size >= 0.2


def test_holm_keeps_the_family_wise_rate_of_a_noise_audit_near_alpha():
    audits = _noise_audits(200, 12, 5, seed=12)
    uncorrected = np.mean([any(a.partial_p <= 0.05 for a in audit) for audit in audits])
    corrected = np.mean([any(adjust_pvalues([a.partial_p for a in audit], "holm") <= 0.05) for audit in audits])
    assert corrected <= 0.08 < 0.15 <= uncorrected


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1, math.nan])
def test_alpha_outside_0_1_is_refused(alpha):
    metric, target, baseline = _arrays(0, 20, 0.3)
    with pytest.raises(ConfigError, match=r"is not a significance level in \(0, 1\)"):
        evaluate(metric, target=target, baseline=baseline, alpha=alpha)


def test_bad_arrays_and_corrections_are_refused():
    metric, target, baseline = _arrays(0, 20, 0.3)
    with pytest.raises(ConfigError, match="equal lengths"):
        evaluate(metric[:-1], target=target, baseline=baseline)
    with_nan = np.array(metric, float)
    with_nan[3] = np.nan
    with pytest.raises(ConfigError, match="must be finite numbers"):
        evaluate(with_nan, target=target, baseline=baseline)
    with pytest.raises(ConfigError, match="unknown correction 'bonferroni'; choose one of holm, fdr_bh, none"):
        check_correction("bonferroni")


def test_too_few_runs_is_insufficient_data_not_a_verdict():
    report = evaluate([1.0, 2.0, 3.0, 4.0], target=[2.0, 1.0, 4.0, 3.0], baseline=[1.0, 3.0, 2.0, 4.0], n_boot=20)
    assert (report.stage1, report.is_loss_proxy, report.effect_class) == ("", None, "insufficient-data")


def test_a_constant_metric_or_too_many_controls_is_insufficient_data_with_the_reason():
    metric, target, baseline = _arrays(0, 8, 0.3)
    constant = evaluate(np.ones(8), target=target, baseline=baseline, n_boot=20)
    assert constant.effect_class == "insufficient-data" and "constant" in constant.diagnosis
    rng = np.random.default_rng(0)
    crowded = evaluate(metric[:6], target=target[:6], baseline=baseline[:6],
                       controls=[rng.normal(size=6) for _ in range(3)], n_boot=20)
    assert crowded.is_loss_proxy is None and "more control columns" in crowded.diagnosis
