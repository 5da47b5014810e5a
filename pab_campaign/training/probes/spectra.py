"""Weight spectra and weight statistics of every Linear/Conv layer (conv weights reshaped to
C_out × C_in·k·k), including the 14 statistics of the latent-state work (Hu et al. 2023, "Latent
State Models of Training Dynamics") exactly as its reference code computes them.

Per layer, with the layer matrix W (n_out × n_in), its singular values σ and its bias b:

- spectrum: `erank = exp(H(p))`, `p = σ / Σσ`; `sci = erank / min(n_out, n_in)`;
  `stable_rank = Σσ² / σ_max²`; `nuclear = Σσ` (trace norm); as mbe-eval's `sci_spectrum`,
  `spectral_entropy = H(p)` (nats, 0 for a zero matrix), `sv_min` the smallest σ above 1e-10 (0
  when none is) and `rank_max = min(n_out, n_in)`;
- the latent-state statistics: `l1 = Σ|W|`; `l2 = ‖W‖_F`; `trace = Σ_i W_ii` (the diagonal of
  the possibly non-square matrix, as `torch.trace`; it can be negative); `spectral = σ_max`;
  `code_sparsity = l1 / l2`; `comp_sparsity = trace / spectral`; `sv_mean`, `sv_var` of σ after
  singular values below 1e-5 are set to 0, `sv_var` the sample variance (ddof 1; NaN for one σ);
- `w_mean`, `w_median`, `w_var` of the entries of W and `b_mean`, `b_median`, `b_var` of b (NaN
  without a bias): the median is the lower middle value (`torch.median`), the variance ddof 1.

Rows use context `weights`, key = layer name. The row with a null key describes the whole model:
`w_*` over the weights of all layers concatenated and `b_*` over all their biases concatenated
(NaN when no layer has one), every other statistic the mean over layers (`sv_var` over the layers
where it is defined). A non-finite weight makes its layer's statistics and the whole model's NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pab_campaign.metrics import LATENT_STATE_STATISTICS, SPECTRA_METRICS, WEIGHTS, WHOLE_MODEL_STATISTICS, names
from pab_campaign.training.probes import Probe, ProbeContext, Row

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
Layer = nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d
# The names come from the metric registry (`pab_campaign.metrics`), which the analysis reads too.
METRICS = names(SPECTRA_METRICS)
# The 14 statistics of the latent-state work, in its order.
LATENT_STATE_METRICS = names(LATENT_STATE_STATISTICS)
# Statistics of the model's concatenated parameters (not a mean over layers).
WHOLE_MODEL_METRICS = names(WHOLE_MODEL_STATISTICS)
SV_FLOOR = 1e-5
# Singular values at or below this are numerically zero for `sv_min` (mbe-eval's floor).
SV_ZERO = 1e-10


def layer_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A layer's weight as a matrix n_out × n_in (conv kernels flattened into n_in)."""
    return weight.detach().reshape(weight.shape[0], -1)


def spectral_entropy(singular_values: torch.Tensor) -> float:
    """Shannon entropy H (nats) of the normalised singular values p = σ / Σσ; 0 for a zero matrix."""
    total = singular_values.sum()
    if total <= 0:
        return 0.0
    p = singular_values / total
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def effective_rank(singular_values: torch.Tensor) -> float:
    """exp of the Shannon entropy (nats) of the normalised singular values; 0 for a zero matrix."""
    return math.exp(spectral_entropy(singular_values)) if float(singular_values.sum()) > 0 else 0.0


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def _sample_variance(values: torch.Tensor) -> float:
    """Variance with ddof 1; NaN for fewer than two values."""
    return float(values.var(correction=1)) if values.numel() >= 2 else math.nan


def location_spread(values: torch.Tensor | None) -> tuple[float, float, float]:
    """(mean, lower median, sample variance) of the entries of `values`; NaNs when absent or empty."""
    if values is None or values.numel() == 0:
        return math.nan, math.nan, math.nan
    flat = values.detach().double().cpu().flatten()
    return float(flat.mean()), float(flat.median()), _sample_variance(flat)


def spectrum_stats(weight: torch.Tensor, bias: torch.Tensor | None = None) -> dict[str, float]:
    """Every metric of `METRICS` for one layer (float64 SVD); all NaN for a non-finite weight."""
    matrix = layer_matrix(weight).double().cpu()
    if not bool(torch.isfinite(matrix).all()):
        return dict.fromkeys(METRICS, math.nan)
    sigma = torch.linalg.svdvals(matrix)
    sigma_max = float(sigma.max()) if sigma.numel() else 0.0
    floored = torch.where(sigma < SV_FLOOR, torch.zeros_like(sigma), sigma)
    erank = effective_rank(sigma)
    nonzero = sigma[sigma > SV_ZERO]
    l1 = float(matrix.abs().sum())
    l2 = float(torch.linalg.matrix_norm(matrix, "fro"))
    trace = float(torch.trace(matrix))
    w_mean, w_median, w_var = location_spread(matrix)
    b_mean, b_median, b_var = location_spread(bias)
    return {
        "erank": erank,
        "sci": erank / min(matrix.shape),
        "stable_rank": _ratio(float((sigma ** 2).sum()), sigma_max ** 2) if sigma_max > 0 else 0.0,
        "nuclear": float(sigma.sum()),
        "spectral_entropy": spectral_entropy(sigma),
        "sv_min": float(nonzero.min()) if nonzero.numel() else 0.0,
        "rank_max": float(min(matrix.shape)),
        "l1": l1,
        "l2": l2,
        "trace": trace,
        "spectral": sigma_max,
        "code_sparsity": _ratio(l1, l2),
        "comp_sparsity": trace / sigma_max if sigma_max > 0 else math.nan,
        "sv_mean": float(floored.mean()),
        "sv_var": _sample_variance(floored),
        "w_mean": w_mean, "w_median": w_median, "w_var": w_var,
        "b_mean": b_mean, "b_median": b_median, "b_var": b_var,
    }


def _layer_mean(values: list[float], skip_nan: bool) -> float:
    if skip_nan:
        values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def model_stats(layers: list[Layer], per_layer: list[dict[str, float]]) -> dict[str, float]:
    """The null-key row: `w_*`/`b_*` over the concatenated weights/biases of `layers`, the other
    metrics the mean of `per_layer` over layers (`sv_var` skipping layers where it is NaN); all NaN
    when any weight is not finite."""
    weights = torch.cat([layer.weight.detach().double().cpu().flatten() for layer in layers])
    if not bool(torch.isfinite(weights).all()):
        return dict.fromkeys(METRICS, math.nan)
    stats = {metric: _layer_mean([s[metric] for s in per_layer], skip_nan=metric == "sv_var")
             for metric in METRICS if metric not in WHOLE_MODEL_METRICS}
    biases = [layer.bias.detach().double().cpu().flatten() for layer in layers if layer.bias is not None]
    stats["w_mean"], stats["w_median"], stats["w_var"] = location_spread(weights)
    stats["b_mean"], stats["b_median"], stats["b_var"] = location_spread(torch.cat(biases) if biases else None)
    return stats


def spectra_rows(model: nn.Module) -> list[Row]:
    """One row per (metric, layer) and one per metric for the whole model (null key)."""
    layers = {name: module for name, module in model.named_modules() if isinstance(module, LAYER_TYPES)}
    per_layer = {name: spectrum_stats(module.weight, module.bias) for name, module in layers.items()}
    rows: list[Row] = []
    for name, stats in per_layer.items():
        rows += [(WEIGHTS, metric, name, value) for metric, value in stats.items()]
    if layers:
        whole = model_stats(list(layers.values()), list(per_layer.values()))
        rows += [(WEIGHTS, metric, None, whole[metric]) for metric in METRICS]
    return rows


@dataclass
class SpectraProbe(Probe):
    name = "spectra"
    metrics = tuple(dict.fromkeys((*SPECTRA_METRICS, *LATENT_STATE_STATISTICS, *WHOLE_MODEL_STATISTICS)))

    def measure(self, ctx: ProbeContext) -> list[Row]:
        return spectra_rows(ctx.model)
