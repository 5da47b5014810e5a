"""mbe-eval's weight-spectrum functions (`metric_audit.sci_tracker`: `sci_spectrum`, `sci_from_weight`,
`effective_rank`, `NumpySCITracker`, `pytorch_sci`) over the spectra probe, so their users get the
statistics our runs record, for torch models and for plain numpy weight matrices alike.

A matrix is n_out × n_in; a conv kernel (C_out, C_in, k, ...) is reshaped to C_out × C_in·k·…, as
the probe does. Every statistic is computed in float64 by `training.probes.spectra.spectrum_stats`.
Two differences from mbe-eval, both where its singular values are all ≤ 1e-10 (it drops those
before the entropy and gives erank 1): a zero (dead) matrix has erank 0 and SCI 0 here, so a
network's mean SCI counts a dead layer as 0; and a nonzero matrix that small keeps the erank its
spectrum's shape gives (scale does not change it: a 4 × 4 Gaussian matrix times 1e-11 has erank
about 3 here).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pab_campaign.training.evaluate import eval_mode
from pab_campaign.training.probes.fim import fim_norm_from_gradients
from pab_campaign.training.probes.spectra import spectrum_stats

# The layers `pytorch_sci` reads by default, as mbe-eval's (our spectra probe also reads Conv1d and Conv3d).
MBE_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)

__all__ = ["NumpySCITracker", "compute_fim_norm", "effective_rank", "pytorch_sci", "sci_from_weight", "sci_spectrum"]


def sci_spectrum(W: Any, bias: Any = None) -> dict[str, float]:
    """mbe-eval's spectral breakdown of one weight matrix, with its keys (`sci, erank, rank_max,
    spectral_entropy, sv_max, sv_min, stable_rank, nuclear_norm, spectral_norm`), plus every other
    statistic of the spectra probe under its own name (`nuclear`, `spectral`, `l1`, `l2`, ...;
    `b_*` from `bias`, NaN without one). `rank_max` = min(n_out, n_in) is a whole number, as mbe-eval's.

    >>> stats = sci_spectrum(np.diag([3.0, 1.0, 0.0]))
    >>> stats["rank_max"], stats["sv_min"], round(stats["erank"], 3), round(stats["spectral_entropy"], 3)
    (3, 1.0, 1.755, 0.562)
    """
    stats: dict[str, Any] = spectrum_stats(torch.as_tensor(np.asarray(W, dtype=np.float64)),
                                           None if bias is None else torch.as_tensor(np.asarray(bias,
                                                                                                dtype=np.float64)))
    shape = np.shape(W)
    return {**stats, "rank_max": min(shape[0], int(np.prod(shape[1:]))) if len(shape) >= 2 else 1,
            "sv_max": stats["spectral"], "nuclear_norm": stats["nuclear"], "spectral_norm": stats["spectral"]}


def effective_rank(M: Any) -> float:
    """erank = exp(H(p)), p = σ / Σσ, of one matrix (0 for a zero matrix; mbe-eval says 1 there).

    >>> round(effective_rank(np.eye(4)), 6)
    4.0
    """
    return sci_spectrum(M)["erank"]


def sci_from_weight(W: Any) -> float:
    """The structural constraint index erank / min(n_out, n_in) of one weight matrix.

    >>> round(sci_from_weight(np.eye(4)), 6)
    1.0
    """
    return sci_spectrum(W)["sci"]


class NumpySCITracker:
    """SCI of every weight matrix of a model without torch: `model.W` is a list of numpy arrays (as
    mbe-eval's numpy MLP), or pass the list itself.

    >>> rng = np.random.default_rng(0)
    >>> tracker = NumpySCITracker([rng.normal(size=(8, 4)), np.eye(3)])
    >>> per_layer, network = tracker.compute()
    >>> [round(v, 3) for v in per_layer], round(network, 3)
    ([0.922, 1.0], 0.961)
    >>> sorted(tracker.compute_full()[1])[:4]
    ['b_mean', 'b_median', 'b_var', 'code_sparsity']
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def weights(self) -> Sequence[Any]:
        """The weight matrices: `model.W`, or `model` itself when it is a list, or the one matrix
        `model` is (a 2-D array is one layer, not a list of rows)."""
        if hasattr(self.model, "W"):
            return self.model.W
        if isinstance(self.model, np.ndarray) and self.model.ndim == 2:
            return [self.model]
        return list(self.model)

    def compute(self) -> tuple[list[float], float]:
        """(SCI per layer, their mean over layers)."""
        values = [sci_from_weight(W) for W in self.weights]
        return values, float(np.mean(values)) if values else float("nan")

    def compute_full(self) -> list[dict[str, float]]:
        """`sci_spectrum` of every layer, in order."""
        return [sci_spectrum(W) for W in self.weights]


def pytorch_sci(model: nn.Module, layer_types: tuple[type[nn.Module], ...] | None = None) -> dict[str, Any]:
    """`sci_spectrum` of the weight of every Linear and Conv2d layer (mbe-eval's default; or of every
    module of `layer_types` that has a `weight`, with its `bias` when it has one) of a torch model by
    layer name, plus `network_sci`, the mean SCI over layers (NaN without a layer, `layer_types=()`
    included).

    >>> result = pytorch_sci(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    >>> sorted(k for k in result if not k.startswith("network")), 0 < result["network_sci"] <= 1
    (['0', '2'], True)
    """
    wanted = MBE_LAYER_TYPES if layer_types is None else tuple(layer_types)
    result: dict[str, Any] = {}
    for name, module in model.named_modules():
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if wanted and isinstance(module, wanted) and isinstance(weight, torch.Tensor):
            result[name] = sci_spectrum(weight.detach().cpu().double().numpy(),
                                        bias.detach().cpu().double().numpy() if isinstance(bias, torch.Tensor)
                                        else None)
    scis = [stats["sci"] for stats in result.values()]
    result["network_sci"] = float(np.mean(scis)) if scis else float("nan")
    return result


def compute_fim_norm(model: nn.Module, loss_fn: Any, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """mbe-eval's `utils.compute_fim_norm`: FIM_norm = exp(H(p)) / N, p the normalised eigenvalues of
    the dual Gram G Gᵀ / N of the N per-sample gradients G (N × P) of `loss_fn(model(x_i), y_i)`, as
    our `probe/fim_norm` computes it (float64, eigenvalues below 1e-12 of the largest dropped). The
    model is in eval mode while measured and put back after; no `.grad` is left in it. NaN when every
    gradient is zero (mbe-eval says 1.0 there).

    >>> torch.manual_seed(0) and None
    >>> model = nn.Linear(3, 2)
    >>> value = compute_fim_norm(model, nn.functional.cross_entropy, torch.randn(6, 3), torch.randint(0, 2, (6,)))
    >>> 0 < value <= 1, model.weight.grad is None
    (True, True)
    """
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    with eval_mode(model):
        for x, y in zip(inputs, targets):
            loss = loss_fn(model(x.unsqueeze(0)), y.unsqueeze(0))
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, allow_unused=True)
                                   if g is not None]).detach())
    if not rows:
        raise ValueError("compute_fim_norm needs at least one input with its target")
    return fim_norm_from_gradients([torch.stack(rows)])
