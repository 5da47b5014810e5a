"""The CUDA fast path of the run loop: channels_last weights, bf16 autocast and optional
`torch.compile`, all switched by `runtime` and all inert on the CPU (whose path stays exact)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn


def on_cuda(device: torch.device) -> bool:
    return torch.device(device).type == "cuda"


ModelT = TypeVar("ModelT", bound=nn.Module)


def prepare_model(model: ModelT, device: torch.device, runtime,
                  wrap: Callable[[nn.Module], nn.Module] = lambda m: m
                  ) -> tuple[ModelT, Callable[..., torch.Tensor]]:
    """(`model` on `device`, the module the training step calls: `wrap(model)`, e.g. its
    DistributedDataParallel). On CUDA the weights are channels_last and, with `runtime.compile`, the
    step calls a compiled wrapper sharing them; `model` itself stays unwrapped and uncompiled for
    checkpoints, evaluation and probes."""
    model = model.to(device)
    if not on_cuda(device):
        return model, wrap(model)
    model = model.to(memory_format=torch.channels_last)
    step = wrap(model)
    return model, torch.compile(step) if runtime.get("compile", False) else step


def autocast(device: torch.device, runtime) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when `runtime.amp` is on (the default); a no-op elsewhere."""
    if on_cuda(device) and runtime.get("amp", True):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
