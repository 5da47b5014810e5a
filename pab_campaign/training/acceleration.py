"""The CUDA fast path of the run loop: channels_last weights, bf16 autocast and optional
`torch.compile`, all switched by `runtime` and all inert on the CPU (whose path stays exact)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn


def on_cuda(device: torch.device) -> bool:
    return torch.device(device).type == "cuda"


def prepare_model(model: nn.Module, device: torch.device, runtime) -> tuple[nn.Module, Callable[..., torch.Tensor]]:
    """(`model` on `device`, the module the training step calls). On CUDA the weights are channels_last
    and, with `runtime.compile`, the step calls a compiled wrapper sharing them; `model` itself stays
    uncompiled for checkpoints, evaluation and probes."""
    model = model.to(device)
    if not on_cuda(device):
        return model, model
    model = model.to(memory_format=torch.channels_last)
    return model, torch.compile(model) if runtime.get("compile", False) else model


def autocast(device: torch.device, runtime) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `runtime.amp` is on (the default); a no-op elsewhere."""
    if on_cuda(device) and runtime.get("amp", True):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
