"""Latent phases (analysis.states, analysis.phases): sequences, the split, hmmlearn's scores and
parameter counts, the choice of K on a planted HMM, and the statistics against scipy, pingouin and
statsmodels."""
from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pandas as pd
import pingouin
import pytest
import scipy.stats
from hmmlearn.hmm import GaussianHMM
from statsmodels.stats.multitest import multipletests
from threadpoolctl import threadpool_limits

from pab_campaign.analysis.phases import hmm as states
from pab_campaign.analysis.phases import interpretation as phases
from pab_campaign.analysis.stats.descriptive import ci95_halfwidth
from pab_campaign.errors import CampaignError
from pab_campaign.metrics import MetricSpec
from tests.helpers import planted_phase_runs

FEATURES = tuple(MetricSpec("weights", f"f{i}") for i in range(4))


def _sequences(values: list[np.ndarray]) -> states.Sequences:
    return states.Sequences([s.label for s in FEATURES], [f"r{i:03d}" for i in range(len(values))],
                            [np.arange(len(v)) for v in values], values)


def _agreement(found: np.ndarray, planted: np.ndarray, k: int) -> float:
    """Share of epochs where the found states equal the planted ones, under the best relabelling."""
    return max(float((np.array(p)[found] == planted).mean()) for p in itertools.permutations(range(k)))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The direct hmmlearn fits below with one OpenMP thread, as the analysis fits (KMeans spins its
    threads on a busy machine)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def planted():
    values, truth = planted_phase_runs(30)
    request = states.StatesRequest(features=FEATURES, max_states=5, restarts=3, seed=0)
    return values, truth, request, states.fit_states(_sequences(values), request)


def test_a_planted_three_state_hmm_is_found(planted):
    _, truth, _, fit = planted
    assert fit.chosen_k == 3, fit.reason
    assert fit.selection.loc[fit.selection["chosen"], "k"].tolist() == [3]
    assert _agreement(fit.states["state"].to_numpy(), np.concatenate(truth), 3) >= 0.9
    assert "within one standard error" in fit.reason


def test_heldout_log_likelihoods_equal_hmmlearn_scores_on_the_same_split(planted):
    values, _, request, fit = planted
    z = [scipy.stats.zscore(v, axis=0) for v in values]
    ids = [f"r{i:03d}" for i in range(len(values))]
    fit_runs = [z[ids.index(r)] for r in fit.fit_runs]
    held_runs = [z[ids.index(r)] for r in fit.held_out_runs]
    assert len(held_runs) == 6 and len(fit_runs) == 24 and not set(fit.fit_runs) & set(fit.held_out_runs)
    x_fit, fit_lengths = np.concatenate(fit_runs), [len(r) for r in fit_runs]
    x_held, held_lengths = np.concatenate(held_runs), [len(r) for r in held_runs]
    for row in fit.selection.itertuples():
        restarts = range(1 if row.k == 1 else request.restarts)
        models = [GaussianHMM(row.k, "diag", random_state=states.restart_seed(0, row.k, r), n_iter=states.N_ITER,
                              implementation="scaling",
                              tol=states.em_tolerance(len(x_fit))).fit(x_fit, fit_lengths) for r in restarts]
        held = [m.score(x_held, held_lengths) for m in models]
        best_fit = models[int(np.argmax([m.score(x_fit, fit_lengths) for m in models]))]
        assert row.heldout_ll == pytest.approx(best_fit.score(x_held, held_lengths), rel=1e-9)
        assert row.heldout_ll_mean == pytest.approx(np.mean(held), rel=1e-9)
        assert row.heldout_ll_best == pytest.approx(max(held), rel=1e-9)
        assert row.aic == pytest.approx(best_fit.aic(x_fit, fit_lengths), rel=1e-9)
        assert row.bic == pytest.approx(best_fit.bic(x_fit, fit_lengths), rel=1e-9)
        assert row.heldout_ll == pytest.approx(fit.candidates[row.k].score(x_held, held_lengths), rel=1e-12)


def test_states_are_numbered_by_when_they_occur_and_the_model_decodes_them(planted):
    values, _, _, fit = planted
    z = np.concatenate([scipy.stats.zscore(v, axis=0) for v in values])
    lengths = [len(v) for v in values]
    np.testing.assert_array_equal(fit.model.predict(z, lengths), fit.states["state"].to_numpy())
    position = np.concatenate([np.linspace(0, 1, n) for n in lengths])
    mean_position = [position[fit.states["state"].to_numpy() == s].mean() for s in range(fit.chosen_k)]
    assert mean_position == sorted(mean_position)
    assert fit.states["posterior_max"].between(1 / 3, 1).all()


def test_permuting_states_keeps_the_likelihood():
    values, _ = planted_phase_runs(6)
    x, lengths = np.concatenate(values), [len(v) for v in values]
    model = GaussianHMM(3, "full", random_state=0, n_iter=5).fit(x, lengths)
    permuted = states.permute_states(model, np.array([2, 0, 1]))
    assert permuted.score(x, lengths) == pytest.approx(model.score(x, lengths), rel=1e-12)
    np.testing.assert_array_equal(np.array([2, 0, 1])[permuted.predict(x, lengths)], model.predict(x, lengths))


def test_bic_selection_takes_the_lowest_bic(planted):
    _, _, _, fit = planted
    k, reason = states.select_k(fit.selection, "bic", 6, 24)
    assert k == int(fit.selection.loc[fit.selection["bic"].idxmin(), "k"]) and "lowest BIC" in reason


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_free_parameters_are_counted_as_hmmlearn_counts_them(covariance):
    values, _ = planted_phase_runs(5)
    x, lengths = np.concatenate(values), [len(v) for v in values]
    for k in (1, 2, 4):
        model = GaussianHMM(k, covariance, random_state=0, n_iter=3).fit(x, lengths)
        p = states.n_free_parameters(k, 4, covariance)
        assert model.aic(x, lengths) == pytest.approx(-2 * model.score(x, lengths) + 2 * p, rel=1e-12)


def test_zscore_matches_scipy_and_zeroes_constant_features():
    x = np.column_stack([np.arange(6.0), np.full(6, 3.0), np.array([1.0, 4, 2, 8, 5, 7])])
    z = states.zscore(x)
    np.testing.assert_allclose(z[:, [0, 2]], scipy.stats.zscore(x[:, [0, 2]], axis=0), rtol=1e-12)
    assert (z[:, 1] == 0).all()


def test_sequences_drop_incomplete_epochs_and_leave_out_runs_with_nan():
    frame = pd.DataFrame({
        "run_id": ["a", "a", "a", "b", "b", "c", "d", "d"], "epoch": [0, 1, 2, 0, 1, 0, 0, 1],
        "n_present": [2, 1, 2, 2, 2, 2, 2, 2], "f0": [1.0, 2, 3, 1, np.nan, 1, 1, 2], "f1": [0.0, 0, 1, 2, 3, 4, 5, 6]})
    built = states.build_sequences(frame, ["x/a", "x/b"], ["a", "b", "c", "d", "e"])
    assert built.run_ids == ["a", "d"]
    np.testing.assert_array_equal(built.epochs[0], [0, 2])
    reasons = dict(built.left_out)
    assert reasons["b"].startswith("x/a is nan at epoch 1")
    assert reasons["c"] == "only one epoch at which every feature was measured"
    assert reasons["e"] == "no epoch at which every feature was measured"


def test_the_split_is_seeded_eighty_twenty_and_needs_five_runs():
    fit, held = states.split_runs(30, seed=3)
    assert len(held) == 6 and sorted([*fit, *held]) == list(range(30))
    np.testing.assert_array_equal(states.split_runs(30, seed=3)[1], held)
    assert not np.array_equal(states.split_runs(30, seed=4)[1], held)
    with pytest.raises(CampaignError, match=r"4 usable run.*at least 5"):
        states.split_runs(4, seed=0)


def test_selection_uses_a_seeded_subsample_of_a_large_campaign_and_fits_all_runs():
    values, _ = planted_phase_runs(12)
    request = states.StatesRequest(features=FEATURES, max_states=2, restarts=1, selection_runs=8)
    fit = states.fit_states(_sequences(values), request)
    assert len(fit.fit_runs) + len(fit.held_out_runs) == 8
    assert fit.states["run_id"].nunique() == 12
    assert any("subsample of 8 of the 12 runs" in note for note in fit.notes)


def test_parallel_fits_give_the_same_result_as_one_process():
    values, _ = planted_phase_runs(10)
    one = states.fit_states(_sequences(values), states.StatesRequest(features=FEATURES, max_states=3, restarts=2))
    two = states.fit_states(_sequences(values), states.StatesRequest(features=FEATURES, max_states=3, restarts=2,
                                                                     jobs=2))
    pd.testing.assert_frame_equal(one.selection, two.selection)
    pd.testing.assert_frame_equal(one.states, two.states)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_states": 0}, "max_states=0 must be >= 1"), ({"restarts": 0}, "restarts=0"),
    ({"covariance": "tied"}, "covariance='tied'"), ({"select": "aic"}, "select='aic'"),
    ({"features": (MetricSpec("val", "loss", None, 3),)}, "drop the @3")])
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(CampaignError, match=message):
        states.StatesRequest(**kwargs)


# ---- what phases mean --------------------------------------------------------------------------
@pytest.mark.parametrize("swap", [False, True])
def test_welch_p_equals_scipy_for_both_signs_of_t(swap):
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 2, 9), rng.normal(12.5, 4, 14)
    a, b = (b, a) if swap else (a, b)
    ours = phases.welch_test(a, b)
    reference = scipy.stats.ttest_ind(a, b, equal_var=False)
    assert (ours["t"] > 0) == swap
    assert ours["t"] == pytest.approx(reference.statistic, rel=1e-12)
    assert ours["p"] == pytest.approx(reference.pvalue, rel=1e-10)
    assert ours["dof"] == pytest.approx(reference.df, rel=1e-12)
    pg = pingouin.ttest(a, b, correction=True)
    assert ours["p"] == pytest.approx(float(pg["p_val"].iloc[0]), rel=1e-10)
    assert ours["cohen_d"] == pytest.approx(pingouin.compute_effsize(a, b, paired=False, eftype="cohen"), rel=1e-10)


def test_welch_is_nan_without_two_values_a_side():
    assert math.isnan(phases.welch_test([1.0], [2.0, 3.0])["p"])
    assert math.isnan(phases.welch_test([1.0, 1.0], [1.0, 1.0])["t"])


def test_transition_features_rank_the_feature_that_changes_with_its_sign():
    rng = np.random.default_rng(0)
    run_states = np.r_[np.zeros(20, int), np.ones(20, int)]
    raw = np.column_stack([np.r_[np.full(20, 5.0), np.full(20, 1.0)] + rng.normal(0, 0.1, 40),
                           rng.normal(0, 1, 40)])
    z = states.zscore(raw)
    table = phases.transition_features([raw], [z], [run_states], ["a", "b"], np.array([[0.9, 0.1], [0, 1]]), top=2)
    first = table.iloc[0]
    assert (first["from_state"], first["to_state"], first["feature"], first["occurrences"]) == (0, 1, "a", 1)
    assert first["smd"] < -10 and first["probability"] == 0.1
    assert first["before_mean"] == pytest.approx(5.0, abs=0.1) and first["after_mean"] == pytest.approx(1.0, abs=0.1)
    expected = (z[20:, 0].mean() - z[:20, 0].mean()) / math.sqrt((z[:20, 0].var(ddof=1) + z[20:, 0].var(ddof=1)) / 2)
    assert first["smd"] == pytest.approx(expected, rel=1e-12)


def test_phase_profiles_describe_the_largest_standardised_means():
    raw = np.column_stack([np.r_[np.zeros(10), np.full(10, 4.0)], np.r_[np.full(10, 2.0), np.zeros(10)]])
    run_states = np.r_[np.zeros(10, int), np.ones(10, int)]
    summary, means = phases.phase_profiles([raw], [states.zscore(raw)], [np.arange(20)], [run_states], ["a", "b"], 3)
    assert summary.loc[1, "description"].startswith("a high (+1.0 sd), b low (-1.0 sd)")
    assert summary.loc[2, "description"] == "never decoded" and summary.loc[1, "occupancy"] == 0.5
    assert (summary.loc[1, "epoch_from"], summary.loc[1, "epoch_to"]) == (10, 19)
    assert means.set_index(["state", "feature"]).loc[(1, "a"), "mean"] == 4.0


def test_detours_compare_convergence_of_visiting_and_other_runs():
    visited = pd.DataFrame({0: [True] * 6, 1: [True, True, True, False, False, False]}, index=list("abcdef"))
    convergence = pd.Series([10.0, 12, 11, 5, 6, 4], index=list("abcdef"))
    table = phases.detour_table(visited, convergence)
    assert math.isnan(table.loc[0, "p"])
    reference = scipy.stats.ttest_ind([10, 12, 11], [5, 6, 4], equal_var=False)
    assert table.loc[1, "p"] == pytest.approx(reference.pvalue, rel=1e-10)
    assert table.loc[1, "difference"] == pytest.approx(6.0) and table.loc[1, "p_holm"] == table.loc[1, "p"]


def test_convergence_epoch_is_the_first_at_95_percent_of_the_final_value():
    curves = pd.DataFrame({"run_id": ["a"] * 5 + ["b"] * 3, "epoch": [0, 1, 2, 3, 4, 0, 1, 2],
                           "value": [0.1, 0.5, 0.9, 0.95, 0.96, 0.0, 0.0, 0.0]})
    result = phases.convergence_epochs(curves)
    assert result["a"] == 3 and math.isnan(result["b"])


def _reference_profiles(epochs, states, k):
    """Per state: runs visiting, and the medians of their first and last epoch in it, run by run."""
    out = []
    for state in range(k):
        visits = [(e[s == state].min(), e[s == state].max()) for e, s in zip(epochs, states) if (s == state).any()]
        out.append((len(visits), float(np.median([v[0] for v in visits])) if visits else math.nan,
                    float(np.median([v[1] for v in visits])) if visits else math.nan))
    return out


def _reference_transitions(values, z, states, top):
    """The transition table, segment by segment and run by run (pooled rows in run order)."""
    pooled = {}
    for run, (raw, zs, run_states) in enumerate(zip(values, z, states)):
        cuts = np.flatnonzero(np.diff(run_states)) + 1
        parts = [(int(run_states[a]), a, b) for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(run_states)])]
        for (a, a0, a1), (b, b0, b1) in itertools.pairwise(parts):
            entry = pooled.setdefault((a, b), {"zb": [], "za": [], "rb": [], "ra": [], "runs": set()})
            entry["zb"].append(zs[a0:a1])
            entry["za"].append(zs[b0:b1])
            entry["rb"].append(raw[a0:a1])
            entry["ra"].append(raw[b0:b1])
            entry["runs"].add(run)
    return {key: (len(e["zb"]), len(e["runs"]), phases.standardised_difference(np.concatenate(e["zb"]),
                                                                             np.concatenate(e["za"])),
                  np.concatenate(e["rb"]).mean(axis=0), np.concatenate(e["ra"]).mean(axis=0))
            for key, e in pooled.items()}


def test_profiles_and_transitions_equal_a_run_by_run_computation():
    rng = np.random.default_rng(7)
    k, features = 4, ["a", "b", "c"]
    states_per_run = [rng.integers(0, 3, n) for n in rng.integers(1, 30, 60)]  # state 3 never decoded
    states_per_run[5] = np.array([2, 2, 2])
    values = [rng.normal(size=(len(s), 3)) for s in states_per_run]
    z = [states.zscore(v) for v in values]
    epochs = [np.arange(len(s)) + int(rng.integers(0, 5)) for s in states_per_run]
    summary, _ = phases.phase_profiles(values, z, epochs, states_per_run, features, k)
    expected = _reference_profiles(epochs, states_per_run, k)
    np.testing.assert_array_equal(summary["runs"], [e[0] for e in expected])
    np.testing.assert_array_equal(summary["epoch_from"], [e[1] for e in expected])
    np.testing.assert_array_equal(summary["epoch_to"], [e[2] for e in expected])
    table = phases.transition_features(values, z, states_per_run, features, np.full((k, k), 0.25), top=3)
    reference = _reference_transitions(values, z, states_per_run, 3)
    assert sorted(set(zip(table["from_state"], table["to_state"]))) == sorted(reference)
    for row in table.itertuples():
        occurrences, runs, smd, before, after = reference[(row.from_state, row.to_state)]
        i = features.index(row.feature)
        assert (row.occurrences, row.runs) == (occurrences, runs)
        assert (row.smd, row.before_mean, row.after_mean) == (smd[i], before[i], after[i])


def test_convergence_epochs_and_visits_equal_a_per_run_loop_on_shuffled_rows():
    rng = np.random.default_rng(3)
    rows = [(f"r{run:02d}", epoch, value) for run in range(40) for epoch in range(int(rng.integers(1, 12)))
            for value in [rng.choice([rng.uniform(-0.2, 1.0), math.nan, math.inf], p=[0.9, 0.05, 0.05])]]
    curves = pd.DataFrame(rows, columns=["run_id", "epoch", "value"]).sample(frac=1.0, random_state=1)
    result = phases.convergence_epochs(curves)
    expected = {}
    for run_id, run in curves.sort_values("epoch").groupby("run_id"):
        final = run["value"].iloc[-1]
        expected[run_id] = (float(run["epoch"][run["value"] >= 0.95 * final].iloc[0])
                            if np.isfinite(final) and final > 0 else math.nan)
    pd.testing.assert_series_equal(result, pd.Series(expected, name="convergence_epoch", dtype=float))
    decoded = curves.assign(state=rng.integers(0, 4, len(curves)))
    expected_visits = pd.crosstab(decoded["run_id"], decoded["state"]).reindex(columns=range(5), fill_value=0) > 0
    expected_visits.columns.name = None
    pd.testing.assert_frame_equal(phases.visits(decoded, 5), expected_visits)


def test_zscore_of_stacked_runs_equals_each_run_alone():
    rng = np.random.default_rng(4)
    values = [rng.normal(size=(n, 3)) for n in (5, 9, 5, 5, 2)]
    values[2][:, 1] = 7.0
    sequences = states.Sequences(["a", "b", "c"], list("vwxyz"), [np.arange(len(v)) for v in values], values)
    for z, v in zip(sequences.zscored(), values):
        np.testing.assert_array_equal(z, states.zscore(v))
    assert not sequences.zscored()[2][:, 1].any()


def test_hyperparameter_predictors_match_scipy():
    visited = pd.DataFrame({0: [True, True, False, False, True, False]}, index=list("abcdef"))
    hparams = pd.DataFrame({"lr": [0.1, 0.1, 0.01, 0.01, 0.1, 0.01], "norm": ["bn", "bn", "ln", "ln", "ln", "bn"]},
                           index=list("abcdef"))
    table = phases.hparam_predictors(visited, hparams).set_index("hparam")
    rho = scipy.stats.spearmanr(hparams["lr"], visited[0].astype(float)).statistic
    p = scipy.stats.mannwhitneyu(hparams["lr"][visited[0]], hparams["lr"][~visited[0]]).pvalue
    assert table.loc["lr", "effect"] == pytest.approx(rho) and table.loc["lr", "p"] == pytest.approx(p, rel=1e-12)
    crosstab = pd.crosstab(hparams["norm"], visited[0])
    assert table.loc["norm", "effect"] == pytest.approx(scipy.stats.contingency.association(crosstab, method="cramer"))
    assert table.loc["norm", "p"] == pytest.approx(scipy.stats.fisher_exact(crosstab.to_numpy()).pvalue, rel=1e-12)
    np.testing.assert_allclose(table.loc[["lr", "norm"], "p_holm"],
                               multipletests(table.loc[["lr", "norm"], "p"], method="holm")[1], rtol=1e-12)
    assert table.loc["lr", "visit_rate_by_value"] == "0.01: 0%; 0.1: 100%"


def test_a_hyperparameter_known_only_for_the_visiting_runs_predicts_nothing():
    visited = pd.DataFrame({0: [True, True, True, False, False, False]}, index=list("abcdef"))
    hparams = pd.DataFrame({"width": [32.0, 64.0, 64.0, None, None, None], "norm": list("xyxyxy")},
                           index=list("abcdef"))
    table = phases.hparam_predictors(visited, hparams)
    assert table["hparam"].tolist() == ["norm"]


def test_a_grid_value_that_splits_visiting_runs_exactly_gets_a_rank_test_p_not_a_vanishing_one():
    """6 runs at lr 0.1 visit, 6 at lr 0.02 do not: ρ = 1, and the p is near Fisher's exact 2/C(12, 6)
    = 0.0022, not the t approximation's p of ρ = 1 (below 1e-70)."""
    visited = pd.DataFrame({0: [True] * 6 + [False] * 6}, index=[f"r{i}" for i in range(12)])
    hparams = pd.DataFrame({"lr": [0.1] * 6 + [0.02] * 6}, index=visited.index)
    row = phases.hparam_predictors(visited, hparams).iloc[0]
    assert row["effect"] == pytest.approx(1.0)
    assert 1e-3 < row["p"] < 1e-2
    assert scipy.stats.spearmanr(hparams["lr"], visited[0].astype(float)).pvalue < 1e-70


def test_group_curves_give_the_mean_ci95_and_the_phase_of_most_runs():
    curves = pd.DataFrame({"run_id": ["a", "b", "c", "a", "b", "c"], "epoch": [0, 0, 0, 1, 1, 1],
                           "value": [0.1, 0.2, 0.4, 0.5, 0.6, 0.9]})
    decoded = pd.DataFrame({"run_id": ["a", "b", "c", "a", "b", "c"], "epoch": [0, 0, 0, 1, 1, 1],
                            "state": [0, 0, 1, 1, 1, 0]})
    curve, bands = phases.group_curves(curves, decoded, pd.Series("g", index=["a", "b", "c"]))
    assert curve.loc[0, "mean"] == pytest.approx(0.7 / 3) and curve.loc[0, "ci95"] == pytest.approx(
        ci95_halfwidth([0.1, 0.2, 0.4]))
    assert bands["state"].tolist() == [0, 1]


def test_group_curves_over_arrow_run_ids_match_a_plain_pandas_grouping():
    """Run ids as Arrow strings in many chunks (as DuckDB hands them over); a run without a group
    and a missing run id are left out."""
    rng = np.random.default_rng(3)
    ids = [f"r{i}" for i in range(30)]
    run_id = pd.Series(pd.array(ids * 4 + ["stray", None], dtype="string[pyarrow]"))
    curves = pd.DataFrame({"run_id": run_id, "epoch": [*np.repeat(range(4), 30), 0, 0],
                           "value": rng.normal(size=122)})
    decoded = curves.assign(state=rng.integers(0, 3, size=122))[["run_id", "epoch", "state"]]
    groups = pd.Series([f"g{i % 3}" for i in range(30)], index=ids)
    curve, bands = phases.group_curves(curves, decoded, groups)
    plain = curves.assign(group=curves["run_id"].astype(object).map(dict(groups.items()))).dropna(subset=["group"])
    expected = plain.groupby(["group", "epoch"])["value"].agg(["count", "mean"]).reset_index()
    assert curve["group"].tolist() == expected["group"].tolist()
    assert curve["runs"].tolist() == expected["count"].tolist()
    np.testing.assert_allclose(curve["mean"], expected["mean"])
    assert len(bands) == len(expected)


@pytest.mark.parametrize("function", [states.fit_states, phases.welch_test], ids=lambda f: f.__name__)
def test_public_functions_have_numpy_style_docs_with_examples(function):
    doc = function.__doc__ or ""
    for section in ("Parameters\n", "Returns\n", "Notes\n", "Examples\n"):
        assert section in doc
    assert sum(len(t.examples) for t in doctest.DocTestFinder().find(function)) >= 2
