"""Data set builders, chosen by `cfg.dataset.name`."""
from __future__ import annotations

from importlib import import_module
from types import ModuleType

from pab_campaign.training.config import DatasetConfig
from pab_campaign.training.data.base import SPLITS, DataBundle, Split
from pab_campaign.training.registry import Registry

# Name → the module that builds it (`build(cfg)`, and `check(cfg)` where the data set has files);
# imported when first used, so a run pays only for its own data set's imports.
DATASETS: Registry[str] = Registry("data set", "dataset.name")
for _name in ("digits", "synthetic", "cifar10", "imagenet"):
    DATASETS.add(_name, f"{__name__}.{_name}")


def _module(cfg: DatasetConfig) -> ModuleType:
    return import_module(DATASETS.get(cfg.name))


def build_dataset(cfg: DatasetConfig) -> DataBundle:
    """Build the data set named by `cfg.name` from its config group entry: its typed config (e.g.
    `SyntheticConfig`; the DictConfig Hydra composes for it, or the dataclass itself); ValueError
    for a fraction or seed out of its range."""
    module = _module(cfg)
    _check_splits(cfg)
    return module.build(cfg)


def check_dataset(cfg: DatasetConfig) -> None:
    """Cheap checks before a run starts: a known name (`UnknownName`), the fractions and the split
    seed every data set has, and the data set's files where it has any (ValueError naming the key or
    the expected layout)."""
    module = _module(cfg)
    _check_splits(cfg)
    check = getattr(module, "check", None)
    if check is not None:
        check(cfg)


def _check_splits(cfg: DatasetConfig) -> None:
    """ValueError naming the key of a fraction or seed out of its range (the splits' own ranges)."""
    test = getattr(cfg, "test_fraction", None)
    ranges = [(0 < cfg.val_fraction < 1, f"dataset.val_fraction={cfg.val_fraction} must be in (0, 1)"),
              (0 < cfg.train_fraction <= 1, f"dataset.train_fraction={cfg.train_fraction} must be in (0, 1]"),
              (0 <= cfg.label_noise <= 1, f"dataset.label_noise={cfg.label_noise} must be in [0, 1]"),
              (cfg.split_seed >= 0, f"dataset.split_seed={cfg.split_seed} must be >= 0")]
    if test is not None:
        ranges += [(0 < test < 1, f"dataset.test_fraction={test} must be in (0, 1)"),
                   (cfg.val_fraction + test < 1, f"dataset.val_fraction + dataset.test_fraction = "
                                                 f"{cfg.val_fraction + test:g} must be < 1 (the rest trains)")]
    for ok, message in ranges:
        if not ok:
            raise ValueError(message)


__all__ = ["DATASETS", "SPLITS", "DataBundle", "Split", "build_dataset", "check_dataset"]
