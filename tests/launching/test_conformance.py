"""Hydra's own launcher conformance suites (`hydra.test_utils.launcher_common_tests`) run against
`hydra/launcher=local` (warm start on and off) and `hydra/launcher=slurm` on the real single-node
cluster of the `slurm_env` fixture, with Hydra's test app (`hydra.test_utils.a_module` and its
configs): an app that has none of pab_campaign's keys. The launchers are selected from their
ConfigStore entries alone; the suites check job returns, configs, output directories, job names,
sweep directories and batching. Two tests of our own add what the suites do not check: every job
gets OMP_NUM_THREADS = cpus_per_task, and a detached SLURM sweep records its job ids where
`detach_record` says."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import version as hydra_version
from hydra.test_utils.launcher_common_tests import BatchedSweeperTestSuite, IntegrationTestSuite, LauncherTestSuite
from hydra.test_utils.test_utils import TSweepRunner
from hydra.version import VersionBase

from tests.helpers import command_env, wait_for

# Flags of the integration suite's app (a fresh process per test): multirun, Hydra's own logging off.
APP_FLAGS = ["-m", "hydra/hydra_logging=disabled", "hydra/job_logging=disabled"]


def local(warm_start: bool) -> list[str]:
    return ["hydra.launcher.timeout_min=2", f"hydra.launcher.warm_start={str(warm_start).lower()}"]


# SLURM signals a job signal_delay_s (120 s) before its time limit, give or take a minute.
SLURM = ["hydra.launcher.timeout_min=5"]
BATCHES_OF_2 = ["hydra.sweeper.max_batch_size=2"]


# The suites below sweep in this process: by default the warm python would preload every module the
# test session has imported so far (thousands, a fresh server per batch) instead of the app's. Their
# warm server preloads what Hydra's test app imports; the default (the app's own imports) is used by
# the integration suites' app processes and checked in test_preload.py.
IN_PROCESS_APP = ["hydra.launcher.preload=[hydra.test_utils.a_module]"]


def launchers(*extra: str) -> pytest.MarkDecorator:
    """(launcher_name, overrides) of the local launcher, warm and cold; fresh lists per use, as
    the batched suite extends the list it is given."""
    return pytest.mark.parametrize(("launcher_name", "overrides"), [
        pytest.param("local", [*local(True), *IN_PROCESS_APP, *extra], id="local-warm"),
        pytest.param("local", [*local(False), *extra], id="local-cold"),
    ])


def local_apps() -> pytest.MarkDecorator:
    return pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"), [
        pytest.param({}, [*APP_FLAGS, "hydra/launcher=local", *local(True)], id="local-warm"),
        pytest.param({}, [*APP_FLAGS, "hydra/launcher=local", *local(False)], id="local-cold"),
    ])


@pytest.fixture(autouse=True)
def jobs_import_this_checkout(monkeypatch):
    """Jobs and the suites' app processes import this checkout's launchers and package."""
    monkeypatch.setenv("PYTHONPATH", command_env()["PYTHONPATH"])


@pytest.fixture(autouse=True)
def unspecified_version_base(monkeypatch):
    """The suites expect Hydra's defaults when no version_base is given (jobs change directory):
    forget the version base that earlier tests composing with version_base="1.3" left in the
    process-wide singleton."""
    monkeypatch.setattr(VersionBase.instance(), "version_base", hydra_version._UNSPECIFIED_)


@pytest.fixture
def on_slurm(slurm_env, monkeypatch):
    """sbatch and squeue of this process and of the suites' app processes reach the test cluster."""
    monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])


@launchers()
class TestLocalLauncher(LauncherTestSuite):
    pass


@local_apps()
class TestLocalLauncherIntegration(IntegrationTestSuite):
    pass


@launchers(*BATCHES_OF_2)
class TestLocalLauncherBatches(BatchedSweeperTestSuite):
    pass


@pytest.mark.usefixtures("on_slurm")
@pytest.mark.parametrize(("launcher_name", "overrides"), [pytest.param("slurm", SLURM, id="slurm")])
class TestSlurmLauncher(LauncherTestSuite):
    pass


@pytest.mark.usefixtures("on_slurm")
@pytest.mark.parametrize(("task_launcher_cfg", "extra_flags"),
                         [pytest.param({}, [*APP_FLAGS, "hydra/launcher=slurm", *SLURM], id="slurm")])
class TestSlurmLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.mark.usefixtures("on_slurm")
@pytest.mark.parametrize(("launcher_name", "overrides"), [pytest.param("slurm", [*SLURM, *BATCHES_OF_2], id="slurm")])
class TestSlurmLauncherBatches(BatchedSweeperTestSuite):
    pass


def sweep(hydra_sweep_runner: TSweepRunner, overrides: list[str], tmpdir: Path, task=None):
    """Hydra's test app swept with `overrides` in-process, jobs running `task` (None: return 100)."""
    return hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module", task_function=task,
                              config_path="configs", config_name="compose", overrides=overrides, temp_dir=tmpdir)


@pytest.mark.usefixtures("hydra_restore_singletons")
@pytest.mark.parametrize("launcher", [
    pytest.param(["hydra/launcher=local", *local(True), *IN_PROCESS_APP], id="local-warm"),
    pytest.param(["hydra/launcher=local", *local(False)], id="local-cold"),
    pytest.param(["hydra/launcher=slurm", *SLURM], id="slurm"),
])
def test_jobs_get_cpus_per_task_threads(request, hydra_sweep_runner, tmpdir, launcher):
    if "hydra/launcher=slurm" in launcher:
        request.getfixturevalue("on_slurm")

    def thread_variables(_cfg) -> str:  # defined here so that the job unpickles it without this module
        import os

        return os.environ["OMP_NUM_THREADS"] + "," + os.environ["MKL_NUM_THREADS"]

    overrides = [*launcher, "hydra.launcher.cpus_per_task=2", "+a=0,1"]
    with sweep(hydra_sweep_runner, overrides, tmpdir, thread_variables) as done:
        assert [job.return_value for job in done.returns[0]] == ["2,2", "2,2"]


@pytest.mark.usefixtures("hydra_restore_singletons", "on_slurm")
def test_detached_slurm_sweep_records_its_jobs_where_detach_record_says(hydra_sweep_runner, tmpdir):
    record = Path(tmpdir) / "records" / "sweep.json"
    overrides = ["hydra/launcher=slurm", *SLURM, "hydra.launcher.detach=true",
                 f"hydra.launcher.detach_record={record}", "+a=0,1"]
    with sweep(hydra_sweep_runner, overrides, tmpdir) as done:
        submitted = json.loads(record.read_text())
        assert [job.return_value for job in done.returns[0]] == [f"submitted {i}" for i in submitted["job_ids"]]
        assert len(set(submitted["job_ids"])) == 2
        assert submitted["sweep_dir"] == str(Path(done.temp_dir).resolve())
        results = Path(done.temp_dir) / ".submitit"
        wait_for(lambda: len(list(results.glob("*/*_result.pkl"))) == 2, 120, "the detached jobs to finish")
