"""Data set builders, chosen by `cfg.dataset.name`."""
from __future__ import annotations

from importlib import import_module

from pab_campaign.training.data.base import DataBundle, Split

BUILDERS = {"digits": "pab_campaign.training.data.digits", "synthetic": "pab_campaign.training.data.synthetic",
            "cifar10": "pab_campaign.training.data.cifar10", "imagenet": "pab_campaign.training.data.imagenet"}


def build_dataset(cfg) -> DataBundle:
    """Build the data set named by `cfg.name` from its config group entry."""
    _require_known(cfg)
    return import_module(BUILDERS[cfg.name]).build(cfg)


def check_dataset(cfg) -> None:
    """Cheap checks before a run starts: a known name, and the data set's files where it has any
    (ValueError naming the key or the expected layout)."""
    _require_known(cfg)
    check = getattr(import_module(BUILDERS[cfg.name]), "check", None)
    if check is not None:
        check(cfg)


def _require_known(cfg) -> None:
    if cfg.name not in BUILDERS:
        raise ValueError(f"dataset.name='{cfg.name}' is unknown; choose one of {sorted(BUILDERS)}")


__all__ = ["BUILDERS", "DataBundle", "Split", "build_dataset", "check_dataset"]
