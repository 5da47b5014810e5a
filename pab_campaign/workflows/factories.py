"""A user's own model and data for `diff` (`--model-factory`, `--data-factory`): runs whose run.json
does not rebuild a model from our configs (written by the Tracker from a loop of one's own) are
compared through functions the user names as `module:function`.

- model factory: `function(hparams: dict) -> nn.Module`, called with a run's recorded hyper-parameters;
  it builds the (untrained) architecture that run's checkpoints load into.
- data factory: `function() -> (train, val)`, each an `(x, y)` pair of tensors, a `TensorDataset`, a
  map-style dataset of `(x, y)` items or a DataLoader yielding `(x, y)` batches: the training examples
  the runs learnt from and the validation examples to attribute.

The module is imported as Python imports it (the current directory is searched first), so a file
`mymodels.py` beside the campaign is `mymodels:build`.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from pab_campaign.errors import CampaignError, one_line
from pab_campaign.training.data import Split


def load_callable(spec: str, option: str) -> Callable[..., Any]:
    """The function `module:function` names (dots allowed in both); CampaignError in one line when it
    is malformed, cannot be imported or is not callable.

    >>> load_callable("math:hypot", "--model-factory")(3, 4)
    5.0
    >>> load_callable("math.hypot", "--model-factory")
    Traceback (most recent call last):
    ...
    pab_campaign.errors.CampaignError: --model-factory math.hypot: write module:function, e.g. mymodels:build
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise CampaignError(f"{option} {spec}: write module:function, e.g. mymodels:build")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise CampaignError(f"{option} {spec}: cannot import it ({type(exc).__name__}: {one_line(exc)})") from None
    if not callable(target):
        raise CampaignError(f"{option} {spec}: {type(target).__name__} is not callable; name a function")
    return target


def build_user_model(factory: Callable[..., Any], spec: str, hparams: Mapping[str, Any]) -> nn.Module:
    """`factory(hparams)`, checked to be an nn.Module (CampaignError naming the factory otherwise)."""
    try:
        model = factory(dict(hparams))
    except Exception as exc:  # the user's code: its failure is said in one line, naming it
        raise CampaignError(f"--model-factory {spec} failed on hparams {dict(hparams)} ({type(exc).__name__}: "
                            f"{one_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise CampaignError(f"--model-factory {spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def as_split(data: Any, what: str) -> Split:
    """`data` (see the module docstring) as one in-memory split: x float32, y int64, on the CPU.

    >>> as_split((torch.zeros(3, 2), torch.tensor([0, 1, 1])), "train").x.shape
    torch.Size([3, 2])
    """
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) >= 2:
        x, y = data.tensors[:2]
    elif isinstance(data, torch.utils.data.DataLoader):
        xs, ys = zip(*((batch[0], batch[1]) for batch in data))
        x, y = torch.cat(xs), torch.cat(ys)
    elif isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        items = [data[i] for i in range(len(data))]
        x = torch.stack([torch.as_tensor(item[0]) for item in items])
        y = torch.as_tensor([int(item[1]) for item in items])
    else:
        raise CampaignError(f"--data-factory: the {what} data is {type(data).__name__}; give an (x, y) pair of "
                            "tensors, a TensorDataset, a dataset of (x, y) items or a DataLoader")
    if len(x) != len(y) or len(y) == 0:
        raise CampaignError(f"--data-factory: the {what} data has {len(x)} inputs and {len(y)} labels; give one "
                            "label per input, at least one")
    return Split(x.float().cpu(), y.long().cpu())


def user_data(factory: Callable[..., Any], spec: str) -> tuple[Split, Split]:
    """(train, val) from `factory()`."""
    try:
        given = factory()
    except Exception as exc:  # the user's code: its failure is said in one line, naming it
        raise CampaignError(f"--data-factory {spec} failed ({type(exc).__name__}: {one_line(exc)})") from None
    if not isinstance(given, (tuple, list)) or len(given) != 2:
        raise CampaignError(f"--data-factory {spec} must return (train, val); it returned {type(given).__name__}")
    return as_split(given[0], "training"), as_split(given[1], "validation")
