"""The run configuration of a finished run, rebuilt from its `run.json`, for analyses that load its
checkpoints (ModelDiff's attributions, the counterfactual test).

`run.json` holds the run's semantic hyper-parameters as flat dotted keys. Composing `conf/` with the
config group each `<group>.name` names, then setting every key to its recorded value, gives back
the config the builders took; the run id of the result must equal the recorded one, which proves
nothing was lost (a run trained with other `conf/` files is refused, not silently rebuilt). Paths,
which are no hyper-parameters (`dataset.root`), come from the caller (`data_root`: the user's own
`--data-root`), else from the YAML defaults (their environment variables): never from the run's
recorded overrides, which a campaign from elsewhere could point at any folder of this machine.

`algorithm_config` and `check_same_examples` check that the runs of two algorithms can be compared:
one data set and model within an algorithm, the same examples across the two.
"""
from __future__ import annotations

import copy
import functools
import json
from typing import Any, cast

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pab_campaign.errors import CampaignError, ConfigError, one_line
from pab_campaign.store import RunRecord, Scalar
from pab_campaign.training.config import CONFIG_DIR, register_schemas
from pab_campaign.training.identity import NON_SEMANTIC_LEAVES, flatten, hparams, run_id

GROUPS = ("dataset", "model", "optimizer", "schedule")
# `dataset` keys that change how an algorithm trains but not which examples the splits hold.
TREATMENT_KEYS = frozenset({"augment", "crop_padding", "label_noise", "corner_patch.train_class", "train_eval_size"})
NON_SEMANTIC = frozenset(key.split(".", 1)[1] for key in NON_SEMANTIC_LEAVES if key.startswith("dataset."))


def _group_choices(params: dict[str, Scalar]) -> list[str]:
    return [f"{group}={params[f'{group}.name']}" for group in GROUPS if f"{group}.name" in params]


@functools.lru_cache(maxsize=16)
def _composed(overrides: tuple[str, ...]) -> DictConfig:
    """`conf/` composed with `overrides`, once per process: the runs of an algorithm name the same
    config groups, and composing took a quarter of a second a run. Callers change a copy."""
    register_schemas()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def record_config(record: RunRecord, data_root: str | None = None) -> DictConfig:
    """The resolved run config of `record`, its data set read from `data_root` when given (else the
    config's default); ConfigError naming the run when it cannot be rebuilt."""
    params = record.hparams
    try:
        paths = (f"dataset.root={data_root}",) if data_root is not None else ()
        cfg = copy.deepcopy(_composed((*_group_choices(params), *paths)))
        for key, value in params.items():
            node = OmegaConf.select(cfg, key, throw_on_missing=False)
            OmegaConf.update(cfg, key, json.loads(str(value)) if isinstance(node, ListConfig) else value, merge=False)
    except (OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(f"run {record.run_id}: its config cannot be rebuilt from run.json ({one_line(exc)}); "
                          "was it trained with other conf/ files?") from None
    rebuilt = run_id(hparams(cfg))
    if rebuilt != record.run_id:
        raise ConfigError(f"run {record.run_id}: its run.json hyper-parameters rebuild run {rebuilt}, not itself; "
                          "it was trained with other conf/ files (or run.json was edited)")
    return cfg


def _flat(node: DictConfig) -> dict[str, Scalar]:
    return flatten(cast(dict[str, Any], OmegaConf.to_container(node, resolve=True)))  # a DictConfig gives a dict


def algorithm_config(records: list[RunRecord], data_root: str | None = None) -> DictConfig:
    """The config the runs of one algorithm share (`record_config`): each run's rebuilt config must
    agree with the first on the data set and the model (seeds and optimiser may differ).
    CampaignError naming the key."""
    configs = [record_config(record, data_root) for record in records]
    first = configs[0]
    for record, cfg in zip(records[1:], configs[1:]):
        for group in ("dataset", "model"):
            mine, theirs = _flat(first[group]), _flat(cfg[group])
            for key in sorted(set(mine) | set(theirs)):
                if key not in NON_SEMANTIC and mine.get(key) != theirs.get(key):
                    raise CampaignError(
                        f"runs {records[0].run_id} and {record.run_id} of one algorithm differ in {group}.{key} "
                        f"({mine.get(key)} vs {theirs.get(key)}); narrow the filters so its runs share data set "
                        "and model")
    return first


def check_same_examples(cfg_a: DictConfig, cfg_b: DictConfig) -> None:
    """CampaignError naming the key when the two algorithms' data sets do not hold the same training and
    validation examples: every `dataset` key must agree except the training treatments
    (TREATMENT_KEYS: augmentation, label noise, a patch on training images)."""
    a, b = _flat(cfg_a.dataset), _flat(cfg_b.dataset)
    for key in sorted(set(a) | set(b)):
        if key in TREATMENT_KEYS or key in NON_SEMANTIC:
            continue
        if a.get(key) != b.get(key):
            raise CampaignError(f"the algorithms' data sets differ in dataset.{key} ({a.get(key)} vs {b.get(key)}); "
                                "attributions compare algorithms on the same training and validation examples")
