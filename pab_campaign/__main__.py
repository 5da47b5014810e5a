"""Hydra entry point: `python -m pab_campaign [-m] [overrides]` trains one run or a sweep."""
from __future__ import annotations

import copy
import math
import os
import re
import sys
from dataclasses import is_dataclass
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from pab_campaign.errors import ConfigError, PabError, did_you_mean, one_line
from pab_campaign.launching.sweep_status import write_job_pointer
from pab_campaign.store import RunStatus
from pab_campaign.training.config import CONFIG_DIR, GROUP_SCHEMAS, register_schemas, schema_keys

register_schemas()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def train(cfg: DictConfig) -> float:
    """Train the run `cfg` describes and return its `campaign.objective` as a float (NaN when the
    run did not complete: Optuna records a failed trial); the job's pointer file records the run for
    the sweep's status table. A job refused by `validate` ends the command with one line and exit
    status 2, also under a sweeper that does not check the jobs before they start. A single run (no -m) that failed ends
    the command with exit status 1; a sweep's exit status comes from its status table (the
    `SweepStatusCallback`), which reads every job's pointer. A distributed run whose ranks this
    process must start (`runtime.nproc`) is started here, as torchrun would; only rank 0 reports."""
    from pab_campaign.training import spawned
    from pab_campaign.training.distributed import RankFailed
    from pab_campaign.training.objective import job_objective
    from pab_campaign.training.run import execute

    hydra_cfg = HydraConfig.get()
    overrides = list(hydra_cfg.overrides.task)
    try:
        if spawned.needs_ranks(cfg):
            spawned.check_ranks(cfg)
            outcome = start_ranks(cfg, overrides)
        else:
            outcome = execute(cfg, overrides=overrides)
    except RankFailed as exc:  # torchrun's rank other than 0: one line (rank 0 records the run)
        print(f"pab_campaign: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
    except (ConfigError, OmegaConfBaseException) as exc:
        # OmegaConf raises here for a value read through an interpolation (a key that is not there,
        # a value of the wrong type). SystemExit passes through Hydra's job runner, which would
        # otherwise print its own banner.
        message = config_error_line(exc) if isinstance(exc, OmegaConfBaseException) else one_line(exc)
        print(f"pab_campaign: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    if outcome.rank != 0:  # one of a job's other ranks: rank 0 reports the run
        return math.nan
    write_job_pointer(Path(hydra_cfg.runtime.output_dir), outcome)
    if outcome.status == RunStatus.FAILED and hydra_cfg.mode == RunMode.RUN:
        raise SystemExit(1)
    try:
        return job_objective(outcome.status, outcome.directory, str(cfg.campaign.objective))
    except ConfigError as exc:  # an objective the run never recorded: every job of the sweep would say NaN
        print(f"pab_campaign: error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


def start_ranks(cfg: DictConfig, overrides: list[str]):
    """Start the run's `runtime.nproc` ranks here, as torchrun would, and return rank 0's outcome. A
    rank that stopped on a config error has said so in one line (exit 2); a rank that failed or was
    killed ended the others, and the run is failed (it resumes when launched again)."""
    from pab_campaign.launching.ranks import RanksFailed, run_ranks
    from pab_campaign.training import spawned

    resolved = copy.deepcopy(cfg)
    OmegaConf.resolve(resolved)  # the ranks are fresh interpreters, without Hydra's resolvers
    try:
        reports = run_ranks(spawned.rank_main, (resolved, overrides), int(cfg.runtime.nproc))
    except RanksFailed as exc:
        if exc.exit_code == 2:
            raise SystemExit(2) from None
        # the failed rank's own error; another rank's is what followed from it (a peer gone)
        cause = next((report[2] for report in exc.reports if report[:2] == ("error", exc.rank)), str(exc))
        error = f"{cause}; the other ranks were ended; launch it again to resume from its last checkpoint"
        print(f"pab_campaign: {error}", file=sys.stderr)
        spawned.record_failure(cfg, error)
        return spawned.lost_outcome(cfg, error)
    outcome = next((report[1] for report in reports if report[0] == "outcome"), None)
    return outcome if outcome is not None else spawned.lost_outcome(cfg, "rank 0 ended without a result")


# The override Hydra names in "Error merging override k=v" and "... use +k=v".
_OVERRIDE = re.compile(r"(?:Error merging override |use \+)(\S+)")
# OmegaConf's detail lines under its message ("full_key: ...", "object_type=...").
# Hydra's prefix naming the config file it was composing: `In 'model/wide': ...`.
_IN_FILE = re.compile(r"^In '(?P<group>[\w.-]+)/(?P<option>[^']+)'")
# OmegaConf's message for a key a typed config does not have.
_NOT_IN_SCHEMA = re.compile(r"Key '(?P<key>[^']+)' not in '(?P<schema>\w+)'")
_DETAIL = re.compile(r"^(full_key:|reference_type=|object_type=)")


def config_error_line(exc: BaseException) -> str:
    """One line for an error Hydra or OmegaConf raised while composing or reading the config.

    A wrong type or an unknown key of a typed config names the override, the reason and the fix
    (the key's type, or the keys that exist there). Other messages keep their lines that matter
    (Hydra lists the available options over several lines), without the config search path.
    """
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    schema = getattr(cause, "object_type", None)
    full_key = str(getattr(cause, "full_key", "") or "")
    if isinstance(schema, type) and is_dataclass(schema) and full_key:
        found = _OVERRIDE.search(str(exc))
        override = found.group(1) if found else full_key
        keys = schema_keys(schema)
        where, _, key = full_key.rpartition(".")
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
            return f"{override}: {where or 'the top level'} has no key '{key}'; its keys are {', '.join(keys)}"
        if isinstance(cause, ValidationError) and key in keys:
            return f"{override}: {one_line(cause)}; {full_key} takes {keys[key]}"
    preset = _IN_FILE.match(str(exc))
    unknown = _NOT_IN_SCHEMA.search(str(exc))
    if preset and unknown and preset["group"] in GROUP_SCHEMAS:
        group, options = preset["group"], GROUP_SCHEMAS[preset["group"]]
        where = f"{group}/{preset['option']}.yaml: '{unknown['key']}'"
        if unknown["schema"] in {schema.__mro__[1].__name__ for schema in options.values()}:  # the group's base
            return (f"{where} is not in the {group} schema; a preset of your own extends one of its schemas "
                    f"({', '.join(options)}): start it with defaults: [/schema/{group}/{next(iter(options))}@_here_, "
                    "_self_]")
        named = next((name for name, schema in options.items() if schema.__name__ == unknown["schema"]), None)
        if named is not None:
            names = list(schema_keys(options[named]))
            return (f"{where} is not a key of {group}={named}{did_you_mean(unknown['key'], names)}; its keys are "
                    f"{', '.join(names)}")
    text = str(exc).split("Config search path")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _DETAIL.match(line.strip())]
    joined = " ".join(lines) or one_line(exc)
    if cause is exc:
        # Raised reading a value (through an interpolation): name the key that was read.
        return f"{full_key}: {joined}" if full_key else joined
    reason = one_line(cause)
    return f"{joined} ({reason})" if reason not in joined else joined


def main() -> None:
    """Run Hydra; turn config and composition errors into one line on stderr and exit code 2. A failed
    run (or any failed run of a sweep) gives exit code 1 (see `train`)."""
    from hydra.errors import HydraException

    from hydra_plugins.pab_campaign_launchers.optuna_sweeper import register_optuna_sweeper

    os.environ["HYDRA_FULL_ERROR"] = "1"
    register_optuna_sweeper()  # hydra/sweeper=optuna: a run that failed or diverged is a failed trial
    try:
        train()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"pab_campaign: error: {config_error_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except PabError as exc:
        print(f"pab_campaign: error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("pab_campaign: interrupted: runs that were training are recorded preempted and resume from their last "
              "checkpoint when the same command runs again", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:  # Hydra writing its own files (the sweep folder, multirun.yaml); a run records its own
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pab_campaign: error: {where}{exc.strerror or one_line(exc)}; choose a campaign.root (or "
              "hydra.sweep.dir) you can write", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
