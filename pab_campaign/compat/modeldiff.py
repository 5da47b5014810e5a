"""ModelDiff's API (`from modeldiff import ModelDiff`) for any two models: `nn.Module`s (or factories
that build one), lists of checkpoints (state dicts, or paths to files holding one, ours included)
and data loaders, over our TRAK scores (`training.attribution`, CPU or CUDA) and residual PCA
(`analysis.modeldiff.residual_pca`).

A comparison returns ModelDiff's dict: `directions` (k × training examples), `projections`
(validation examples × k), `variances` ({'A', 'B'}: the variance of each algorithm's row-normalised
scores along each direction) and `scores` ({'A', 'B'}: validation × training examples, the objects
given to `get_*_from_scores`, arrays of TRAK scores from `get_A_minus_B`), plus
`result`, our `ResidualPCA`. Two differences: directions are signed so their heavier tail is
positive (ModelDiff leaves the sign to the PCA), and `variances` are keyed by algorithm in both
directions (ModelDiff's B − A keys them by argument position, so its 'A' holds B's variance).
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pab_campaign.analysis.modeldiff.residual_pca import ResidualPCA, a_minus_b, b_minus_a
from pab_campaign.training import checkpoint
from pab_campaign.training.attribution import Ensemble, resolve_device, trak_scores
from pab_campaign.training.data import Split
from pab_campaign.training.state import MODEL

__all__ = ["ModelDiff"]
Model = nn.Module | Callable[[], nn.Module]


class ModelDiff:
    """ModelDiff's differ (see the module docstring). `proj_dim`, `seed` and `device` (`auto`, `cpu`,
    `cuda`) are ours, keyword-only; `scores_save_dir` is accepted and unused (scores stay in memory).

    Examples
    --------
    On scores computed elsewhere (validation × training examples):

    >>> rng = np.random.default_rng(0)
    >>> shared = rng.normal(size=(30, 1)) * rng.normal(size=(1, 50))
    >>> only_a = np.outer(rng.normal(size=30), np.eye(50)[7])
    >>> scores_a, scores_b = shared + only_a, shared + 0.1 * rng.normal(size=(30, 50))
    >>> diff = ModelDiff().get_A_minus_B_from_scores(scores_a, scores_b, num_pca_comps=1)
    >>> int(np.abs(diff["directions"][0]).argmax()), bool(diff["variances"]["A"][0] > diff["variances"]["B"][0])
    (7, True)
    """

    def __init__(self, modelA: Model | None = None, modelB: Model | None = None, modelA_ckpts: Iterable = (),
                 modelB_ckpts: Iterable = (), train_loader: Iterable | None = None,
                 scores_save_dir: str = "./modeldiff_scores", *, proj_dim: int = 512, seed: int = 0,
                 device: str = "auto") -> None:
        self.modelA, self.modelB = modelA, modelB
        self.modelA_ckpts, self.modelB_ckpts = list(modelA_ckpts), list(modelB_ckpts)
        self.train_loader, self.scores_save_dir = train_loader, scores_save_dir
        self.proj_dim, self.seed, self.device = proj_dim, seed, resolve_device(device)
        self._scored: tuple[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] | None = None

    # ---- on models -------------------------------------------------------------------------------
    def get_A_minus_B(self, val_loader: Iterable, num_pca_comps: int = 2) -> dict[str, Any]:
        """Directions along which A's attributions of `val_loader`'s examples vary and B's do not."""
        return self.get_A_minus_B_from_scores(*self._scores_of(val_loader), num_pca_comps=num_pca_comps)

    def get_B_minus_A(self, val_loader: Iterable, num_pca_comps: int = 2) -> dict[str, Any]:
        """Directions along which B's attributions vary and A's do not."""
        return self.get_B_minus_A_from_scores(*self._scores_of(val_loader), num_pca_comps=num_pca_comps)

    def _scores_of(self, val_loader: Iterable) -> tuple[np.ndarray, np.ndarray]:
        """TRAK scores of A and B on `val_loader`: kept for the next call with the same loader,
        models, checkpoints and training loader (the same objects), computed afresh otherwise."""
        inputs = (val_loader, self.modelA, self.modelB, self.train_loader, *self.modelA_ckpts, None,
                  *self.modelB_ckpts)
        if self._scored is not None and len(self._scored[0]) == len(inputs) and all(
                kept is given for kept, given in zip(self._scored[0], inputs)):
            return self._scored[1]
        if self.modelA is None or self.modelB is None or self.train_loader is None:
            raise ValueError("ModelDiff(modelA, modelB, modelA_ckpts, modelB_ckpts, train_loader) is needed to "
                             "score; with scores computed elsewhere use get_A_minus_B_from_scores")
        for side, ckpts in (("modelA_ckpts", self.modelA_ckpts), ("modelB_ckpts", self.modelB_ckpts)):
            if not ckpts:
                raise ValueError(f"{side} is empty; give the checkpoints (paths or state dicts) TRAK averages over, "
                                 "e.g. one per independently trained model")
        train, val = _split(self.train_loader, "train_loader"), _split(val_loader, "val_loader")
        score_a, score_b = (
            trak_scores(Ensemble(_module(model).to(self.device), [_state_dict(c) for c in ckpts], train, val,
                                 self.device), self.proj_dim, self.seed)
            for model, ckpts in ((self.modelA, self.modelA_ckpts), (self.modelB, self.modelB_ckpts)))
        self._scored = (inputs, (score_a, score_b))
        return score_a, score_b

    # ---- on scores -------------------------------------------------------------------------------
    def get_A_minus_B_from_scores(self, scoresA: Any, scoresB: Any, num_pca_comps: int = 2) -> dict[str, Any]:
        """Residual PCA of A minus B on scores (validation × training examples, arrays or tensors)."""
        a, b = _checked(scoresA, scoresB, num_pca_comps)
        return _as_modeldiff(a_minus_b(a, b, num_pca_comps), scoresA, scoresB)

    def get_B_minus_A_from_scores(self, scoresA: Any, scoresB: Any, num_pca_comps: int = 2) -> dict[str, Any]:
        """Residual PCA of B minus A on scores (validation × training examples)."""
        a, b = _checked(scoresA, scoresB, num_pca_comps)
        return _as_modeldiff(b_minus_a(a, b, num_pca_comps), scoresA, scoresB)


def _checked(scores_a: Any, scores_b: Any, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Both score matrices as float64 arrays; ValueError naming the argument for scores that are not
    two finite matrices of one shape, or a `num_pca_comps` the matrices cannot give."""
    a, b = _array(scores_a), _array(scores_b)
    for name, array in (("scoresA", a), ("scoresB", b)):
        if array.ndim != 2:
            raise ValueError(f"{name} has shape {array.shape}; give validation × training examples scores (2-D)")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} values that are NaN or infinite; "
                             "give finite scores")
    if a.shape != b.shape:
        raise ValueError(f"scoresA {a.shape} and scoresB {b.shape}: both must score the same validation and "
                         "training examples")
    if (not isinstance(components, numbers.Integral) or isinstance(components, bool)  # numpy's ints too
            or not 1 <= components <= min(a.shape)):
        raise ValueError(f"num_pca_comps={components!r} must be a whole number in 1 .. {min(a.shape)} (the fewer of "
                         "validation and training examples)")
    return a, b


def _as_modeldiff(result: ResidualPCA, a: Any, b: Any) -> dict[str, Any]:
    return {"directions": result.directions, "projections": result.projections,
            "variances": {"A": result.variance_a, "B": result.variance_b}, "scores": {"A": a, "B": b},
            "result": result}


def _array(scores: Any) -> np.ndarray:
    return (scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)).astype(
        np.float64)


def _module(model: Model) -> nn.Module:
    """`model` itself, or what the factory `model()` builds."""
    return model if isinstance(model, nn.Module) else model()


def _state_dict(item: Any) -> dict[str, torch.Tensor]:
    """A checkpoint as a state dict: a mapping of tensors, or a file holding one (ours: its model)."""
    if isinstance(item, (str, Path)):
        item = checkpoint.load(Path(item))
        item = item.get(MODEL, item)
    if not isinstance(item, Mapping):
        raise ValueError(f"a checkpoint must be a state dict or a path to one, not {type(item).__name__}")
    return dict(item)


def _split(loader: Iterable, name: str) -> Split:
    """Every (x, y) batch of `loader`, in order, as one in-memory split; ValueError for a loader that
    shuffles (the scores' columns and rows are the examples in the data set's order: a shuffled
    order would point each direction at other examples) or yields nothing."""
    if isinstance(getattr(loader, "sampler", None), torch.utils.data.RandomSampler):
        raise ValueError(f"{name} shuffles its examples; give a DataLoader with shuffle=False, so that score column "
                         "(row) i is example i of its data set")
    batches = [(x, y) for x, y, *_ in loader]
    if not batches:
        raise ValueError(f"{name} yields no batch; give a loader over the examples to score")
    xs, ys = zip(*batches)
    return Split(torch.cat(xs).float().cpu(), torch.cat(ys).long().cpu())
