"""The checked sweeper and the launchers under another Hydra app (a tiny one written per test, with
none of pab_campaign's keys): a job that raised makes the sweep exit 1 and shows in the progress line,
a refusal is one line with exit status 2, and the progress line counts a whole Optuna study."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, command_env

APP = '''
import hydra


def check(cfg):
    if cfg.x < 0:
        raise ValueError(f"x={cfg.x} must be >= 0")


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg) -> float:
    if cfg.x == 2:
        raise RuntimeError("boom")
    return float(cfg.x)


if __name__ == "__main__":
    main()
'''
COLD = ["hydra/launcher=local", "hydra.launcher.warm_start=false"]


def run_app(tmp_path: Path, overrides: list[str], **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "app.py").write_text(APP)
    return subprocess.run([sys.executable, "app.py", "-m", f"hydra.sweep.dir={tmp_path}/sweep", *overrides],
                          cwd=tmp_path, env=command_env(**env), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("launcher", [[], COLD], ids=["basic-launcher", "local-launcher"])
def test_a_job_that_raised_ends_the_checked_sweep_with_exit_1(tmp_path, launcher):
    result = run_app(tmp_path, ["hydra/sweeper=checked", "+x=1,2,3", *launcher])
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "job #1 (+x=2) failed: boom" in result.stdout + result.stderr
    assert "sweep: 1 of 3 jobs failed" in result.stderr
    assert (tmp_path / "sweep" / "2").is_dir()  # the job after the failed one still ran
    if launcher:
        assert "sweep: 3/3 runs ended (1 failed)" in result.stdout


def test_a_validate_refusal_is_one_line_and_exit_2(tmp_path):
    result = run_app(tmp_path, ["hydra/sweeper=checked", "hydra.sweeper.validate=app.check", "+x=1,-1"])
    assert result.returncode == 2
    assert_one_line_error(result, "app.py: error: job #1 (+x=-1): x=-1 must be >= 0")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("conf", ["missing", "empty"])
def test_slurm_without_a_cluster_is_one_line_and_exit_2(tmp_path, conf):
    """A SLURM_CONF that names no file is refused before sbatch (which would retry for a minute);
    an empty one (no cluster) is sbatch's own refusal (or submitit's, where sbatch is missing)."""
    slurm_conf = tmp_path / "no-slurm.conf"
    if conf == "empty":
        slurm_conf.write_text("")
    result = run_app(tmp_path, ["hydra/launcher=slurm", "+x=1"], SLURM_CONF=str(slurm_conf))
    assert result.returncode == 2
    assert_one_line_error(result, "hydra/launcher=slurm could not submit the sweep", "use hydra/launcher=local")
    assert (f"SLURM_CONF={slurm_conf} names no file" in result.stderr) == (conf == "missing")


def test_the_progress_line_counts_a_whole_optuna_study(tmp_path):
    result = run_app(tmp_path, ["hydra/sweeper=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
                                "+x=range(3,6)", *COLD])
    assert result.returncode == 0, result.stderr[-2000:]
    progress = [line for line in result.stdout.splitlines() if line.startswith("sweep: ")]
    assert progress[-1] == "sweep: 4/4 runs ended, 0 running, 0 waiting"
    assert all("/4 runs ended" in line for line in progress), progress
