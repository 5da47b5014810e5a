"""Run identity: a short stable hash of the run's resolved, semantic config.

Semantic means hyper-parameters and seed: the config groups that change what is trained
(`SEMANTIC_KEYS`), minus paths. Tracking, checkpointing, campaign paths, runtime and launcher
settings change where and how a run is observed, not what it learns, so they are left out.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pab_campaign.errors import ConfigError
from pab_campaign.store import Scalar

SEMANTIC_KEYS = ("dataset", "model", "optimizer", "schedule", "train", "seed")
NON_SEMANTIC_LEAVES = frozenset({"dataset.root", "dataset.num_workers", "train.stop_on_divergence"})
RUN_ID_LENGTH = 12
# Options added after run ids were first given out, each with the values that switch it off: while
# off, every leaf under it is left out of the hyper-parameters, so adding an option changed no id.
DORMANT_OPTIONS: dict[str, dict[str, Scalar]] = {
    "dataset.corner_patch": {"train_class": None, "val_fraction": 0.0},
}


def semantic_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved part of `cfg` that defines a run, as plain nested dicts."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)  # cfg is a DictConfig
    return {key: container[key] for key in SEMANTIC_KEYS if key in container}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Flat dotted keys → scalars; lists become their JSON text (e.g. `model.hidden` → "[128, 64]").
    ConfigError for a key given twice, as a dotted key and nested (`{"a.b": 1, "a": {"b": 2}}`)."""
    flat: dict[str, Scalar] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            leaves: dict[str, Scalar] = flatten(value, f"{name}.")
        else:
            leaves = {name: json.dumps(value) if isinstance(value, (list, tuple)) else value}
        twice = sorted(flat.keys() & leaves.keys())
        if twice:
            raise ConfigError(f"hyper-parameter '{twice[0]}' is given twice (as a dotted key and nested); give it once")
        flat.update(leaves)
    return flat


def hparams(cfg: DictConfig) -> dict[str, Scalar]:
    """The run's hyper-parameters as flat dotted keys, paths and run-time switches excluded."""
    flat = flatten(semantic_config(cfg))
    dormant = tuple(f"{option}." for option, off in DORMANT_OPTIONS.items()
                    if all(f"{option}.{leaf}" in flat and flat[f"{option}.{leaf}"] == value
                           for leaf, value in off.items()))
    return {key: value for key, value in sorted(flat.items())
            if key not in NON_SEMANTIC_LEAVES and not key.startswith(dormant)}


def run_id(params: dict[str, Scalar]) -> str:
    """A 12-hex-digit SHA-1 prefix of the canonical JSON of `params`."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:RUN_ID_LENGTH]
