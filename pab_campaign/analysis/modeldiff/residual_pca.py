"""ModelDiff on precomputed attribution scores: residual datamodels, their principal directions, what
each direction singles out, and the statistics of the counterfactual test. numpy only, any device's
scores (they arrive as arrays).

Scores are matrices (validation examples × training examples) of one learning algorithm each; row i
is the attribution vector of validation example i. For A minus B, each row of A loses its projection
on the matching row of B, leaving what A's predictions draw on and B's do not; the principal
directions of these residuals (in training-set space) are the distinguishing directions. How much of
each algorithm's behaviour a direction carries is the variance of its row-normalised scores along
it (ModelDiff's "explained variance"): high for A and low for B on an A−B direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pab_campaign.analysis.stats.descriptive import ci95_halfwidth
from pab_campaign.analysis.stats.tests import welch_test
from pab_campaign.errors import CampaignError

SUBPOPULATIONS = ("train+", "train-", "val+", "val-")


def row_normalise(scores: np.ndarray) -> np.ndarray:
    """`scores` (n × m) with every row scaled to unit Euclidean norm (all-zero rows stay zero)."""
    scores = np.asarray(scores, dtype=np.float64)
    norms = np.linalg.norm(scores, axis=1, keepdims=True)
    return np.divide(scores, norms, out=np.zeros_like(scores), where=norms > 0)


def residual_scores(scores: np.ndarray, against: np.ndarray) -> np.ndarray:
    """Each row of `scores` minus its projection on the same row of `against` (both n × m):
    `r_i = s_i − (s_i·t_i / t_i·t_i) t_i`; a zero row of `against` leaves the row whole."""
    scores, against = np.asarray(scores, dtype=np.float64), np.asarray(against, dtype=np.float64)
    if scores.shape != against.shape:
        raise CampaignError(f"score matrices of shape {scores.shape} and {against.shape} cannot be compared; "
                            "both algorithms need the same validation and training examples")
    inner = np.einsum("ij,ij->i", scores, against)
    squared = np.einsum("ij,ij->i", against, against)
    weight = np.divide(inner, squared, out=np.zeros_like(inner), where=squared > 0)
    return scores - weight[:, None] * against


def variance_along(scores: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Variance (ddof 0) of the row-normalised, centred `scores` (n × m) along each unit row of
    `directions` (k × m): `mean_i ((x_i − x̄)·p)²`, shape (k,). The total over an orthonormal basis is
    at most 1, so each value is a fraction of the scores' variance."""
    normalised = row_normalise(scores)
    centred = normalised - normalised.mean(axis=0)
    return np.mean((centred @ np.asarray(directions, dtype=np.float64).T) ** 2, axis=0)


@dataclass(frozen=True)
class ResidualPCA:
    """The distinguishing directions of `first` minus `second` ("A" or "B").

    `directions` (k × training examples, unit rows, each signed so its heavier tail of weights is
    positive), `projections` (validation examples × k) of the centred residuals on them,
    `residual_variance` (k,) the residuals' variance along each, and `variance_a` / `variance_b` (k,)
    the variance of algorithm A's / B's row-normalised scores along each.
    """

    first: str
    second: str
    directions: np.ndarray
    projections: np.ndarray
    residual_variance: np.ndarray
    variance_a: np.ndarray
    variance_b: np.ndarray

    @property
    def label(self) -> str:
        return f"{self.first}-{self.second}"


def principal_directions(matrix: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the rows of `matrix` (n × m): the top `components` unit directions (k × m), the centred
    rows' projections on them (n × k) and their variances (k,, ddof 1). A direction's sign is free;
    each is signed so the third moment of its weights is positive: the heavier tail, the few examples
    it singles out, gets the positive weights."""
    n, m = matrix.shape
    if not 1 <= components <= min(n, m):
        raise CampaignError(f"--components {components} must be between 1 and {min(n, m)} (the validation "
                            "and training examples bound it)")
    centred = matrix - matrix.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    directions = vt[:components]
    skew = np.sum(directions ** 3, axis=1)
    directions = directions * np.where(skew < 0, -1.0, 1.0)[:, None]
    variances = singular[:components] ** 2 / max(n - 1, 1)
    return directions, centred @ directions.T, variances


def _compare(scores_a: np.ndarray, scores_b: np.ndarray, components: int, first: str) -> ResidualPCA:
    ours, theirs = (scores_a, scores_b) if first == "A" else (scores_b, scores_a)
    directions, projections, variances = principal_directions(residual_scores(ours, theirs), components)
    return ResidualPCA(first, "B" if first == "A" else "A", directions, projections, variances,
                       variance_along(scores_a, directions), variance_along(scores_b, directions))


def a_minus_b(scores_a: np.ndarray, scores_b: np.ndarray, components: int) -> ResidualPCA:
    """Directions along which A's attributions vary and B's do not (ModelDiff's
    `get_A_minus_B_from_scores`); scores of shape (validation examples × training examples)."""
    return _compare(scores_a, scores_b, components, "A")


def b_minus_a(scores_a: np.ndarray, scores_b: np.ndarray, components: int) -> ResidualPCA:
    """Directions along which B's attributions vary and A's do not (`get_B_minus_A_from_scores`)."""
    return _compare(scores_a, scores_b, components, "B")


def directions_table(results: list[ResidualPCA]) -> pd.DataFrame:
    """One row per direction: comparison (A-B, B-A), direction (1..k), variance of A's and of B's
    row-normalised scores along it, and the residuals' variance."""
    rows = [{"comparison": r.label, "direction": k + 1, "variance_a": float(r.variance_a[k]),
             "variance_b": float(r.variance_b[k]), "residual_variance": float(r.residual_variance[k])}
            for r in results for k in range(len(r.directions))]
    return pd.DataFrame(rows)


def subpopulations(result: ResidualPCA, train_labels: np.ndarray, val_labels: np.ndarray, top: int) -> pd.DataFrame:
    """What each direction singles out: per direction the `top` training examples of largest weight
    (`train+`) and of most negative weight (`train-`), and the `top` validation examples of largest
    (`val+`) and of most negative projection (`val-`). Columns: comparison, direction, subpopulation,
    rank (1 = most extreme), index (into the split), label, value (the weight or projection)."""
    rows = []
    for k, weights in enumerate(result.directions):
        projections = result.projections[:, k]
        ends = {"train+": (np.argsort(-weights, kind="stable"), weights, train_labels),
                "train-": (np.argsort(weights, kind="stable"), weights, train_labels),
                "val+": (np.argsort(-projections, kind="stable"), projections, val_labels),
                "val-": (np.argsort(projections, kind="stable"), projections, val_labels)}
        for name, (order, values, labels) in ends.items():
            for rank, index in enumerate(order[:top], start=1):
                rows.append({"comparison": result.label, "direction": k + 1, "subpopulation": name, "rank": rank,
                             "index": int(index), "label": int(labels[index]), "value": float(values[index])})
    return pd.DataFrame(rows)


def class_composition(members: pd.DataFrame) -> pd.DataFrame:
    """Class counts and shares of each subpopulation of `subpopulations(...)`: comparison, direction,
    subpopulation, label, count, share (of the subpopulation), most frequent class first."""
    keys = ["comparison", "direction", "subpopulation"]
    counts = members.groupby([*keys, "label"]).size().rename("count").reset_index()
    counts["share"] = counts["count"] / counts.groupby(keys)["count"].transform("sum")
    return counts.sort_values([*keys, "count", "label"], ascending=[True, True, True, False, True],
                              ignore_index=True)


@dataclass(frozen=True)
class Interpretation:
    """What the directions of a comparison mean: `directions` (`directions_table`), `members`
    (`subpopulations` of every direction) and `composition` (`class_composition` of them)."""

    directions: pd.DataFrame
    members: pd.DataFrame
    composition: pd.DataFrame


def interpret(results: list[ResidualPCA], train_labels: dict[str, np.ndarray], val_labels: np.ndarray,
              top: int) -> Interpretation:
    """The table, subpopulations and class composition of `results`; a comparison's training examples
    carry the labels of its first algorithm (`train_labels["A"]` or `["B"]`)."""
    members = pd.concat([subpopulations(r, train_labels[r.first], val_labels, top) for r in results],
                        ignore_index=True)
    return Interpretation(directions_table(results), members, class_composition(members))


def choose_target_class(probability_shift: np.ndarray) -> int:
    """The class whose probability the transformation raises most on average over all runs, from the
    per-run, per-class shifts (runs × classes)."""
    return int(np.argmax(np.asarray(probability_shift, dtype=float).mean(axis=0)))


def shift_summary(shifts: pd.DataFrame) -> pd.DataFrame:
    """Per quantity (every column of `shifts` besides `algorithm` and `run_id`; one row per run), each
    algorithm's n, mean and CI95 half-width over its runs, and Welch's test of B against A: columns
    quantity, n_a, mean_a, ci95_a, n_b, mean_b, ci95_b, t, dof, p."""
    rows = []
    for quantity in [c for c in shifts.columns if c not in ("algorithm", "run_id")]:
        a = shifts.loc[shifts["algorithm"] == "A", quantity].to_numpy(float)
        b = shifts.loc[shifts["algorithm"] == "B", quantity].to_numpy(float)
        test = welch_test(b, a)
        t, dof, p = test["t"], test["dof"], test["p"]
        rows.append({"quantity": quantity, "n_a": len(a), "mean_a": float(a.mean()), "ci95_a": ci95_halfwidth(a),
                     "n_b": len(b), "mean_b": float(b.mean()), "ci95_b": ci95_halfwidth(b),
                     "t": t, "dof": dof, "p": p})
    return pd.DataFrame(rows)
