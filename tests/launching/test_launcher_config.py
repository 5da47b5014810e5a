"""The launchers' own configuration: `hydra/launcher=local|slurm` come from the plugin's ConfigStore
entries with their defaults in an app that has none of pab_campaign's keys; settings that cannot
work are refused when the launcher is built; the sweep-status callback needs no campaign key."""
from __future__ import annotations

import dataclasses
import re

import pytest
from hydra import compose, initialize
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from hydra_plugins.pab_campaign_launchers.config import LocalConf, SlurmConf
from hydra_plugins.pab_campaign_launchers.launchers import LocalLauncher, SlurmLauncher
from pab_campaign.launching.sweep_status import SweepStatusCallback


def launcher_config(name: str, *overrides: str):
    """`hydra.launcher` of an app without a config file, `hydra/launcher=name` and `overrides`."""
    with initialize(version_base="1.3", config_path=None):
        cfg = compose(overrides=[f"hydra/launcher={name}", "hydra.sweep.dir=/sweeps/s1", *overrides],
                      return_hydra_config=True)
    return cfg.hydra.launcher


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_launcher_defaults_in_an_app_without_our_keys():
    local = launcher_config("local")
    assert local._target_ == "hydra_plugins.pab_campaign_launchers.launchers.LocalLauncher"
    assert (local.cpus_per_task, local.max_parallel, local.gpus, local.warm_start) == (1, None, True, True)
    slurm = launcher_config("slurm")
    assert slurm._target_ == "hydra_plugins.pab_campaign_launchers.launchers.SlurmLauncher"
    assert (slurm.cpus_per_task, slurm.detach, slurm.max_num_timeout) == (1, False, 3)
    assert slurm.detach_record == "/sweeps/s1/submitted.json"
    assert slurm.submitit_folder == "/sweeps/s1/.submitit/%j"


@pytest.mark.usefixtures("hydra_restore_singletons")
@pytest.mark.parametrize(("override", "message"), [
    ("hydra.launcher.cpus_per_task=two", "'two' of type 'str' could not be converted to Integer"),
    ("hydra.launcher.detach=maybe", "'maybe' is not a valid bool"),
    ("hydra.launcher.detahc=true", "Key 'detahc' not in 'SlurmConf'"),
])
def test_composition_refuses_wrong_types_and_unknown_keys(override, message):
    with pytest.raises(ConfigCompositionException) as refused:
        launcher_config("slurm", override)
    assert message in str(refused.value.__cause__)


def params(schema: type, **changes) -> dict:
    """A launcher's keyword arguments, as Hydra passes them, from `schema` with `changes`."""
    fixed = {"submitit_folder": "/sweeps/s1/.submitit/%j", "name": "app"}
    if schema is SlurmConf:
        fixed["detach_record"] = "/sweeps/s1/submitted.json"
    conf = schema(**{**fixed, **changes})
    return {f.name: getattr(conf, f.name) for f in dataclasses.fields(conf) if f.name != "_target_"}


@pytest.mark.parametrize(("launcher", "kwargs", "message"), [
    (SlurmLauncher, params(SlurmConf, max_num_timeout=0), r"max_num_timeout must be >= 1"),
    (SlurmLauncher, params(SlurmConf, timeout_min=2), r"timeout_min=2 is too short .* use timeout_min>=4"),
    (SlurmLauncher, params(SlurmConf, timeout_min=2, signal_delay_s=30), r"use timeout_min>=3"),
    (SlurmLauncher, {**params(SlurmConf), "partiton": "gpu"}, r"unknown keys \['partiton'\]"),
    (LocalLauncher, {**params(LocalConf), "max_paralel": 2}, r"unknown keys \['max_paralel'\]"),
    (LocalLauncher, params(LocalConf, timeout_min=0), r"timeout_min=0 must be >= 1"),
    (SlurmLauncher, params(SlurmConf, timeout_min=-5), r"timeout_min=-5 must be >= 1"),
])
def test_launcher_refuses_settings_that_cannot_work(launcher, kwargs, message, capsys):
    with pytest.raises(SystemExit) as ended:
        launcher(**kwargs)
    assert ended.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines


def test_launchers_accept_their_defaults():
    assert SlurmLauncher(**params(SlurmConf, timeout_min=4)).detach is False
    assert LocalLauncher(**params(LocalConf)).max_parallel is None


@pytest.mark.parametrize(("app", "expected"), [
    ({}, "sweep submitted and detached (job ids in /s/rec.json); follow with `squeue`\n"),
    ({"campaign": {"dir": "/c/demo"}},
     "sweep submitted and detached (job ids in /s/rec.json); follow with `squeue`, then `pab-campaign ls /c/demo`\n"),
])
def test_detached_sweep_status_needs_no_campaign_key(capsys, app, expected):
    config = OmegaConf.create({**app, "hydra": {"sweep": {"dir": "/s"},
                                                "launcher": {"detach": True, "detach_record": "/s/rec.json"}}})
    SweepStatusCallback().on_multirun_end(config)
    assert capsys.readouterr().out == expected
