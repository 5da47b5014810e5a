"""The launchers' own configuration, registered in Hydra's ConfigStore as `hydra/launcher=local` and
`hydra/launcher=slurm` (any Hydra app may select them; nothing here reads the app's config).

    python -m pab_campaign -m hydra/launcher=local hydra.launcher.max_parallel=1 hydra.launcher.cpus_per_task=2
    python -m pab_campaign -m hydra/launcher=slurm hydra.launcher.partition=gpu hydra.launcher.gpus_per_node=1

Both extend hydra-submitit-launcher's schemas, so every submitit key keeps its meaning there; a
key that is not a field, or a value of the wrong type, is refused when Hydra composes the config
(a key added with `+hydra.launcher.<key>` slips past composition and is refused when the launcher
is built).

No `from __future__ import annotations` here: Hydra executes plugin modules before they are in
sys.modules, where dataclasses cannot resolve string annotations.
"""
from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf

PROVIDER = "pab_campaign_launchers"


@dataclass
class LocalConf(LocalQueueConf):
    """submitit_local with bounded parallelism: at most `max_parallel` jobs at once, where
    jobs x cpus_per_task <= cores and, when GPUs are visible, jobs <= GPUs."""

    _target_: str = "hydra_plugins.pab_campaign_launchers.launchers.LocalLauncher"
    # Threads of one job: its OMP_NUM_THREADS / MKL_NUM_THREADS, and the cores it is planned to use.
    cpus_per_task: int = 1
    # Jobs at once; None = as many as fit. Asking for more than fits is refused.
    max_parallel: int | None = None
    # True: one visible GPU per job (CUDA_VISIBLE_DEVICES) when there are any; False: never assign GPUs.
    gpus: bool = True
    # Fork each job from one process that imported the app's modules once per sweep (Linux only;
    # about 3 s less start-up per job of an app that imports torch); False: every job starts a fresh python.
    warm_start: bool = True
    # Modules the warm python imports, e.g. [torch, mypkg.train]; null: those the launching app has
    # imported itself (its own imports; nothing it does not use).
    preload: list[str] | None = None
    # Wall-clock limit of one job in minutes; SIGUSR2 shortly before it (the job is then requeued).
    timeout_min: int = 600


@dataclass
class SlurmConf(SlurmQueueConf):
    """submitit_slurm (the sweep becomes one job array) that can also submit and return at once.

    Inherited keys worth knowing: `partition`, `gpus_per_node`, `mem_gb`; `array_parallelism`
    (jobs of the array running at once); `setup` (shell lines the batch script runs before the
    job, e.g. ["module load cuda", "source .venv/bin/activate"]); `additional_parameters` (any
    other sbatch option, e.g. {account: myproject, "mail-type": END}).
    """

    _target_: str = "hydra_plugins.pab_campaign_launchers.launchers.SlurmLauncher"
    # CPUs SLURM gives one job; its OMP_NUM_THREADS / MKL_NUM_THREADS are set to the same number.
    cpus_per_task: int = 1
    # True: submit the array and return; the jobs go on without the launching process.
    detach: bool = False
    # Where a detached sweep records its submission (JSON: the SLURM job ids and the sweep dir).
    detach_record: str = "${hydra.sweep.dir}/submitted.json"
    # Job time limit in minutes; SLURM sends SIGUSR2 signal_delay_s before it and the job is requeued.
    timeout_min: int = 240
    # Requeues allowed per job (preemptions and time limits), at least 1. Under about 50 minutes of
    # timeout_min submitit counts every signal as a time limit, so keep this at least the number of
    # preemptions you expect.
    max_num_timeout: int = 3


@dataclass
class CheckedSweeperConf(BasicSweeperConf):
    """Hydra's basic sweeper that checks every job's config before the first one starts (`sweeper.py`)."""

    _target_: str = "hydra_plugins.pab_campaign_launchers.sweeper.CheckedSweeper"
    # Dotted path of a callable taking one job's config (without `hydra`) that raises to refuse it,
    # e.g. pab_campaign.training.run.validate; null: only the composition is checked.
    validate: str | None = None


ConfigStore.instance().store(group="hydra/launcher", name="local", node=LocalConf, provider=PROVIDER)
ConfigStore.instance().store(group="hydra/launcher", name="local_schema", node=LocalConf, provider=PROVIDER)
ConfigStore.instance().store(group="hydra/sweeper", name="checked", node=CheckedSweeperConf, provider=PROVIDER)
# The same schemas under second names, for an app's own `hydra/sweeper/checked.yaml` (or
# `hydra/launcher/local.yaml`) to extend (`defaults: [checked_schema]` plus its `validate`, or its
# `preload`) without naming itself.
ConfigStore.instance().store(group="hydra/sweeper", name="checked_schema", node=CheckedSweeperConf,
                             provider=PROVIDER)
ConfigStore.instance().store(group="hydra/launcher", name="slurm", node=SlurmConf, provider=PROVIDER)
