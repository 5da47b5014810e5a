"""Latent training phases: a Gaussian hidden Markov model over the per-epoch statistics of every run
of a campaign (after Hu et al. 2023, "Latent State Models of Training Dynamics").

Sequences. Each usable run becomes a sequence of feature vectors, one per epoch at which every
feature was measured, z-scored within the run: each feature minus its mean over the run's epochs,
divided by its standard deviation (ddof 0); a feature constant within a run becomes 0. A run with
a NaN or infinite value at such an epoch is left out and listed with the reason, never silently.

Selection. The runs (a seeded subsample of `selection_runs` of them when there are more) are split,
seeded, into fit runs (80 %) and held-out runs (20 %). For every K = 1..max_states, `restarts`
GaussianHMMs (hmmlearn) start from different seeds and are fitted by EM (`fit_em`) on the fit runs
(K = 1 has a single solution and is fitted once). Each is scored on the held-out runs with
hmmlearn's `score`: the total log-likelihood of the held-out sequences, in nats. K's
representative is its restart with the highest log-likelihood on the fit runs (what EM maximises,
so the held-out runs stay out of every choice but K's); its AIC and BIC are hmmlearn's on the fit
runs (`-2 LL + 2 p`, `-2 LL + p ln N`, N = fit epochs, p free parameters). The chosen K is, by
default, the smallest K whose representative's held-out log-likelihood lies within one standard
error of the best K's (the SE of a total over held-out runs: √n · sd of the per-run
log-likelihoods, ddof 1); with `select="bic"` it is the K of lowest BIC.

Final model. The chosen K is refitted on all usable runs, starting from its representative, and
every run is decoded with Viterbi. Every EM fit steps runs of equal length together (`batched`:
hmmlearn's statistics, M-step and stopping rule, its tolerance scaled to the epochs fitted). States
are numbered by when they occur: state 0 is the state whose epochs lie earliest in their runs on
average (epoch position scaled to 0..1 per run).
"""
from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pab_campaign.analysis.campaign.campaign import Campaign
from pab_campaign.analysis.phases import batched
from pab_campaign.errors import CampaignError, did_you_mean
from pab_campaign.metrics import LATENT_STATE_STATISTICS, MetricSpec

if TYPE_CHECKING:
    from hmmlearn.hmm import GaussianHMM

# The 14 statistics of the latent-state work, as the `spectra` probe records them for the whole model.
LATENT_STATE_FEATURES = tuple(metric.label() for metric in LATENT_STATE_STATISTICS)
COVARIANCES = ("diag", "full")
RULES = ("heldout", "bic")
MIN_RUNS = 5
HELD_OUT_FRACTION = 0.2
# EM stops after N_ITER iterations or when the log-likelihood gains less than TOL_PER_EPOCH nats
# per epoch of data.
N_ITER = 200
TOL_PER_EPOCH = 1e-4
SELECTION_COLUMNS = ["k", "n_params", "restarts_ok", "fit_ll", "aic", "bic", "heldout_ll", "heldout_ll_se",
                     "heldout_ll_mean", "heldout_ll_std", "heldout_ll_best", "heldout_ll_per_epoch", "iterations",
                     "converged", "chosen"]


@dataclass
class Sequences:
    """The usable runs, in the same order in every list: `run_ids`; `epochs` (T_r,) each; `values`
    (T_r × F, the features in their original units); and `left_out` (run_id, reason)."""

    features: list[str]
    run_ids: list[str]
    epochs: list[np.ndarray]
    values: list[np.ndarray]
    left_out: list[tuple[str, str]] = field(default_factory=list)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(e) for e in self.epochs], dtype=int)

    def zscored(self) -> list[np.ndarray]:
        """Each run's values z-scored within the run (`zscore`), runs of equal length at once."""
        out: list[np.ndarray] = [np.empty((0, 0))] * len(self.values)
        by_length: dict[int, list[int]] = {}
        for position, values in enumerate(self.values):
            by_length.setdefault(len(values), []).append(position)
        for positions in by_length.values():
            stacked = zscore(np.stack([self.values[p] for p in positions]))
            for position, z in zip(positions, stacked):
                out[position] = z
        return out


@dataclass(frozen=True)
class StatesRequest:
    """What to fit: features (metric specs without @epoch), K = 1..max_states, restarts per K,
    the covariance of each state's Gaussian, the selection rule, the seed of the split, the
    subsample and the EM starts, the largest number of runs model selection uses, and how many
    processes fit at once."""

    features: tuple[MetricSpec, ...] = tuple(MetricSpec.parse(f) for f in LATENT_STATE_FEATURES)
    max_states: int = 8
    restarts: int = 8
    covariance: str = "diag"
    select: str = "heldout"
    seed: int = 0
    selection_runs: int = 500
    jobs: int = 1

    def __post_init__(self) -> None:
        problems = [(self.max_states < 1, f"max_states={self.max_states} must be >= 1"),
                    (self.restarts < 1, f"restarts={self.restarts} must be >= 1"),
                    (self.covariance not in COVARIANCES, f"covariance={self.covariance!r}: choose {COVARIANCES}"),
                    (self.select not in RULES, f"select={self.select!r}: choose {RULES}"),
                    (self.selection_runs < MIN_RUNS, f"selection_runs={self.selection_runs} must be >= {MIN_RUNS}"),
                    (self.jobs < 1, f"jobs={self.jobs} must be >= 1")]
        for bad, message in problems:
            if bad:
                raise CampaignError(message)
        for spec in self.features:
            if spec.epoch is not None:
                raise CampaignError(f"feature {spec.label}: a feature is a whole trajectory; drop the @{spec.epoch}")
        labels = [spec.label for spec in self.features]
        if len(set(labels)) != len(labels) or not labels:
            raise CampaignError(f"features {labels}: name each feature once, at least one")


@dataclass
class StatesFit:
    """The result of `fit_states`: the selection table (SELECTION_COLUMNS), the chosen K and why,
    the final model (states numbered by when they occur), the decoded `states` (run_id, epoch,
    state, posterior_max), K's representatives `candidates` (fitted on the fit runs), which runs
    were fitted and held out, notes for the user, and each run's z-scored sequence `z` (T_r × F,
    in the order of `sequences`) the model was fitted on."""

    sequences: Sequences
    selection: pd.DataFrame
    chosen_k: int
    reason: str
    model: GaussianHMM
    states: pd.DataFrame
    candidates: dict[int, GaussianHMM]
    fit_runs: list[str]
    held_out_runs: list[str]
    notes: list[str]
    z: list[np.ndarray]


# ---- sequences ---------------------------------------------------------------------------------
def zscore(values: np.ndarray) -> np.ndarray:
    """`values` (T × F, or N × T × F for N runs) with each column of a run minus its mean over the
    epochs, divided by its standard deviation (ddof 0, as `scipy.stats.zscore`); a column constant
    to within 1e-9 of its largest magnitude becomes 0."""
    mean = values.mean(axis=-2, keepdims=True)
    std = values.std(axis=-2, keepdims=True)
    constant = std <= 1e-9 * np.abs(values).max(axis=-2, keepdims=True)
    return np.divide(values - mean, std, out=np.zeros_like(values, dtype=float), where=~constant)


def build_sequences(frame: pd.DataFrame, features: list[str], run_ids: list[str]) -> Sequences:
    """Sequences from `frame` (run_id, epoch, n_present, f0..f{F-1}; sorted by run_id then epoch):
    epochs where fewer than F features were measured are dropped; a run with a non-finite value,
    or fewer than two complete epochs, is left out with its reason."""
    complete = frame[frame["n_present"] == len(features)]
    values = complete[[f"f{i}" for i in range(len(features))]].to_numpy(float)
    ids = complete["run_id"].to_numpy(object)
    epochs = complete["epoch"].to_numpy(int)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(ids)].astype(int)
    finite_rows = np.isfinite(values).all(axis=1)
    has_bad = ~np.logical_and.reduceat(finite_rows, starts) if len(starts) else np.array([], dtype=bool)
    found: dict[str, tuple[np.ndarray, np.ndarray] | str] = {}
    for start, end, bad_run in zip(starts.tolist(), ends.tolist(), has_bad.tolist()):
        if bad_run:
            block = values[start:end]
            bad = np.argwhere(~np.isfinite(block))
            row, column = bad[0]
            found[ids[start]] = (f"{features[column]} is {block[row, column]} at epoch {epochs[start + row]} "
                                 f"({len(bad)} non-finite values)")
        elif end - start < 2:
            found[ids[start]] = "only one epoch at which every feature was measured"
        else:
            found[ids[start]] = (epochs[start:end], values[start:end])
    sequences = Sequences(list(features), [], [], [])
    for run_id in run_ids:
        entry = found.get(run_id, "no epoch at which every feature was measured")
        if isinstance(entry, str):
            sequences.left_out.append((run_id, entry))
        else:
            sequences.run_ids.append(run_id)
            sequences.epochs.append(entry[0])
            sequences.values.append(entry[1])
    return sequences


def _wanted(features: tuple[MetricSpec, ...]) -> pd.DataFrame:
    return pd.DataFrame({"context": [s.context for s in features], "metric": [s.metric for s in features],
                         "key": pd.array([s.key or "" for s in features], dtype=object),
                         "i": range(len(features))})


_JOIN = ("FROM traj t JOIN wanted w ON t.context = w.context AND t.metric = w.metric "
         "AND coalesce(t.key, '') = w.key WHERE t.run_id IN (SELECT unnest($ids::VARCHAR[]))")


def load_sequences(campaign: Campaign, run_ids: list[str], features: tuple[MetricSpec, ...]) -> Sequences:
    """The sequences of `features` for the runs `run_ids` of `campaign`, read from its compacted
    trajectories; CampaignError naming the feature when one was never tracked by these runs."""
    tables = {"wanted": _wanted(features)}
    columns = ", ".join(f"max(t.value) FILTER (WHERE w.i = {i}) AS f{i}, bool_or(w.i = {i}) AS p{i}"
                        for i in range(len(features)))
    frame = campaign.query_trajectories(
        f"SELECT t.run_id AS run_id, t.epoch AS epoch, count(DISTINCT w.i) AS n_present, {columns} {_JOIN} "
        "GROUP BY t.run_id, t.epoch ORDER BY t.run_id, t.epoch", {"ids": run_ids}, tables)
    missing = [spec.label for i, spec in enumerate(features) if not frame[f"p{i}"].any()]
    if missing:
        tracked = campaign.query_trajectories(
            "SELECT DISTINCT context || '/' || metric AS name FROM traj WHERE key IS NULL ORDER BY name", {})
        raise CampaignError(f"metric {', '.join(missing)} was never tracked by these runs"
                            f"{did_you_mean(missing[0], tracked['name'])}; pass tracked metrics to --metrics, e.g. "
                            f"{', '.join(tracked['name'].head(16))}")
    return build_sequences(frame, [s.label for s in features], run_ids)


# ---- splitting and fitting ---------------------------------------------------------------------
def split_runs(n_runs: int, seed: int, held_out: float = HELD_OUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions of the fit runs and of the held-out runs (a seeded permutation; round(20 %),
    at least one, held out). CampaignError for fewer than MIN_RUNS runs."""
    if n_runs < MIN_RUNS:
        raise CampaignError(f"{n_runs} usable run(s): fitting phases needs at least {MIN_RUNS} for the 80/20 split "
                            "into fit and held-out runs; launch more seeds or configurations")
    order = np.random.default_rng(seed).permutation(n_runs)
    n_held = max(1, round(held_out * n_runs))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def subsample_runs(n_runs: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded subsample of `size` runs (all runs when there are no more)."""
    if n_runs <= size:
        return np.arange(n_runs)
    return np.sort(np.random.default_rng([seed, 1]).choice(n_runs, size=size, replace=False))


def restart_seed(seed: int, k: int, restart: int) -> int:
    """The random_state of restart `restart` of K = `k` (independent streams per seed, K, restart)."""
    return int(np.random.SeedSequence([seed, k, restart]).generate_state(1)[0])


def n_free_parameters(k: int, n_features: int, covariance: str) -> int:
    """Free parameters of a K-state Gaussian HMM: start (K-1), transitions K(K-1), means K·F, and
    covariances K·F (diag) or K·F(F+1)/2 (full) — what hmmlearn's aic/bic count."""
    per_state = n_features if covariance == "diag" else n_features * (n_features + 1) // 2
    return (k - 1) + k * (k - 1) + k * n_features + k * per_state


def em_tolerance(n_epochs: int) -> float:
    """EM's stopping tolerance (nats) for data of `n_epochs` epochs in total."""
    return TOL_PER_EPOCH * n_epochs


def new_hmm(k: int, covariance: str, random_state: int, tol: float) -> GaussianHMM:
    """An unfitted hmmlearn GaussianHMM (imported here: the command line starts without it)."""
    from hmmlearn.hmm import GaussianHMM

    return GaussianHMM(n_components=k, covariance_type=covariance, random_state=random_state, n_iter=N_ITER,
                       tol=tol)


def fit_em(model: GaussianHMM, x: np.ndarray, lengths: np.ndarray) -> GaussianHMM:
    """`model` initialised as hmmlearn initialises it and fitted by EM on `x`, with the E-step over
    runs of equal length at once (`batched`); it computes in log space from then on, so that scores
    and posteriors of far-off epochs never underflow."""
    model = batched.fit(model, x, lengths)
    model.implementation = "log"
    return model


@contextmanager
def _hmm_context() -> Iterator[None]:
    """One OpenMP/BLAS thread per fit (the fits run in parallel processes instead; KMeans, which
    initialises the means, spins its threads on a busy machine); hmmlearn's log line for every
    non-improving EM step and numpy's warnings for a state that loses all its epochs kept out of
    the terminal (such a fit ends with a non-finite likelihood and is reported as failed)."""
    from threadpoolctl import threadpool_limits

    logger = logging.getLogger("hmmlearn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with threadpool_limits(1), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            yield
    finally:
        logger.setLevel(level)


def _split(x: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(x, np.cumsum(lengths)[:-1])


def fit_restart(x_fit: np.ndarray, fit_lengths: np.ndarray, x_held: np.ndarray, held_lengths: np.ndarray,
                k: int, covariance: str, restart: int, random_state: int) -> dict[str, Any]:
    """Fit one K-state HMM on the fit runs and score it: fit and held-out log-likelihoods (nats),
    the held-out log-likelihood of each held-out run, EM's iterations; `error` when EM failed."""
    result: dict[str, Any] = {"k": k, "restart": restart, "error": None}
    with _hmm_context():
        model = new_hmm(k, covariance, random_state, em_tolerance(len(x_fit)))
        try:
            model = fit_em(model, x_fit, fit_lengths)
            fit_ll = model.score(x_fit, fit_lengths)
            held_ll = model.score(x_held, held_lengths)
            per_run = np.array([model.score(seq) for seq in _split(x_held, held_lengths)])
        except (ValueError, np.linalg.LinAlgError) as exc:
            result["error"] = str(exc).strip().splitlines()[0]
            return result
    if not (math.isfinite(fit_ll) and math.isfinite(held_ll)):
        result["error"] = "non-finite log-likelihood"
        return result
    result.update(model=model, fit_ll=fit_ll, heldout_ll=held_ll, per_run=per_run,
                  iterations=model.monitor_.iter, converged=bool(model.monitor_.converged))
    return result


Progress = Callable[[int, int], None]


def _run_fits(tasks: list[tuple[int, int]], data: tuple[np.ndarray, ...], covariance: str, seed: int, jobs: int,
              progress: Progress | None) -> list[dict[str, Any]]:
    """Every (K, restart) task, in `jobs` processes at once (joblib); `progress(done, total)` after each."""
    calls: list[tuple[Any, ...]] = [(*data, k, covariance, r, restart_seed(seed, k, r)) for k, r in tasks]
    if jobs == 1:
        results_iter: Iterator[dict[str, Any]] = (fit_restart(*call) for call in calls)
    else:
        from joblib import Parallel, delayed

        results_iter = Parallel(n_jobs=jobs, return_as="generator")(delayed(fit_restart)(*call) for call in calls)
    results = []
    for result in results_iter:
        results.append(result)
        if progress:
            progress(len(results), len(calls))
    return results


def _selection_rows(results: list[dict[str, Any]], max_states: int, n_features: int, covariance: str,
                    n_fit_epochs: int, n_held_epochs: int) -> tuple[pd.DataFrame, dict[int, GaussianHMM]]:
    rows: list[dict[str, Any]] = []
    candidates: dict[int, GaussianHMM] = {}
    for k in range(1, max_states + 1):
        ok = [r for r in results if r["k"] == k and r["error"] is None]
        p = n_free_parameters(k, n_features, covariance)
        if not ok:
            rows.append({"k": k, "n_params": p, "restarts_ok": 0})
            continue
        best = max(ok, key=lambda r: r["fit_ll"])
        candidates[k] = best["model"]
        held = np.array([r["heldout_ll"] for r in ok])
        per_run = best["per_run"]
        se = math.sqrt(len(per_run)) * float(np.std(per_run, ddof=1)) if len(per_run) > 1 else math.nan
        rows.append({
            "k": k, "n_params": p, "restarts_ok": len(ok), "fit_ll": best["fit_ll"],
            "aic": -2 * best["fit_ll"] + 2 * p, "bic": -2 * best["fit_ll"] + p * math.log(n_fit_epochs),
            "heldout_ll": best["heldout_ll"], "heldout_ll_se": se, "heldout_ll_mean": float(held.mean()),
            "heldout_ll_std": float(held.std(ddof=1)) if len(held) > 1 else math.nan,
            "heldout_ll_best": float(held.max()), "heldout_ll_per_epoch": best["heldout_ll"] / n_held_epochs,
            "iterations": best["iterations"], "converged": best["converged"]})
    frame = pd.DataFrame(rows, columns=SELECTION_COLUMNS)
    frame["chosen"] = False
    return frame, candidates


def select_k(selection: pd.DataFrame, rule: str, n_held: int, n_fit: int) -> tuple[int, str]:
    """The chosen K and the reason, in words, from the selection table (see the module docstring)."""
    valid = selection[selection["restarts_ok"] > 0]
    if rule == "bic":
        row = valid.loc[valid["bic"].idxmin()]
        return int(row["k"]), (f"K={int(row['k'])} has the lowest BIC ({row['bic']:.1f}) of K=1..{selection['k'].max()}"
                               f", fitted on {n_fit} runs")
    best = valid.loc[valid["heldout_ll"].idxmax()]
    se = 0.0 if math.isnan(best["heldout_ll_se"]) else float(best["heldout_ll_se"])
    chosen = valid[valid["heldout_ll"] >= best["heldout_ll"] - se].iloc[0]
    k, k_best = int(chosen["k"]), int(best["k"])
    se_text = f"{se:.1f} nats over {n_held} held-out runs" if n_held > 1 else "none with one held-out run"
    if k == k_best:
        return k, (f"K={k} has the highest held-out log-likelihood ({best['heldout_ll']:.1f} nats); no smaller K "
                   f"comes within one standard error ({se_text})")
    return k, (f"K={k} is the smallest K whose held-out log-likelihood ({chosen['heldout_ll']:.1f} nats) lies within "
               f"one standard error ({se_text}) of the best, K={k_best} ({best['heldout_ll']:.1f})")


# ---- the final model ---------------------------------------------------------------------------
def refit(start: GaussianHMM, x: np.ndarray, lengths: np.ndarray) -> GaussianHMM:
    """`start`'s K refitted by EM on `x`, beginning at `start`'s parameters (no new initialisation),
    until it gains less than the tolerance of `x`'s epochs."""
    model = copy.deepcopy(start)
    model.init_params = ""
    model.tol = em_tolerance(len(x))
    with _hmm_context():
        return fit_em(model, x, lengths)


def occurrence_order(states: np.ndarray, lengths: np.ndarray, k: int) -> np.ndarray:
    """States sorted by the mean position (0 = a run's first epoch, 1 = its last) of their epochs;
    states never decoded come last. Entry i is the old label of the new state i."""
    position = np.concatenate([np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(n) for n in lengths])
    keys = [position[states == s].mean() if (states == s).any() else math.inf for s in range(k)]
    return np.argsort(keys, kind="stable")


def permute_states(model: GaussianHMM, order: np.ndarray) -> GaussianHMM:
    """A copy of `model` whose state i is `model`'s state order[i]."""
    out = copy.deepcopy(model)
    covars = model.covars_
    native = np.stack([np.diag(c) for c in covars]) if model.covariance_type == "diag" else covars
    out.startprob_ = model.startprob_[order]
    out.transmat_ = model.transmat_[np.ix_(order, order)]
    out.means_ = model.means_[order]
    out.covars_ = native[order]
    return out


def decode(model: GaussianHMM, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi states (n,) and each epoch's largest posterior state probability (n,)."""
    with _hmm_context():
        return batched.decode(model, x, lengths)


def fit_states(sequences: Sequences, request: StatesRequest, progress: Progress | None = None) -> StatesFit:
    """Fit Gaussian HMMs with K = 1..max_states to the runs' z-scored sequences, choose K, refit it
    on all runs and decode every run.

    Parameters
    ----------
    sequences : Sequences
        The usable runs' feature sequences (`load_sequences`, or built by hand), original units.
    request : StatesRequest
        max_states, restarts, covariance (diag | full), select (heldout | bic), seed,
        selection_runs (the largest number of runs model selection uses) and jobs (processes).
    progress : callable, optional
        Called as ``progress(done, total)`` after each fit of the selection.

    Returns
    -------
    StatesFit
        The selection table (one row per K: SELECTION_COLUMNS), the chosen K and the reason, the
        final model, the states per run and epoch, and notes.

    Raises
    ------
    CampaignError
        With fewer than 5 usable runs, or when every fit failed.

    Notes
    -----
    See the module docstring for the split, the representative restart, the one-standard-error
    rule and the numbering of states. Every random choice derives from ``request.seed``, so the
    same request on the same runs gives the same result, in one process or several. Tested on
    sequences drawn from a known 3-state HMM: K = 3 is chosen and the Viterbi states agree with
    the planted ones on at least 90 % of epochs; the held-out log-likelihoods equal hmmlearn's
    ``score`` of models fitted directly on the same split.

    Examples
    --------
    Twelve runs of 40 epochs that switch between two levels of two features halfway:

    >>> rng = np.random.default_rng(0)
    >>> values = [np.r_[rng.normal(0, 0.1, (20, 2)), rng.normal(3, 0.1, (20, 2))] for _ in range(12)]
    >>> sequences = Sequences(["a/x", "a/y"], [f"r{i}" for i in range(12)], [np.arange(40)] * 12, values)
    >>> result = fit_states(sequences, StatesRequest(features=(MetricSpec("a", "x"), MetricSpec("a", "y")),
    ...                                            max_states=3, restarts=2))
    >>> result.chosen_k
    2
    >>> result.states.groupby("state")["epoch"].agg(["min", "max"]).to_dict("index")
    {0: {'min': 0, 'max': 19}, 1: {'min': 20, 'max': 39}}
    """
    z = sequences.zscored()
    lengths = sequences.lengths
    n_runs = len(z)
    chosen_runs = subsample_runs(n_runs, request.selection_runs, request.seed)
    fit_pos, held_pos = split_runs(len(chosen_runs), request.seed)
    fit_idx, held_idx = chosen_runs[fit_pos], chosen_runs[held_pos]
    data = (np.concatenate([z[i] for i in fit_idx]), lengths[fit_idx],
            np.concatenate([z[i] for i in held_idx]), lengths[held_idx])
    tasks = [(k, r) for k in range(request.max_states, 0, -1) for r in range(1 if k == 1 else request.restarts)]
    results = _run_fits(tasks, data, request.covariance, request.seed, request.jobs, progress)
    n_features = len(sequences.features)
    selection, candidates = _selection_rows(results, request.max_states, n_features, request.covariance,
                                            int(lengths[fit_idx].sum()), int(lengths[held_idx].sum()))
    notes = []
    if not candidates:
        error = next(r["error"] for r in results if r["error"])
        raise CampaignError(f"every HMM fit failed (first: {error}); try --covariance diag or fewer --max-states")
    for k in sorted({r["k"] for r in results if r["error"]}):
        failed = [r for r in results if r["k"] == k and r["error"]]
        notes.append(f"K={k}: {len(failed)} of {len(failed) + int(selection.loc[k - 1, 'restarts_ok'])} fits failed "
                     f"({failed[0]['error']})")
    k, reason = select_k(selection, request.select, len(held_idx), len(fit_idx))
    selection.loc[selection["k"] == k, "chosen"] = True
    if k == request.max_states > 1:
        notes.append(f"K={k} is the largest K tried; more states may fit better: try a larger --max-states")
    if len(chosen_runs) < n_runs:
        notes.append(f"model selection used a seeded subsample of {len(chosen_runs)} of the {n_runs} runs "
                     f"({len(fit_idx)} fit, {len(held_idx)} held out); K={k} was then fitted on all {n_runs} runs")
    x_all = np.concatenate(z)
    final = refit(candidates[k], x_all, lengths)
    raw_states, posterior = decode(final, x_all, lengths)
    order = occurrence_order(raw_states, lengths, k)
    final = permute_states(final, order)
    states = np.argsort(order)[raw_states]
    table = pd.DataFrame({"run_id": np.repeat(np.array(sequences.run_ids, dtype=object), lengths),
                          "epoch": np.concatenate(sequences.epochs).astype("int32"),
                          "state": states.astype("int16"), "posterior_max": posterior})
    return StatesFit(sequences, selection, k, reason, final, table, candidates,
                     [sequences.run_ids[i] for i in fit_idx], [sequences.run_ids[i] for i in held_idx], notes, z)
