"""`hydra/sweeper=optuna` in an app that calls `register_optuna_sweeper()` before Hydra runs:
hydra-optuna-sweeper's Optuna sweeper, with a trial whose job returned NaN (a run that failed or
diverged) told to the study as a failed trial, and the study going on.

hydra-optuna-sweeper 1.2.0 (the release that works with hydra-core 1.3) tells Optuna 2.x the NaN as
a completed trial's value; Optuna refuses it, the sweeper then tells the trial failed *with* the
NaN, Optuna refuses that too, and the whole study ends with a traceback at the first failed run.
Here the study's `tell` is given a failed trial without values instead, and a study none of whose
trials completed ends with a warning (the sweeper asks Optuna for a best trial there is not); nothing
else of the sweeper changes (sampler, storage, study name, search space, results file).
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig

log = logging.getLogger(__name__)


def tell_nan_as_failed(tell: Callable[..., Any], trial: Any, values: Any = None, state: Any = None) -> Any:
    """Optuna's `Study.tell(trial, values, state)`, where a completed trial with a NaN value is told
    failed, and a failed or pruned one is told without values (Optuna refuses values there)."""
    from optuna.trial import TrialState

    state = TrialState.COMPLETE if state is None else state
    listed = None if values is None else list(values) if isinstance(values, (list, tuple)) else [values]
    if state == TrialState.COMPLETE and listed is not None and any(math.isnan(float(v)) for v in listed):
        number = getattr(trial, "number", trial)
        log.warning("trial %s: its run failed or diverged (objective NaN); the study records it as a failed trial",
                    number)
        state, listed = TrialState.FAIL, None
    elif state != TrialState.COMPLETE:
        listed = None
    return tell(trial=trial, values=listed, state=state)


# What Optuna's `Study.best_trial` says when no trial completed (the one ValueError told as a warning).
NO_BEST_TRIAL = "No trials are completed yet"
DIRECTIONS = ("minimize", "maximize")


def check_study(arguments: dict[str, Any]) -> None:
    """ConfigError naming the key for a study the app cannot run: a direction other than one of
    DIRECTIONS (the app returns one objective, so one direction), or n_trials or n_jobs below 1
    (0 jobs looped forever, 0 trials ended as if every run had failed)."""
    from pab_campaign.errors import ConfigError

    direction = arguments.get("direction", "minimize")
    directions = list(direction) if isinstance(direction, (list, tuple, ListConfig)) else [direction]
    names = [str(getattr(d, "name", d)).lower() for d in directions]  # the config's Direction enum, or text
    if len(names) != 1 or names[0] not in DIRECTIONS:
        raise ConfigError(f"hydra.sweeper.direction={'[' + ','.join(names) + ']' if len(names) > 1 else names[0]}: "
                          f"the run returns one objective (campaign.objective), so give one of {', '.join(DIRECTIONS)}")
    for key in ("n_trials", "n_jobs"):
        value = arguments.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"hydra.sweeper.{key}={value} must be a whole number >= 1")


class OptunaSweeper(Sweeper):
    """hydra-optuna-sweeper's `OptunaSweeper` (same arguments), failed runs told as failed trials."""

    def __init__(self, **arguments: Any) -> None:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as Upstream

        self.arguments, self.upstream = arguments, Upstream(**arguments)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        check_study(self.arguments)  # here, not in __init__: Hydra would wrap the error in its own words
        self.upstream.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from hydra_plugins.hydra_optuna_sweeper import _impl
        from optuna.trial import TrialState

        create_study = _impl.optuna.create_study
        studies = []

        def tolerant_study(*args: Any, **kwargs: Any) -> Any:
            study = create_study(*args, **kwargs)
            study.tell = functools.partial(tell_nan_as_failed, study.tell)
            studies.append(study)
            return study

        with mock.patch.object(_impl.optuna, "create_study", tolerant_study):
            try:
                return self.upstream.sweep(arguments)
            except ValueError as exc:  # the sweeper asks for the best trial, and Optuna has none to give
                if (NO_BEST_TRIAL not in str(exc) or not studies
                        or any(t.state == TrialState.COMPLETE for t in studies[0].get_trials(deepcopy=False))):
                    raise
        log.warning("optuna: no trial of the study completed (every run failed or diverged), so there is no best "
                    "value and no optimization_results.yaml")
        return None


def register_optuna_sweeper() -> None:
    """Store `hydra/sweeper=optuna` as this module's sweeper, over hydra-optuna-sweeper's own entry
    (nothing when that package is not installed). Hydra runs every plugin module in one scan, which
    stores the package's entry whatever the order of the folders it scans; this runs the scan first,
    so the entry stored here comes last. Call it in the launching process before Hydra composes."""
    Plugins.instance()
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
    except ImportError:
        return

    @dataclass
    class TolerantOptunaConf(OptunaSweeperConf):
        _target_: str = f"{__name__}.OptunaSweeper"

    ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=TolerantOptunaConf,
                                 provider="pab_campaign_launchers")
