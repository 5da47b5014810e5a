"""FIM_norm: the normalised effective rank of the empirical Fisher information on N probe samples.

Per-sample gradients G (N × P) of the cross-entropy at the true labels come from `torch.func`
(`vmap(grad(functional_call))`) with the model in eval mode, so BatchNorm uses its running
statistics and every sample is independent. The Fisher `F = GᵀG / N` (P × P) shares its non-zero
eigenvalues with the dual Gram `S = G Gᵀ / N` (N × N), which is what is decomposed (float64).
Eigenvalues ≤ 1e-12·λ_max are dropped, `p = λ / Σλ`, and `FIM_norm = exp(H(p)) / N` ∈ (0, 1]
(1 when the N gradients are mutually orthogonal with equal norms). Rows: `probe/fim_norm` and
`probe/fim_trace` = tr(F) = mean squared per-sample gradient norm.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from pab_campaign.metrics import FIM_NORM, FIM_TRACE, PROBE
from pab_campaign.training.probes import Probe, ProbeContext, Row, eval_mode

RELATIVE_CUTOFF = 1e-12


def per_sample_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         chunk_size: int = 128) -> list[torch.Tensor]:
    """Per-sample gradients of CE(model(x_i), y_i) w.r.t. the trainable parameters, as one block
    (N × P_l, float32) per parameter tensor in `named_parameters` order; side by side they are
    G (N × P).

    With N ≤ `chunk_size` the blocks are vmap's own outputs, never copied; otherwise they are
    filled `chunk_size` samples at a time, so peak memory is about (N + chunk_size) × P floats. The
    model must already be in the mode wanted (eval for FIM_norm); parameter `.grad` is untouched.
    """
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def sample_loss(weights: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        # Cross-entropy at the true label, written out: under vmap this is cheaper than F.cross_entropy.
        logits = functional_call(model, (weights, buffers), (xi.unsqueeze(0),))[0]
        return -torch.log_softmax(logits, dim=0).gather(0, yi.unsqueeze(0)).sum()

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    n = len(x)
    if n <= chunk_size:
        return [g.reshape(n, -1) for g in per_sample(params, x, y).values()]
    blocks = [torch.empty(n, p.numel(), dtype=torch.float32, device=x.device) for p in params.values()]
    for start in range(0, n, chunk_size):
        chunk = per_sample(params, x[start:start + chunk_size], y[start:start + chunk_size])
        for block, gradient in zip(blocks, chunk.values()):
            block[start:start + len(gradient)] = gradient.reshape(len(gradient), -1)
    return blocks


def dual_gram(blocks: Sequence[torch.Tensor], column_chunk: int = 1 << 20) -> torch.Tensor:
    """S = G Gᵀ / N (N × N, float64) of per-sample gradients G given as column blocks (N × P_l),
    accumulated over at most `column_chunk` columns at a time, so that G is never copied whole
    into float64."""
    n = blocks[0].shape[0]
    gram = torch.zeros(n, n, dtype=torch.float64, device=blocks[0].device)
    for block in blocks:
        for start in range(0, block.shape[1], column_chunk):
            part = block[:, start:start + column_chunk].double()
            gram += part @ part.T
    return gram / n


def fim_norm_from_gram(gram: torch.Tensor) -> float:
    """exp(H(p)) / N of the eigenvalues of the dual Gram S (N × N); NaN if S = 0."""
    n = gram.shape[0]
    eigenvalues = torch.linalg.eigvalsh(gram).clamp(min=0)
    lam_max = float(eigenvalues.max()) if n else 0.0
    if not lam_max > 0 or not math.isfinite(lam_max):
        return math.nan
    kept = eigenvalues[eigenvalues > RELATIVE_CUTOFF * lam_max]
    p = kept / kept.sum()
    return float(torch.exp(-(p * p.log()).sum())) / n


def fim_norm_from_gradients(blocks: Sequence[torch.Tensor]) -> float:
    """FIM_norm of per-sample gradients G given as column blocks (N × P_l); NaN if G = 0."""
    return fim_norm_from_gram(dual_gram(blocks))


@dataclass
class FimProbe(Probe):
    samples: int = 128
    chunk_size: int = 128
    name = "fim"
    metrics = (FIM_NORM, FIM_TRACE)

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ValueError(f"tracking.probes.fim.samples={self.samples} must be >= 2, e.g. 128")
        if self.chunk_size < 1:
            raise ValueError(f"tracking.probes.fim.chunk_size={self.chunk_size} must be >= 1, e.g. 128")

    def measure(self, ctx: ProbeContext) -> list[Row]:
        x = ctx.probe_set.x[:self.samples].to(ctx.device)
        y = ctx.probe_set.y[:self.samples].to(ctx.device)
        with eval_mode(ctx.model):
            gram = dual_gram(per_sample_gradients(ctx.model, x, y, self.chunk_size))
        # tr(F) = tr(GᵀG / N) = tr(S): the mean squared per-sample gradient norm.
        return [(PROBE, FIM_NORM.name, None, fim_norm_from_gram(gram)),
                (PROBE, FIM_TRACE.name, None, float(gram.trace()))]
