"""`hydra/sweeper=checked`: Hydra's basic sweeper (the same grid, the same batches) that checks every
job's config before the first job starts, and lets the sweep go on past a failed job.

    python -m pab_campaign -m optimizer.lr=0.05,-1      # refused in one line; nothing trains

The check is the app's own, named by a dotted path in `hydra.sweeper.validate` (a callable taking
one job's composed config, without its `hydra` node, that raises to refuse it); the sweeper imports
nothing of the app, so it serves any Hydra app.

A job whose launcher returns it failed (Hydra's `JobStatus.FAILED`: its task raised, or it was
killed) is logged and the next ones still run, where the basic sweeper would stop the sweep at that
batch. After the last batch, a sweep with failed jobs runs the app's end-of-sweep callbacks (which
may print their own report and exit) and ends with exit status 1. A refused job, or a `validate`
that cannot be imported, is one line on stderr and exit status 2 (`launching.refusal`).
"""
from __future__ import annotations

import copy
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from pab_campaign.errors import one_line
from pab_campaign.launching.refusal import JobRefused, exit_on_refusal

log = logging.getLogger(__name__)


def resolve_validator(path: str | None) -> Callable[[DictConfig], Any] | None:
    """The callable at dotted `path` (None: no check); JobRefused when it cannot be imported."""
    if not path:
        return None
    try:
        return get_method(path)
    except Exception as exc:  # Hydra wraps import and attribute errors alike
        raise JobRefused(f"hydra.sweeper.validate={path} cannot be imported ({one_line(exc)}); name a callable "
                         "module.function that takes a job's config") from None


def check_job(validate: Callable[[DictConfig], Any], config: DictConfig, label: str) -> None:
    """Run `validate` on `config` without its `hydra` node, as the job itself will see it. An error
    that is not OmegaConf's (which the app's entry point names by key) becomes one JobRefused
    naming the job (`label`)."""
    HydraConfig.instance().set_config(config)
    task = copy.deepcopy(config)
    with open_dict(task):
        del task["hydra"]
    try:
        validate(task)
    except OmegaConfBaseException:
        raise
    except Exception as exc:
        raise JobRefused(f"{label}: {one_line(exc)}") from None


class CheckedSweeper(BasicSweeper):
    """BasicSweeper with `validate` (a dotted path, see the module docstring)."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 validate: str | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.validate = validate

    @exit_on_refusal
    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        for override in overrides:  # a sampling sweeper's range: Hydra's own words name no fix
            if override.value_type == ValueType.INTERVAL_SWEEP:
                raise JobRefused(f"{override.input_line}: an interval is for a sweeper that draws from it; add "
                                 "hydra/sweeper=optuna or hydra/sweeper=random, or give the values to run, e.g. "
                                 "optimizer.lr=0.01,0.1")
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        self.check_all(self.overrides)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns: list[Sequence[JobReturn]] = []
        initial_job_idx = 0
        failed = 0
        while not self.is_done():
            batch = self.get_job_batch()
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for idx, result in enumerate(results, start=initial_job_idx):
                if result.status == JobStatus.FAILED:
                    failed += 1
                    log.error("job #%d (%s) failed: %s", idx, " ".join(filter_overrides(result.overrides or [])),
                              result._return_value)
            initial_job_idx += len(batch)
            returns.append(results)
        if failed:
            self.end_failed(failed, initial_job_idx)
        return returns

    def end_failed(self, failed: int, jobs: int) -> None:
        """End a sweep that had failed jobs with exit status 1, after the app's end-of-sweep
        callbacks (Hydra would run them after `sweep` returns; here they run once, before the exit)."""
        assert self.hydra_context is not None and self.config is not None
        self.hydra_context.callbacks.on_multirun_end(config=self.config)
        print(f"sweep: {failed} of {jobs} jobs failed (their errors are logged above)", file=sys.stderr, flush=True)
        raise SystemExit(1)

    def check_all(self, batches: list[list[list[str]]]) -> None:
        """Compose every job of every batch and run the app's check on it, before any job starts."""
        assert self.hydra_context is not None and self.config is not None
        validate = resolve_validator(self.validate)
        started = time.perf_counter()
        jobs = [job for batch in batches for job in batch]
        saved = HydraConfig.instance().cfg
        try:
            for idx, job in enumerate(jobs):
                config = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
                if validate is not None:
                    check_job(validate, config, f"job #{idx} ({' '.join(filter_overrides(job))})")
        finally:
            HydraConfig.instance().cfg = saved
        log.debug("checked the configs of %d jobs in %.2f s", len(jobs), time.perf_counter() - started)
