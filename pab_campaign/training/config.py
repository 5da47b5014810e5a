"""Typed schemas of the run configuration `python -m pab_campaign` composes (no torch here).

One dataclass per option of each config group, and one for the root. They carry the keys and their
types only: every value lives in the YAML files under `conf/`, which extend their schema through
their defaults list (`- /schema/model/mlp@_here_`). A key no schema declares, or a value that
does not convert to the declared type, is refused while Hydra composes, before any run starts.
`register_schemas()` stores them in Hydra's ConfigStore under the `schema/` group; it must run
before Hydra composes (the entry point and the tests' `compose_config` call it).

Fields are `MISSING` (the YAML must give them) except `RunConfig.mbe`, which only one experiment
sets. Checks a type cannot express (ranges, names, files) are `training.run.validate`'s.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from pab_campaign.errors import ConfigError
from pab_campaign.store import RUNS_DIR, SUMMARY_DIR, is_campaign

# The configuration groups and presets (YAML), shipped inside the package (a wheel install finds them too).
CONFIG_DIR = Path(str(files("pab_campaign.conf")))
SCHEMA_GROUP = "schema"


# ---- dataset -----------------------------------------------------------------------------------
@dataclass
class DatasetConfig:
    """Keys every data set has: fractions in [0, 1], `split_seed` fixes the held-out splits."""

    name: str = MISSING
    val_fraction: float = MISSING
    split_seed: int = MISSING
    train_fraction: float = MISSING
    label_noise: float = MISSING


@dataclass
class CornerPatchConfig:
    """A bright `size` × `size` square planted in the top-left corner of images (the ModelDiff
    case study): on every training image of class `train_class` (null = none) and on a seeded
    `val_fraction` of the validation images of every class (0 = none). Off when both are off."""

    train_class: int | None = MISSING
    val_fraction: float = MISSING
    size: int = MISSING


@dataclass
class DigitsConfig(DatasetConfig):
    test_fraction: float = MISSING
    corner_patch: CornerPatchConfig = field(default_factory=CornerPatchConfig)


@dataclass
class SyntheticConfig(DatasetConfig):
    test_fraction: float = MISSING
    n_samples: int = MISSING
    n_classes: int = MISSING
    side: int = MISSING
    noise: float = MISSING


@dataclass
class Cifar10Config(DatasetConfig):
    root: str | None = MISSING
    augment: bool = MISSING
    crop_padding: int = MISSING


@dataclass
class ImagenetConfig(DatasetConfig):
    root: str | None = MISSING
    # null (every class folder), an integer N (the first N folders) or a list of folder names.
    classes: Any = MISSING
    augment: bool = MISSING
    image_size: int = MISSING
    resize_size: int = MISSING
    train_eval_size: int | None = MISSING
    num_workers: int = MISSING


# ---- model -------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    name: str = MISSING


@dataclass
class MlpConfig(ModelConfig):
    hidden: list[int] = MISSING
    norm: str = MISSING
    dropout: float = MISSING


@dataclass
class CnnConfig(ModelConfig):
    channels: list[int] = MISSING
    hidden: int = MISSING
    norm: str = MISSING
    dropout: float = MISSING


@dataclass
class ResNet18Config(ModelConfig):
    width: int = MISSING
    blocks: list[int] = MISSING


@dataclass
class ResNet50Config(ModelConfig):
    zero_init_residual: bool = MISSING


@dataclass
class Lenet5Config(ModelConfig):
    """LeNet-5: `activation` tanh | relu, `pool` avg | max, inputs brought to `side` × `side` (`fit`
    resize | pad) when they are not."""

    activation: str = MISSING
    pool: str = MISSING
    side: int = MISSING
    fit: str = MISSING


@dataclass
class TransformerConfig(ModelConfig):
    """ViT-style patch encoder: `patch_size` (divides the image side), token width `dim`, `depth`
    blocks of `heads` heads and an MLP of `mlp_dim`, `pool` cls | mean."""

    patch_size: int = MISSING
    dim: int = MISSING
    depth: int = MISSING
    heads: int = MISSING
    mlp_dim: int = MISSING
    dropout: float = MISSING
    pool: str = MISSING


# ---- optimizer and schedule --------------------------------------------------------------------
@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING


@dataclass
class SgdConfig(OptimizerConfig):
    momentum: float = MISSING
    nesterov: bool = MISSING


@dataclass
class AdamConfig(OptimizerConfig):
    betas: list[float] = MISSING


@dataclass
class ScheduleConfig:
    name: str = MISSING


@dataclass
class ConstantScheduleConfig(ScheduleConfig):
    """The constant schedule has no keys besides its name."""


@dataclass
class CosineScheduleConfig(ScheduleConfig):
    warmup_epochs: int = MISSING
    min_lr_ratio: float = MISSING


# ---- tracking ----------------------------------------------------------------------------------
@dataclass
class TrackingConfig:
    """A tracking preset. `probes` maps a probe name to its parameters; each probe's own dataclass
    checks them (`training.probes.registry`), so the schema leaves the table open. `hookpoints` need
    the representation probe."""

    name: str = MISSING
    probe_size: int = MISSING
    probes: dict[str, Any] = MISSING
    # Named submodules (`model.named_modules()` names) whose outputs get the representation statistics.
    hookpoints: list[str] = MISSING


# ---- the root's own tables ---------------------------------------------------------------------
@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    stop_on_divergence: bool = MISSING


@dataclass
class CampaignConfig:
    name: str = MISSING
    root: str = MISSING
    dir: str = MISSING
    # The metric a sweep's task function returns (context/metric@last|@best), e.g. val/loss@best.
    objective: str = MISSING


@dataclass
class CheckpointConfig:
    every: int = MISSING
    keep_last_n: int = MISSING
    keep_every_n: int = MISSING
    best_metric: str | None = MISSING
    best_mode: str = MISSING


@dataclass
class RuntimeConfig:
    device: str = MISSING
    # null: the threads the launcher gave this job (see `job_threads`).
    threads: int | None = MISSING
    verbose: bool = MISSING
    amp: bool = MISSING
    compile: bool = MISSING
    # Data-parallel training over ranks (training/distributed.py): the ranks of a submitit/SLURM job,
    # of torchrun, or `nproc` processes the local launcher or the entry point starts for the run.
    distributed: bool = MISSING
    nproc: int = MISSING
    # auto (nccl on CUDA, gloo on the CPU) | gloo | nccl
    backend: str = MISSING
    # How long a rank waits in one collective (rank 0 evaluates and probes alone meanwhile).
    dist_timeout_min: int = MISSING


@dataclass
class MbeDraw:
    """One drawn configuration of the heterogeneous grid (scripts/make_mbe_grid.py writes them)."""

    lr: float = MISSING
    weight_decay: float = MISSING
    hidden: list[int] = MISSING
    train_fraction: float = MISSING
    label_noise: float = MISSING
    seed: int = MISSING


@dataclass
class MbeGrid:
    """The heterogeneous-grid experiment's table: the experiment interpolates `draws[sample]`'s
    values into the hyper-parameters."""

    sample: str = MISSING
    draws: dict[str, MbeDraw] = MISSING


@dataclass
class RunConfig:
    """The root: one entry per config group, the root's own tables, and the seed. (`hydra.*` keys
    are Hydra's own and checked by Hydra.)"""

    dataset: DatasetConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    schedule: ScheduleConfig = MISSING
    tracking: TrackingConfig = MISSING
    seed: int = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    campaign: CampaignConfig = field(default_factory=CampaignConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # Only `+experiment=mbe_heterogeneous_grid` sets this top-level table; null everywhere else.
    mbe: MbeGrid | None = None


# Config group → option (the YAML file's name in conf/<group>/) → its schema.
GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"digits": DigitsConfig, "synthetic": SyntheticConfig, "cifar10": Cifar10Config,
                "imagenet": ImagenetConfig},
    "model": {"mlp": MlpConfig, "cnn": CnnConfig, "resnet18": ResNet18Config, "resnet50": ResNet50Config,
              "lenet5": Lenet5Config, "transformer": TransformerConfig},
    "optimizer": {"sgd": SgdConfig, "adam": AdamConfig},
    "schedule": {"constant": ConstantScheduleConfig, "cosine": CosineScheduleConfig},
    "tracking": {"preset": TrackingConfig},
}
ROOT_SCHEMA = "run"


def check_campaign_name(name: str) -> None:
    """A campaign is a directory inside `campaign.root`: its name must be a relative path of plain
    names (no '..' or '.', not absolute, not empty), or it would escape the root or be the root."""
    if not name.strip() or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
        raise ConfigError(f"campaign.name='{name}' must name a directory inside campaign.root (plain names "
                          "separated by '/', no '..' or '.', not absolute, not empty), e.g. campaign.name=demo")


def check_campaign_dir(directory: str, key: str = "campaign.dir") -> None:
    """A campaign directory must be a directory or not exist yet: refuse one that is a file, or inside
    a file, naming `key` (the setting that made it)."""
    for path in (Path(directory), *Path(directory).parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == Path(directory) else f"is inside {path}, which is a file"
                raise ConfigError(f"{key}={directory} {where}; name a directory (it is created when missing)")
            return


def check_campaign_root(root: str) -> None:
    """`campaign.root` must name a directory (or one to create), never '' (it would put the campaign
    at the file system's root) nor a file."""
    if not root.strip():
        raise ConfigError("campaign.root is empty (PAB_CAMPAIGN_ROOT set to ''?); name the directory campaigns go "
                          "in, e.g. campaign.root=outputs, or unset PAB_CAMPAIGN_ROOT")
    check_campaign_dir(root, "campaign.root")


def launch_dir() -> str:
    """The directory the command was launched from: Hydra's record of it inside a Hydra app (it may
    have changed into its output folder since, `hydra.job.chdir=true`), else the current one."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        cwd = HydraConfig.get().runtime.cwd
        if cwd:
            return str(cwd)
    return os.getcwd()


def campaign_dir(root: str, name: str) -> str:
    """`${pab_campaign_dir:root,name}` in config.yaml: the absolute path of `<root>/<name>` (a relative
    root is taken from where the command was launched, so changing into Hydra's output folder does
    not move the campaign) once the root and name are checked, so a bad one is refused where Hydra
    first resolves the directory, before it writes anything there."""
    check_campaign_name(str(name))
    check_campaign_root(str(root))
    directory = os.path.normpath(os.path.join(launch_dir(), str(root), str(name)))
    check_campaign_dir(directory)
    for folder in (Path(directory), *Path(directory).parents):
        if folder.name in (RUNS_DIR, SUMMARY_DIR) and is_campaign(folder.parent):
            raise ConfigError(f"campaign.name={name} puts the campaign inside {folder}, the {folder.name}/ folder of "
                              f"the campaign {folder.parent}; choose a name outside it")
    return directory


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore: `schema/run` (the root, extended by config.yaml)
    and `schema/<group>/<option>` (extended by conf/<group>/<option>.yaml), and register the
    `pab_campaign_dir` resolver. Idempotent."""
    OmegaConf.register_new_resolver("pab_campaign_dir", campaign_dir, replace=True)
    store = ConfigStore.instance()
    store.store(group=SCHEMA_GROUP, name=ROOT_SCHEMA, node=RunConfig)
    for group, options in GROUP_SCHEMAS.items():
        for option, schema in options.items():
            store.store(group=f"{SCHEMA_GROUP}/{group}", name=option, node=schema)
    # conf/hydra/sweeper/checked.yaml and conf/hydra/launcher/local.yaml extend the plugin's schemas
    # with this app's `validate` and `preload`; Hydra also matches them by name against the plugin's
    # `checked` and `local`, and would say so at each start.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/(sweeper/checked|launcher/local)' is validated against "
                                              "ConfigStore schema")


def undeclared_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys of `cfg` that its schemas do not declare, which only Hydra's `+key=value` can add
    (it appends past the schema); the open tables' own keys (`tracking.probes`) are anyone's."""
    schema = OmegaConf.get_type(cfg)
    declared = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    found = []
    for key in cfg:
        assert isinstance(key, str)  # the keys of a DictConfig
        name = f"{prefix}{key}"
        child = OmegaConf.get_type(cfg, key)
        if declared is not None and key not in declared:
            found.append(name)
        elif child is dict or is_dataclass(child):
            found += undeclared_keys(cfg[key], f"{name}.")
    return found


def schema_keys(schema: type) -> dict[str, str]:
    """The keys of a schema dataclass and their types as text, in declaration order:
    `schema_keys(TrainConfig)["epochs"]` is `"int"`, `schema_keys(RuntimeConfig)["threads"]` `"int | None"`."""
    hints = get_type_hints(schema)
    return {f.name: _type_text(hints[f.name]) for f in fields(schema)}


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(annotation))


def job_threads(threads: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """Torch threads of one run: `runtime.threads` when set, else the threads the launcher gave the
    job ($OMP_NUM_THREADS), else 1. ConfigError when $OMP_NUM_THREADS is not a positive integer."""
    if threads is not None:
        return threads
    given = environ.get("OMP_NUM_THREADS", "").strip()
    if not given:
        return 1
    if not given.isdigit() or int(given) < 1:
        raise ConfigError(f"OMP_NUM_THREADS={given!r} is not a positive integer; unset it or set runtime.threads")
    return int(given)
