"""Hookpoints: named submodules (`model.named_modules()` names, e.g. `features.2` or
`features.blocks.0.attn`) whose outputs on the probe set get the representation statistics.

An output is taken as the module's forward result (the first tensor of a tuple), flattened to
N × D, float32 on CPU.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pab_campaign.errors import ConfigError
from pab_campaign.training.evaluate import eval_mode

# Submodule names listed in a one-line error before it is cut short.
LISTED = 60


def check_hookpoints_probe(hookpoints: Sequence[str], probes: Sequence[str]) -> None:
    """ConfigError when hookpoints are named but no representation probe would measure them."""
    if hookpoints and "representation" not in probes:
        raise ConfigError(f"tracking.hookpoints={list(hookpoints)} need the representation probe, which this preset "
                          "lacks; use tracking=full or add +tracking.probes.representation={every:1}")


def check_hookpoints(model: nn.Module, names: Sequence[str]) -> None:
    """ConfigError in one line naming the first unknown hookpoint and listing the submodules of
    `model` that can be named.

    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> check_hookpoints(model, ["1"])
    >>> check_hookpoints(model, ["2"])
    Traceback (most recent call last):
    ...
    pab_campaign.errors.ConfigError: tracking.hookpoints: Sequential has no submodule '2'; its submodules: 0, 1
    """
    known = [name for name, _ in model.named_modules() if name]
    unknown = [name for name in names if name not in known]
    if unknown:
        listed = ", ".join(known[:LISTED]) + (f", ... ({len(known)} in all)" if len(known) > LISTED else "")
        raise ConfigError(f"tracking.hookpoints: {type(model).__name__} has no submodule '{unknown[0]}'; "
                          f"its submodules: {listed}")


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next(item for item in output if isinstance(item, torch.Tensor))
    raise TypeError(f"a hookpoint's output is {type(output).__name__}, not a tensor")


@torch.no_grad()
def hookpoint_outputs(model: nn.Module, x: torch.Tensor, names: Sequence[str],
                      batch_size: int = 512) -> dict[str, torch.Tensor]:
    """{name: output of the submodule `name` on `x`, N × D float32 on CPU}, in eval mode (the
    model's mode restored after); the hooks are removed whatever happens.

    >>> torch.manual_seed(0) is not None
    True
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    >>> outputs = hookpoint_outputs(model, torch.randn(5, 1, 4, 4), ["1", "3"])
    >>> {name: tuple(value.shape) for name, value in outputs.items()}
    {'1': (5, 32), '3': (5, 3)}
    """
    check_hookpoints(model, names)
    modules = dict(model.named_modules())
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    handles = [modules[name].register_forward_hook(
        lambda _module, _inputs, output, name=name: chunks[name].append(
            _first_tensor(output).detach().flatten(1).float().cpu())) for name in dict.fromkeys(names)]
    device = next(model.parameters()).device
    try:
        with eval_mode(model):
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size].to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in chunks.items()}
