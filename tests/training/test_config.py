"""The typed configuration: every YAML extends its schema, values live only in conf/, wrong types and
unknown keys are refused while Hydra composes, and `runtime.threads: null` takes the launcher's threads."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import fields, is_dataclass

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, OmegaConf

from pab_campaign.__main__ import config_error_line
from pab_campaign.errors import ConfigError
from pab_campaign.training import config
from pab_campaign.training.config import (
    GROUP_SCHEMAS,
    RunConfig,
    TrackingConfig,
    job_threads,
    schema_keys,
    undeclared_keys,
)
from pab_campaign.training.run import execute
from tests.helpers import REPO, assert_one_line_error, command_env, compose_config, train

CONF = REPO / "pab_campaign" / "conf"
EXPERIMENTS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
TRACKING_PRESETS = sorted(path.stem for path in (CONF / "tracking").glob("*.yaml"))


def test_every_option_file_has_a_schema():
    for group, options in GROUP_SCHEMAS.items():
        stems = {path.stem for path in (CONF / group).glob("*.yaml")}
        assert stems == (set(TRACKING_PRESETS) if group == "tracking" else set(options)), group


@pytest.mark.parametrize(("group", "option", "schema"), [
    (group, option, schema) for group, options in GROUP_SCHEMAS.items() if group != "tracking"
    for option, schema in options.items()
] + [("tracking", preset, TrackingConfig) for preset in TRACKING_PRESETS])
def test_each_option_composes_typed_by_its_schema(tmp_path, group, option, schema):
    cfg = compose_config([f"{group}={option}"], tmp_path / "c")
    assert OmegaConf.get_type(cfg) is RunConfig
    assert OmegaConf.get_type(cfg[group]) is schema
    assert cfg[group].name == option if group != "tracking" else cfg.tracking.name == option
    # Every key the schema declares has its value in the YAML (nothing is left missing).
    assert not OmegaConf.missing_keys(cfg)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves_to_typed_values(experiment):
    cfg = compose_config([f"+experiment={experiment}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["campaign"]["name"] == experiment
    assert isinstance(resolved["seed"], int) and isinstance(resolved["optimizer"]["lr"], float)
    assert undeclared_keys(cfg) == []


def test_heterogeneous_grid_table_is_typed(tmp_path):
    cfg = compose_config(["+experiment=mbe_heterogeneous_grid", "mbe.sample=c03"], tmp_path / "c")
    assert OmegaConf.get_type(cfg.mbe.draws.c03) is config.MbeDraw
    assert list(cfg.model.hidden) == [32] and isinstance(cfg.optimizer.lr, float)
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["+experiment=mbe_heterogeneous_grid", "mbe.draws.c03.hidden=[wide]"], tmp_path / "c")
    assert "could not be converted to Integer" in config_error_line(info.value)
    added = compose_config(["+experiment=mbe_heterogeneous_grid", "+mbe.draws.c03.extra=1"], tmp_path / "c")
    assert undeclared_keys(added) == ["mbe.draws.c03.extra"]


def _schemas() -> list[type]:
    found = []
    stack = [RunConfig, config.MbeGrid, config.MbeDraw]
    stack += [schema for options in GROUP_SCHEMAS.values() for schema in options.values()]
    while stack:
        schema = stack.pop()
        if schema not in found:
            found.append(schema)
            stack += [f.default_factory for f in fields(schema) if f.default_factory is not NO_DEFAULT]
    return found


def test_schemas_carry_types_and_no_values():
    """Values live in conf/ alone: every field is MISSING, a table of MISSING fields, or the one
    optional `mbe` table, null unless its experiment sets it."""
    for schema in _schemas():
        for f in fields(schema):
            if f.default_factory is not NO_DEFAULT:
                assert is_dataclass(f.default_factory), (schema, f.name)
            elif (schema, f.name) == (RunConfig, "mbe"):
                assert f.default is None
            else:
                assert f.default == MISSING, (schema.__name__, f.name, f.default)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["train.epochs=abc"],
     "train.epochs=abc: Value 'abc' of type 'str' could not be converted to Integer; train.epochs takes int"),
    (["optimizer.lrr=0.1"],
     "optimizer.lrr=0.1: optimizer has no key 'lrr'; its keys are name, lr, weight_decay, momentum, nesterov"),
    (["optimizer=adam", "optimizer.momentum=0.9"],
     "optimizer.momentum=0.9: optimizer has no key 'momentum'; its keys are name, lr, weight_decay, betas"),
    (["model=cnn", "model.channels=7"], "model.channels=7: "),
])
def test_composition_refuses_with_the_key_and_the_fix(tmp_path, overrides, expected):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(overrides, tmp_path / "c")
    assert config_error_line(info.value).startswith(expected)
    assert "\n" not in config_error_line(info.value)


def test_a_key_left_without_value_is_refused_before_anything_is_written(tmp_path):
    cfg = compose_config(["model.norm=???"], tmp_path / "c")
    with pytest.raises(ConfigError, match=r"^model\.norm has no value: .* e\.g\. model\.norm=\.\.\.$"):
        execute(cfg)
    assert not (tmp_path / "c").exists()


def test_undeclared_keys_finds_what_plus_added_past_the_schema(tmp_path):
    cfg = compose_config(["+train.epoch=3", "+extra=1", "+tracking.probes.churn.evry=2"], tmp_path / "c")
    # tracking.probes is an open table: the probe's own dataclass refuses `evry` when the run starts.
    assert undeclared_keys(cfg) == ["train.epoch", "extra"]
    with pytest.raises(ConfigError, match=r"train\.epoch is not a config key"):
        execute(cfg)
    assert not (tmp_path / "c").exists()


def test_schema_keys_name_the_declared_types():
    assert schema_keys(config.RuntimeConfig) == {"device": "str", "threads": "int | None", "verbose": "bool",
                                                 "amp": "bool", "compile": "bool", "distributed": "bool",
                                                 "nproc": "int", "backend": "str", "dist_timeout_min": "int"}
    assert schema_keys(config.MlpConfig)["hidden"] == "list[int]"
    assert schema_keys(RunConfig)["mbe"] == "MbeGrid | None"


@pytest.mark.parametrize(("threads", "environ", "expected"), [
    (3, {"OMP_NUM_THREADS": "8"}, 3),
    (None, {"OMP_NUM_THREADS": "8"}, 8),
    (None, {"OMP_NUM_THREADS": " 2 "}, 2),
    (None, {}, 1),
    (None, {"OMP_NUM_THREADS": ""}, 1),
])
def test_job_threads(threads, environ, expected):
    assert job_threads(threads, environ) == expected


@pytest.mark.parametrize("given", ["0", "four", "-2"])
def test_job_threads_refuses_a_bad_environment(given):
    with pytest.raises(ConfigError, match=f"OMP_NUM_THREADS='{given}' is not a positive integer"):
        job_threads(None, {"OMP_NUM_THREADS": given})


def test_null_threads_take_the_launchers_threads(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    cfg = compose_config(["train.epochs=1", "tracking=minimal", "checkpoint.every=0", "runtime.verbose=false"],
                         tmp_path / "c")
    assert cfg.runtime.threads is None
    try:
        assert execute(cfg).status == "completed"
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_importing_the_schemas_does_not_import_torch():
    code = "import sys, pab_campaign.training.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=command_env(), check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(("preset", "expected"), [
    ("name: mlp\nhidden: [256]\nnorm: none\ndropout: 0.0\n",
     "model/mine.yaml: 'hidden' is not in the model schema; a preset of your own extends one of its schemas (mlp, "
     "cnn, resnet18, resnet50, lenet5, transformer): start it with defaults: [/schema/model/mlp@_here_, _self_]"),
    ("defaults: [/schema/model/resnet18@_here_, _self_]\nname: resnet18\nwidht: 8\nblocks: [1, 1, 1, 1]\n",
     "model/mine.yaml: 'widht' is not a key of model=resnet18 (did you mean width?); its keys are name, width, "
     "blocks"),
])
def test_a_preset_of_your_own_that_breaks_its_schema_says_the_fix(tmp_path, preset, expected):
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "mine.yaml").write_text(preset)
    result = train([f"--config-dir={tmp_path / 'conf'}", "model=mine", "train.epochs=1"], tmp_path / "c")
    assert_one_line_error(result, f"pab_campaign: error: {expected}")
    assert not (tmp_path / "c").exists()
