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
    `SyntheticConfig`; the DictConfig Hydra composes for it, or the dataclass itself)."""
    return _module(cfg).build(cfg)


def check_dataset(cfg: DatasetConfig) -> None:
    """Cheap checks before a run starts: a known name (`UnknownName`), and the data set's files where
    it has any (ValueError naming the key or the expected layout)."""
    check = getattr(_module(cfg), "check", None)
    if check is not None:
        check(cfg)


__all__ = ["DATASETS", "SPLITS", "DataBundle", "Split", "build_dataset", "check_dataset"]
