"""A single run's config checked before Hydra writes anything: Hydra makes the run's output folder
(`<campaign>/hydra/<time>/` with its `.hydra/` configs) before it calls the task function, so a run
the app refused left that folder behind. This callback runs the app's check (`validate`, a dotted
path to a callable taking the run's config without its `hydra` node, as `hydra/sweeper=checked`
runs one on every job of a sweep) at the run's start instead; a refusal is the app's own line on
stderr and exit status 2."""
from __future__ import annotations

import copy
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig, open_dict
from omegaconf.errors import OmegaConfBaseException

from pab_campaign.errors import PabError, one_line


class RunCheckCallback(Callback):
    """Runs `validate` on the config of a single run (no -m) before Hydra writes its output folder."""

    def __init__(self, validate: str) -> None:
        self.validate = validate

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        task = copy.deepcopy(config)
        with open_dict(task):
            del task["hydra"]
        try:
            get_method(self.validate)(task)
        except PabError as exc:
            print(f"pab_campaign: error: {one_line(exc)}", file=sys.stderr)
            raise SystemExit(2) from None
        except OmegaConfBaseException:
            return  # a value read through an interpolation: the run names it by its key, as it would
