"""EM, posteriors and Viterbi paths of a Gaussian HMM over many sequences at once.

hmmlearn runs its forward–backward pass one sequence at a time, with a few small numpy calls per
sequence; over 50,000 runs of 100 epochs that per-sequence cost is most of an EM iteration. Here
sequences of equal length are stacked into (N, T, F) blocks and each time step is one matrix
product over the whole block. The statistics handed to hmmlearn's own M-step are the ones its
E-step accumulates (expected starts, transitions, state occupancies, first and second moments),
so a fit follows hmmlearn's `fit` step for step and equals it to rounding.

Scaling. Each epoch's emission log-densities are shifted by their largest value before `exp`, and
the forward variables are normalised at every step (Rabiner's scaled forward–backward), so epochs
far from every state never underflow. A block where the forward pass still loses all mass (a state
that can only be reached through a transition of probability 0) is handed to hmmlearn's log-space
E-step instead.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hmmlearn.hmm import GaussianHMM

# Epochs per block: each (N, T, K) array of a block takes at most BLOCK_EPOCHS · K · 8 bytes.
BLOCK_EPOCHS = 1 << 16


def blocks(lengths: np.ndarray, block_epochs: int = BLOCK_EPOCHS) -> Iterator[np.ndarray]:
    """Positions of the sequences of `lengths` (S,) in blocks of one length each, at most
    `block_epochs` epochs (or one sequence) per block; every position once."""
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    cuts = np.flatnonzero(np.diff(sorted_lengths)) + 1
    for same in np.split(order, cuts):
        if len(same) == 0:
            continue
        per_block = max(1, block_epochs // max(1, int(lengths[same[0]])))
        for start in range(0, len(same), per_block):
            yield same[start:start + per_block]


def _stacked(x: np.ndarray, lengths: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The sequences of `x` (n × F, those of `lengths` one after another) block by block (`blocks`):
    the row of `x` of each epoch of each sequence (T, N), and the block time-major (T, N, F): row t
    holds every sequence's epoch t."""
    starts = np.r_[0, np.cumsum(lengths)[:-1]].astype(int)
    for positions in blocks(lengths):
        rows = np.arange(int(lengths[positions[0]]))[:, None] + starts[positions]
        yield rows, x[rows]


@contextmanager
def _in_log_space(model: GaussianHMM) -> Iterator[None]:
    """`model` computing with hmmlearn's log-space forward–backward, as it was afterwards."""
    implementation = model.implementation
    model.implementation = "log"
    try:
        yield
    finally:
        model.implementation = implementation


def log_densities(model: GaussianHMM, block: np.ndarray) -> np.ndarray:
    """Each state's Gaussian log-density (nats) at every epoch of `block` (T, N, F): (T, N, K).
    A diagonal model expands the squared distance into two matrix products (hmmlearn broadcasts an
    (n, K, F) array, several times slower); other covariances use hmmlearn's own density."""
    t_len, n, n_features = block.shape
    x = block.reshape(-1, n_features)
    if model.covariance_type != "diag":
        return model._compute_log_likelihood(x).reshape(t_len, n, -1)
    covars = np.maximum(model._covars_, np.finfo(float).tiny)
    precision = 1.0 / covars
    constant = n_features * np.log(2 * np.pi) + np.log(covars).sum(axis=1) + (model.means_**2 * precision).sum(axis=1)
    squared = (x**2) @ precision.T - 2.0 * (x @ (model.means_ * precision).T)
    return (-0.5 * (squared + constant)).reshape(t_len, n, -1)


def _scaled_forward_backward(model: GaussianHMM, block: np.ndarray) -> dict[str, np.ndarray] | None:
    """Scaled forward–backward over `block` (T, N, F): alpha and beta (T, N, K), the posteriors
    gamma (T, N, K), the normalisers c (T, N), the shifted emission probabilities b (T, N, K) and
    each sequence's log-likelihood (N,) in nats; None when some step loses all mass."""
    log_b = log_densities(model, block)
    shift = log_b.max(axis=2)
    b = np.exp(log_b - shift[:, :, None])
    transmat = model.transmat_
    ones = np.ones(len(transmat))
    alpha = np.empty_like(b)
    c = np.empty(shift.shape)
    np.multiply(model.startprob_, b[0], out=alpha[0])
    for t in range(len(b)):
        if t:
            np.matmul(alpha[t - 1], transmat, out=alpha[t])
            alpha[t] *= b[t]
        np.matmul(alpha[t], ones, out=c[t])  # the row sums; a matrix-vector product beats a reduction over 2..8 states
        if not c[t].all():
            return None
        alpha[t] /= c[t][:, None]
    beta = np.empty_like(b)
    beta[-1] = 1.0
    for t in range(len(b) - 2, -1, -1):
        np.matmul(b[t + 1] * beta[t + 1], transmat.T, out=beta[t])
        beta[t] /= c[t + 1][:, None]
    gamma = alpha * beta
    gamma /= (gamma @ ones)[:, :, None]
    log_likelihood = np.log(c).sum(axis=0) + shift.sum(axis=0)
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "c": c, "b": b, "log_likelihood": log_likelihood}


def _accumulate(model: GaussianHMM, stats: dict[str, Any], block: np.ndarray, lattice: dict[str, np.ndarray]) -> None:
    """Add the block's expected counts to `stats`, as hmmlearn's E-step accumulates them."""
    t_len, n, n_features = block.shape
    k = model.n_components
    gamma = lattice["gamma"].reshape(-1, k)
    x = block.reshape(-1, n_features)
    stats["nobs"] += n
    if "s" in model.params:
        stats["start"] += lattice["gamma"][0].sum(axis=0)
    if "t" in model.params and t_len > 1:
        before = lattice["alpha"][:-1].reshape(-1, k)
        after = (lattice["b"][1:] * lattice["beta"][1:] / lattice["c"][1:, :, None]).reshape(-1, k)
        stats["trans"] += model.transmat_ * (before.T @ after)
    if model._needs_sufficient_statistics_for_mean():
        stats["post"] += gamma.sum(axis=0)
        stats["obs"] += gamma.T @ x
    if model._needs_sufficient_statistics_for_covars():
        if model.covariance_type in ("spherical", "diag"):
            stats["obs**2"] += gamma.T @ x**2
        else:
            stats["obs*obs.T"] += np.einsum("ij,ik,il->jkl", gamma, x, x)


def _add(stats: dict[str, Any], more: dict[str, Any]) -> None:
    for name, value in more.items():
        stats[name] = stats[name] + value


def estep(model: GaussianHMM, x: np.ndarray, lengths: np.ndarray) -> tuple[dict[str, Any], float]:
    """hmmlearn's sufficient statistics of `x` (n × F, the sequences of `lengths` one after
    another) under `model`, and the total log-likelihood in nats."""
    stats = model._initialize_sufficient_statistics()
    total = 0.0
    for _, block in _stacked(x, lengths):
        lattice = _scaled_forward_backward(model, block)
        if lattice is None:
            more, log_likelihood = _log_space_estep(model, block)
            _add(stats, more)
            total += log_likelihood
            continue
        _accumulate(model, stats, block, lattice)
        total += float(lattice["log_likelihood"].sum())
    return stats, total


def _sequences(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`block` (T, N, F) as hmmlearn takes it: the N sequences one after another (N·T × F), and
    their lengths (N,)."""
    t_len, n, n_features = block.shape
    return block.transpose(1, 0, 2).reshape(-1, n_features), np.full(n, t_len)


def _log_space_estep(model: GaussianHMM, block: np.ndarray) -> tuple[dict[str, Any], float]:
    """hmmlearn's own log-space E-step over the sequences of `block` (T, N, F)."""
    with _in_log_space(model):
        stats, log_likelihood = model._do_estep(*_sequences(block))
    return stats, float(log_likelihood)


def fit(model: GaussianHMM, x: np.ndarray, lengths: np.ndarray) -> GaussianHMM:
    """`model` fitted by EM on `x` (n × F) with sequences of `lengths`, as hmmlearn's `fit` does it
    (its initialisation by `init_params`, its M-step, its convergence rule with the model's current
    `n_iter` and `tol`), with the E-step of `estep`. Returns `model`, fitted in place."""
    from hmmlearn.base import ConvergenceMonitor

    model._init(x, lengths)
    model._check()
    # a new monitor, so that `tol` and `n_iter` set after the model was made count (hmmlearn's
    # monitor keeps the values the model was constructed with)
    model.monitor_ = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
    for _ in range(model.n_iter):
        stats, log_likelihood = estep(model, x, lengths)
        lower_bound = model._compute_lower_bound(log_likelihood)
        model._do_mstep(stats)
        model.monitor_.report(lower_bound)
        if model.monitor_.converged:
            break
    return model


def _viterbi(model: GaussianHMM, block: np.ndarray) -> np.ndarray:
    """The most likely state path of each sequence of `block` (T, N, F): (T, N) state numbers; ties
    go to the lower state, as in hmmlearn."""
    log_b = log_densities(model, block)
    t_len, n, k = log_b.shape
    with np.errstate(divide="ignore"):
        log_start = np.log(model.startprob_)
        log_trans = np.log(model.transmat_)
    back = np.empty((t_len, n, k), dtype=np.intp)
    delta = log_start + log_b[0]
    for t in range(1, t_len):
        scores = delta[:, :, None] + log_trans
        back[t] = scores.argmax(axis=1)
        delta = np.take_along_axis(scores, back[t][:, None, :], axis=1)[:, 0] + log_b[t]
    path = np.empty((t_len, n), dtype=np.intp)
    path[-1] = delta.argmax(axis=1)
    columns = np.arange(n)
    for t in range(t_len - 1, 0, -1):
        path[t - 1] = back[t, columns, path[t]]
    return path


def decode(model: GaussianHMM, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi states (n,) and each epoch's largest posterior state probability (n,) of `x` (n × F,
    the sequences of `lengths` one after another): hmmlearn's `predict` and `predict_proba(...).max(1)`."""
    states = np.empty(len(x), dtype=np.intp)
    posterior = np.empty(len(x))
    for rows, block in _stacked(x, lengths):
        states[rows] = _viterbi(model, block)
        lattice = _scaled_forward_backward(model, block)
        if lattice is None:
            with _in_log_space(model):
                gamma = model.predict_proba(*_sequences(block))
            posterior[rows.T] = gamma.max(axis=1).reshape(rows.shape[1], rows.shape[0])
        else:
            posterior[rows] = lattice["gamma"].max(axis=2)
    return states, posterior
