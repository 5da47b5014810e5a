"""Hydra entry point: `python -m pab_campaign [-m] [overrides]` trains one run or a sweep."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from pab_campaign.errors import ConfigError
from pab_campaign.launching.sweep_status import FAILED_RUNS, write_job_pointer

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def train(cfg: DictConfig) -> str:
    from pab_campaign.training.run import execute

    hydra_cfg = HydraConfig.get()
    try:
        outcome = execute(cfg, overrides=list(hydra_cfg.overrides.task))
    except ConfigError as exc:
        # SystemExit passes through Hydra's job runner, which would otherwise print its own banner.
        print(f"pab_campaign: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    write_job_pointer(Path(hydra_cfg.runtime.output_dir), outcome)
    if outcome.status == "failed":
        FAILED_RUNS.append(outcome.run_id)
    return outcome.status


def _one_line(exc: BaseException) -> str:
    """The first meaningful lines of a Hydra/OmegaConf/config error, joined into one line."""
    text = str(exc).split("Config search path")[0]
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({str(cause).splitlines()[0]})"
    lines = [line.strip() for line in text.splitlines() if line.strip() and "full_key" not in line
             and "object_type" not in line]
    return " ".join(lines)


def main() -> None:
    """Run Hydra; turn config and composition errors into one line on stderr and exit code 2."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        train()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"pab_campaign: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    if FAILED_RUNS:
        sys.exit(1)


if __name__ == "__main__":
    main()
