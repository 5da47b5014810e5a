"""The batched E-step, EM fit and decoding against hmmlearn's own one-sequence-at-a-time code."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from pab_campaign.analysis.phases import batched

# lengths 1 and 2 (no or one transition), repeated lengths that share a block, and unique ones
LENGTHS = np.array([1, 2, 5, 5, 30, 30, 30, 7, 12, 2, 30, 5] * 4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """hmmlearn's KMeans initialisation with one OpenMP thread (it spins its threads on a busy machine)."""
    with threadpool_limits(1):
        yield


def _data(seed: int = 1, n_features: int = 3) -> np.ndarray:
    """Sequences of LENGTHS that sit at one of three levels in the first feature."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(LENGTHS.sum(), n_features))
    x[:, 0] += np.repeat(rng.integers(0, 3, len(LENGTHS)), LENGTHS) * 2.0
    return x


def _model(covariance: str, x: np.ndarray) -> GaussianHMM:
    return GaussianHMM(3, covariance, random_state=0, n_iter=3, implementation="log").fit(x, LENGTHS)


@pytest.mark.parametrize("covariance", ["diag", "full"])
@pytest.mark.parametrize("block_epochs", [16, batched.BLOCK_EPOCHS])
def test_estep_statistics_equal_hmmlearns(covariance, block_epochs, monkeypatch):
    monkeypatch.setattr(batched, "BLOCK_EPOCHS", block_epochs)
    x = _data()
    model = _model(covariance, x)
    expected, expected_ll = model._do_estep(x, LENGTHS)
    stats, log_likelihood = batched.estep(model, x, LENGTHS)
    assert log_likelihood == pytest.approx(expected_ll, rel=1e-12)
    assert set(stats) == set(expected)
    for name in expected:
        np.testing.assert_allclose(stats[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_em_fit_follows_hmmlearns_fit_iteration_by_iteration(covariance):
    x = _data(2)
    fitted = _model(covariance, x)
    start = GaussianHMM(3, covariance, init_params="", n_iter=12, tol=-np.inf, implementation="log")
    for name in ("n_features", "startprob_", "transmat_", "means_", "_covars_"):
        setattr(start, name, copy.deepcopy(getattr(fitted, name)))
    theirs = copy.deepcopy(start).fit(x, LENGTHS)
    ours = batched.fit(copy.deepcopy(start), x, LENGTHS)
    assert ours.monitor_.iter == theirs.monitor_.iter == 12
    np.testing.assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-11)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, atol=1e-12, err_msg=name)


def test_em_fit_stops_at_the_tolerance_set_after_the_model_was_made():
    """hmmlearn's monitor keeps the tolerance the model was made with; the refit sets its own."""
    x = _data(5)
    model = _model("diag", x)
    model.init_params, model.n_iter, model.tol = "", 50, 1e6
    assert batched.fit(model, x, LENGTHS).monitor_.iter == 2


def test_em_fit_initialises_as_hmmlearn_does_and_stops_at_the_tolerance():
    x = _data(3)
    theirs = GaussianHMM(3, "diag", random_state=5, n_iter=100, tol=1e-3).fit(x, LENGTHS)
    ours = batched.fit(GaussianHMM(3, "diag", random_state=5, n_iter=100, tol=1e-3), x, LENGTHS)
    assert ours.monitor_.converged and ours.monitor_.iter == theirs.monitor_.iter < 100
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-8)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_decoding_equals_hmmlearns_viterbi_and_posteriors(covariance):
    x = _data(4)
    model = _model(covariance, x)
    states, posterior = batched.decode(model, x, LENGTHS)
    np.testing.assert_array_equal(states, model.predict(x, LENGTHS))
    np.testing.assert_allclose(posterior, model.predict_proba(x, LENGTHS).max(axis=1), rtol=1e-10)


def _unreachable_state_model() -> GaussianHMM:
    """Two states that never switch, starting in state 0: an epoch far out at state 1 leaves the
    scaled forward pass without mass once every state-0 density underflows."""
    model = GaussianHMM(2, "diag", init_params="", params="stmc", implementation="log")
    model.n_features = 1
    model.startprob_ = np.array([1.0, 0.0])
    model.transmat_ = np.eye(2)
    model.means_ = np.array([[0.0], [100.0]])
    model.covars_ = np.array([[0.1], [0.1]])
    return model


def test_a_block_that_loses_all_mass_is_computed_in_log_space_as_hmmlearn_does():
    model = _unreachable_state_model()
    x = np.r_[np.zeros(4), np.full(4, 100.0), np.zeros(4)][:, None]
    lengths = np.array([4, 4, 4])
    expected, expected_ll = model._do_estep(x, lengths)
    stats, log_likelihood = batched.estep(model, x, lengths)
    assert np.isfinite(log_likelihood) and log_likelihood == pytest.approx(expected_ll, rel=1e-12)
    for name in expected:
        np.testing.assert_allclose(stats[name], expected[name], rtol=1e-10, atol=1e-300, err_msg=name)
    states, posterior = batched.decode(model, x, lengths)
    np.testing.assert_array_equal(states, model.predict(x, lengths))
    np.testing.assert_allclose(posterior, model.predict_proba(x, lengths).max(axis=1))


def test_blocks_hold_one_length_each_and_every_sequence_once():
    lengths = np.array([3, 1, 3, 3, 7, 1, 3, 100])
    found = list(batched.blocks(lengths, block_epochs=6))
    assert sorted(np.concatenate(found).tolist()) == list(range(len(lengths)))
    for positions in found:
        assert len(set(lengths[positions])) == 1
        assert len(positions) == 1 or lengths[positions].sum() <= 6
    assert [lengths[p].tolist() for p in found] == [[1, 1], [3, 3], [3, 3], [7], [100]]
