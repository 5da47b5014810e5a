"""Representation shift: linear CKA between penultimate features (`model.features(x)`, N × D) on the
fixed probe set at this epoch and at the previous measurement (`probe/cka_prev`) and at epoch 0
(`probe/cka_init`); and the same for the output of every hookpoint (`tracking.hookpoints`), keyed
by its name (`probe/cka_prev[features.2]`).

Linear CKA (Kornblith et al. 2019): with column-centred X, Y,
`CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F)`, in [0, 1]; 1 for identical (or isotropically scaled,
rotated) features. Computed in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pab_campaign.metrics import CKA_INIT, CKA_PREV, PROBE
from pab_campaign.training.probes import Probe, ProbeContext, Row


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two feature matrices with the same rows (N × D1, N × D2); NaN if either is constant."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same examples in both: got {x.shape[0]} and {y.shape[0]} rows")
    x = x.double().flatten(1)
    y = y.double().flatten(1)
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    denominator = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if denominator <= 0:
        return math.nan
    return float(torch.linalg.matrix_norm(y.T @ x) ** 2 / denominator)


@dataclass
class RepresentationProbe(Probe):
    name = "representation"
    metrics = (CKA_INIT, CKA_PREV)
    uses_probe_outputs = True
    uses_features = True

    def measure(self, ctx: ProbeContext) -> list[Row]:
        features = ctx.probe_outputs()[0]
        # (A Tracker over a model without `features` measures its hookpoints alone.)
        rows = _shift(ctx.state, features, None) if features is not None else []
        if ctx.hookpoints:
            memory = ctx.state.setdefault("hookpoints", {})
            for name, current in ctx.hookpoint_outputs().items():
                rows += _shift(memory.setdefault(name, {}), current, name)
        return rows


def _shift(state: dict, current: torch.Tensor, key: str | None) -> list[Row]:
    """cka_init (and cka_prev after the first measurement) of `current` against what `state` kept."""
    previous = state.get("previous")
    initial = state.setdefault("initial", current)
    state["previous"] = current
    rows: list[Row] = [(PROBE, CKA_INIT.name, key, linear_cka(initial, current))]
    if previous is not None:
        rows.append((PROBE, CKA_PREV.name, key, linear_cka(previous, current)))
    return rows
