"""What a user's own loop hands the `Tracker`, checked and converted, each problem refused in one
line naming the argument and the fix: the tracking preset (a name in conf/tracking/, read with
OmegaConf as Hydra composes it, or a mapping), the hyper-parameters that name the run, the probe
data, the numbers given each epoch, and the campaign directory."""
from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pab_campaign.errors import CampaignError, ConfigError, StoreError, did_you_mean, one_line
from pab_campaign.metrics import recorded_name
from pab_campaign.store import MAX_EPOCH, Scalar, is_foreign_directory
from pab_campaign.training.config import CONFIG_DIR, TrackingConfig
from pab_campaign.training.data import Split
from pab_campaign.training.identity import flatten
from pab_campaign.training.probes.hookpoints import check_hookpoints_probe

TRACKING_DIR = CONFIG_DIR / "tracking"
SPLIT_NAMES = ("train", "val", "test")
# What the tracker records itself: the losses and accuracies given to `epoch()`, the gaps between
# them, the learning rate; the probes' names join as they are measured.
TRACKER_NAMES = frozenset({(split, metric) for split in SPLIT_NAMES for metric in ("loss", "acc", "gen_gap",
                                                                                   "loss_gap")} | {("train", "lr")})


def _preset_file(name: str) -> DictConfig:
    """conf/tracking/<name>.yaml with its `defaults` followed (other presets; the schema entry is the
    caller's), merged in their listed order as Hydra does."""
    known = sorted(p.stem for p in TRACKING_DIR.glob("*.yaml"))
    if name not in known:
        raise ConfigError(f"tracking='{name}' is not a preset{did_you_mean(name, known)}; choose from "
                          f"{', '.join(known)}, or give a mapping such as "
                          "{'probes': {'performance': {'every': 1}}}")
    raw = OmegaConf.load(TRACKING_DIR / f"{name}.yaml")
    assert isinstance(raw, DictConfig)  # a preset file is a mapping
    defaults = list(raw.pop("defaults", []))
    merged: DictConfig | ListConfig = OmegaConf.create()
    for entry in defaults if "_self_" in defaults else [*defaults, "_self_"]:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, raw)
        elif isinstance(entry, str) and not entry.startswith("/"):
            merged = OmegaConf.merge(merged, _preset_file(entry))
    assert isinstance(merged, DictConfig)  # mappings merged onto a mapping
    return merged


def load_tracking(tracking: str | Mapping[str, Any]) -> DictConfig:
    """A tracking preset by name (conf/tracking/<name>.yaml), or a mapping with a preset's keys
    (`probes`, optionally `probe_size`, `hookpoints` and `name`), checked against the preset schema."""
    if isinstance(tracking, str):
        given: DictConfig | ListConfig = _preset_file(tracking)
    elif isinstance(tracking, Mapping):
        given = OmegaConf.merge({"name": "custom", "probe_size": 256, "hookpoints": []},
                                OmegaConf.create(dict(tracking)))
    else:
        raise ConfigError(f"tracking={tracking!r} must be a preset name (e.g. 'default') or a mapping of probes")
    try:
        preset = OmegaConf.merge(OmegaConf.structured(TrackingConfig), given)
        OmegaConf.to_container(preset, throw_on_missing=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"tracking: {one_line(exc)}; a preset has keys name, probe_size, probes, "
                          "hookpoints") from None
    assert isinstance(preset, DictConfig)  # merged onto the schema
    if preset.probe_size < 1:
        raise ConfigError(f"tracking probe_size={preset.probe_size} must be >= 1, e.g. 256")
    check_hookpoints_probe(list(preset.hookpoints), list(preset.probes))
    return preset


def user_hparams(params: Mapping[str, Any]) -> dict[str, Scalar]:
    """Hyper-parameters as flat dotted keys → scalars, sorted (nested mappings flattened, lists as
    JSON text), as our runs record theirs; ConfigError naming a value that is not a scalar."""
    if not isinstance(params, Mapping) or not params:
        raise ConfigError("hparams must be a non-empty mapping, e.g. {'model': 'mlp', 'lr': 0.1, 'seed': 0}: "
                          "they name the run (its run_id)")
    flat = flatten(_plain(params))
    for key, value in flat.items():
        if isinstance(value, numbers.Number) and not isinstance(value, (bool, complex)):
            flat[key] = int(value) if isinstance(value, numbers.Integral) else float(value)
        elif value is not None and not isinstance(value, (str, bool)):
            raise ConfigError(f"hparams['{key}'] = {value!r} is a {type(value).__name__}; give a number, string, "
                              "bool or None")
    return dict(sorted(flat.items()))


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain(v) if isinstance(v, Mapping) else v for k, v in params.items()}


def _pairs(data: Any, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of the first `size` examples of a Dataset or of an iterable of (x, y) batches."""
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        pairs = [data[i] for i in range(min(size, len(data)))]
        return torch.stack([torch.as_tensor(p[0]) for p in pairs]), torch.as_tensor([int(p[1]) for p in pairs])
    xs, ys, count = [], [], 0
    for batch_x, batch_y in data:
        xs.append(torch.as_tensor(batch_x))
        ys.append(torch.as_tensor(batch_y))
        count += len(ys[-1])
        if count >= size:
            break
    return torch.cat(xs), torch.cat(ys)


def probe_split(data: Any, size: int) -> Split | None:
    """The first `size` examples of `data`: (x, y) tensors, a Split, a Dataset of (x, y) pairs or an
    iterable of (x, y) batches (a DataLoader); None for None."""
    if data is None:
        return None
    if isinstance(data, Split):
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    else:
        try:
            x, y = _pairs(data, size)
        except (TypeError, ValueError, IndexError, KeyError, RuntimeError):
            raise ConfigError(f"probe_data is a {type(data).__name__} that does not give (x, y) examples; give (x, y) "
                              "tensors, a Dataset or a DataLoader of (x, y) batches") from None
    if y.dim() != 1 or len(x) != len(y) or y.is_floating_point():
        raise ConfigError(f"probe_data needs inputs x (N × ...) and integer class labels y (N,); "
                          f"got x {tuple(x.shape)}, y {tuple(y.shape)} {y.dtype}")
    return Split(x[:size].detach().cpu(), y[:size].detach().cpu().long())


def number(name: str, value: Any, fraction: bool = False) -> float:
    """A loss or accuracy given to `epoch()` as a float (numbers, 0-d tensors and arrays; not text
    or booleans); accuracies in [0, 1] or NaN (not measured)."""
    shown = reprlib.repr(value)  # a 400-digit int shown in one short line
    if isinstance(value, (str, bytes, bool, np.bool_)) or (
            isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise ConfigError(f"{name}={shown} must be a number, not {type(value).__name__}")
    if isinstance(value, (complex, np.complexfloating)) or (isinstance(value, torch.Tensor) and value.is_complex()):
        raise ConfigError(f"{name}={shown} must be a number, not complex (its imaginary part would be dropped)")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{name}={shown} is past the largest float (about 1.8e308); give a float") from None
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{name}={shown} must be a number") from None
    if fraction and not math.isnan(number) and not 0 <= number <= 1:
        raise ConfigError(f"{name}={number:g} must be a fraction in [0, 1] (85 % is 0.85)")
    return number


def check_epoch_number(epoch: Any) -> None:
    """ConfigError unless `epoch` is a whole number a run file holds (0 .. MAX_EPOCH)."""
    if not isinstance(epoch, numbers.Integral) or isinstance(epoch, bool) or not 0 <= int(epoch) <= MAX_EPOCH:
        raise ConfigError(f"epoch={epoch!r} must be a whole number from 0 to 2**31 - 1 (0 = before training, then 1, "
                          "2, ...)")


def check_campaign_dir(directory: Path) -> None:
    """A campaign, an empty directory or a path that does not exist yet; anything else is refused."""
    if directory.exists() and not directory.is_dir():
        raise StoreError(f"campaign_dir {directory} is a file; give a campaign directory (new or existing)")
    if is_foreign_directory(directory):
        raise StoreError(f"campaign_dir {directory} exists and is not a campaign (no runs/ directory, other files in "
                         "it); give a new or empty directory, or a campaign")


def keyword_name(keyword: str) -> str:
    """A metric's name as given to `log()` or `epoch()`: `context/metric[key]` as it is; a keyword
    `<split>_<metric>` (split train, val or test) as `<split>/<metric>` (`val_f1` → val/f1)."""
    split, sep, metric = keyword.partition("_")
    return f"{split}/{metric}" if "/" not in keyword and sep and split in SPLIT_NAMES and metric else keyword


def named_scalars(scalars: Mapping[str, Any]) -> dict[str, Any]:
    """`scalars` (keywords or full names) by the metric each names (`keyword_name`); ConfigError
    where two name one metric (`val_f1` and `val/f1`), which would keep one value silently."""
    named: dict[str, Any] = {}
    given: dict[str, str] = {}
    for keyword, value in scalars.items():
        name = keyword_name(keyword)
        if name in named:
            raise ConfigError(f"{given[name]!r} and {keyword!r} both name {name}; give each metric once per call")
        named[name], given[name] = value, keyword
    return named


def scalar_name(name: str) -> tuple[str, str, str | None]:
    """(context, metric, key) of a user's metric name; ConfigError saying the rule otherwise."""
    try:
        return recorded_name(name)
    except CampaignError as exc:
        raise ConfigError(f"{exc}; as a keyword: val_f1=0.8 is val/f1") from None
