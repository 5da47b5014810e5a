"""Weight spectra and weight statistics of every Linear/Conv layer (conv weights reshaped to
C_out × C_in·k·k).

With the layer matrix W (n_out × n_in), its singular values σ and its bias b:
`erank = exp(H(p))`, `p = σ / Σσ`; `sci = erank / min(n_out, n_in)`; `stable_rank = Σσ² / σ_max²`;
and the 14 statistics of the latent-state work (Hu et al. 2023): `l1 = Σ|W|`; `l2 = ‖W‖_F`;
`trace = Σσ` (trace norm); `spectral = σ_max`; `code_sparsity = l1 / l2`;
`comp_sparsity = trace / spectral`; `sv_mean`, `sv_var` of σ; `w_mean`, `w_median`, `w_var` of the
entries of W; `b_mean`, `b_median`, `b_var` of b (NaN for a layer without bias). Variances are
population variances (ddof = 0). Rows use context `weights`, key = layer name; the row with a null
key is the mean over layers (over layers with a bias for the b_* statistics).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pab_campaign.training.probes import Probe, ProbeContext, Row

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
METRICS = (
    "erank", "sci", "stable_rank", "l1", "l2", "trace", "spectral", "code_sparsity", "comp_sparsity",
    "sv_mean", "sv_var", "w_mean", "w_median", "w_var", "b_mean", "b_median", "b_var",
)
BIAS_METRICS = ("b_mean", "b_median", "b_var")


def layer_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A layer's weight as a matrix n_out × n_in (conv kernels flattened into n_in)."""
    return weight.detach().reshape(weight.shape[0], -1)


def effective_rank(singular_values: torch.Tensor) -> float:
    """exp of the Shannon entropy (nats) of the normalised singular values; 0 for a zero matrix."""
    total = singular_values.sum()
    if total <= 0:
        return 0.0
    p = singular_values / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _location_spread(values: torch.Tensor | None) -> tuple[float, float, float]:
    """(mean, median, population variance) of `values`; NaNs when absent or empty."""
    if values is None or values.numel() == 0:
        return math.nan, math.nan, math.nan
    flat = values.detach().double().cpu().flatten()
    return float(flat.mean()), float(flat.median()), float(flat.var(correction=0))


def spectrum_stats(weight: torch.Tensor, bias: torch.Tensor | None = None) -> dict[str, float]:
    """Every metric of `METRICS` for one layer (float64 SVD); all NaN for a non-finite weight."""
    matrix = layer_matrix(weight).double().cpu()
    if not bool(torch.isfinite(matrix).all()):
        return dict.fromkeys(METRICS, math.nan)
    sigma = torch.linalg.svdvals(matrix)
    sigma_max = float(sigma.max()) if sigma.numel() else 0.0
    erank = effective_rank(sigma)
    l1 = float(matrix.abs().sum())
    l2 = float(torch.linalg.matrix_norm(matrix, "fro"))
    trace = float(sigma.sum())
    w_mean, w_median, w_var = _location_spread(matrix)
    b_mean, b_median, b_var = _location_spread(bias)
    return {
        "erank": erank,
        "sci": erank / min(matrix.shape),
        "stable_rank": _ratio(float((sigma ** 2).sum()), sigma_max ** 2) if sigma_max > 0 else 0.0,
        "l1": l1,
        "l2": l2,
        "trace": trace,
        "spectral": sigma_max,
        "code_sparsity": _ratio(l1, l2),
        "comp_sparsity": _ratio(trace, sigma_max),
        "sv_mean": float(sigma.mean()),
        "sv_var": float(sigma.var(correction=0)),
        "w_mean": w_mean, "w_median": w_median, "w_var": w_var,
        "b_mean": b_mean, "b_median": b_median, "b_var": b_var,
    }


def spectra_rows(model: nn.Module) -> list[Row]:
    rows: list[Row] = []
    per_layer = {name: spectrum_stats(module.weight, module.bias) for name, module in model.named_modules()
                 if isinstance(module, LAYER_TYPES)}
    for name, stats in per_layer.items():
        rows += [("weights", metric, name, value) for metric, value in stats.items()]
    if per_layer:
        for metric in METRICS:
            values = [stats[metric] for stats in per_layer.values()]
            if metric in BIAS_METRICS:
                values = [v for v in values if not math.isnan(v)]
            rows.append(("weights", metric, None, sum(values) / len(values) if values else math.nan))
    return rows


@dataclass
class SpectraProbe(Probe):
    name = "spectra"

    def measure(self, ctx: ProbeContext) -> list[Row]:
        return spectra_rows(ctx.model)
